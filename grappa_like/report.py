"""Per-molecule HTML report: what the model predicted for one molecule, and whether it behaves.

One self-contained HTML file (no external JavaScript, CSS or images; plots are inline base64 PNG,
the depiction inline SVG), with:

- a 2D depiction (RDKit) with atom indices, atoms coloured by the predicted partial charges;
- tables of every predicted parameter (bonds, angles, proper and improper torsions with all
  periodicities, charges, LJ types), sortable by clicking a header and filterable with a search box;
- a relaxed torsion scan of each rotatable bond (at most ``max_scans``) with the predicted
  parameters (OpenMM, dihedral held by a stiff restraint, everything else minimised), and single
  points on the same geometries with GFN2-xTB (tblite), ANI-2x (given its weights folder) and GAFF2
  (AmberTools), each curve relative to its own minimum;
- a short vacuum MD check (:mod:`grappa_like.md_check`).

Numbers shown to people are in Å, degrees, kcal/mol and e (DESIGN.md).
"""

from __future__ import annotations

import base64
import datetime
import html
import io
from dataclasses import dataclass, field

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdMolDescriptors

from grappa_like import errors
from grappa_like.fileio import atomic_write_text
from grappa_like.molecule import with_positions
from grappa_like.parameters import Parameters
from grappa_like.units import KJ_TO_KCAL

DEFAULT_SCAN_POINTS = 24
DEFAULT_MAX_SCANS = 6
DEFAULT_MD_TIME_PS = 10.0
RESTRAINT_K_KJ_PER_RAD2 = 10000.0  # holds the scanned dihedral within ~0.5° of its target
MM_LABEL = "grappa_like"
NEGATIVE_COLOUR = np.array([0.80, 0.10, 0.12])  # charge colours: red (negative) - white - blue (positive)
POSITIVE_COLOUR = np.array([0.10, 0.30, 0.85])
CURVE_STYLES = {MM_LABEL: ("black", "-", "o"), "GFN2-xTB": ("tab:orange", "--", "s"),
                "ANI-2x": ("tab:green", "--", "^"), "GAFF2": ("tab:blue", ":", "d")}


@dataclass
class Table:
    """One HTML table: an id (used by the page's JavaScript), a title, headers with units, and rows."""

    id: str
    title: str
    headers: list[str]
    rows: list[list]  # cells: str, int or float (floats are shown with 3-4 significant digits)


@dataclass
class TorsionScan:
    """Relaxed scan of one dihedral: angles (°), and per method the energies (kcal/mol) relative to its minimum."""

    dihedral: tuple[int, int, int, int]
    angles_deg: np.ndarray
    energies: dict[str, np.ndarray] = field(default_factory=dict)
    positions: np.ndarray | None = None  # (n_points, n_atoms, 3) Å, the MM-relaxed geometries


@dataclass
class Report:
    """Everything the HTML page shows for one molecule."""

    result: object                 # grappa_like.api.Result
    depiction_svg: str
    tables: list[Table]
    scans: list[TorsionScan]
    n_rotatable: int
    notes: list[str]               # what was computed how, and what was left out and why
    md: dict | None                # grappa_like.md_check metrics, or None when the MD check was off
    md_time_ps: float


# ----------------------------------------------------------------------------- depiction


def charge_colours(charges) -> list[tuple[float, float, float]]:
    """RGB (0-1) per atom: white at 0 e, red for negative, blue for positive, full colour at the largest |q|."""
    charges = np.asarray(charges, dtype=np.float64)
    scale = max(float(np.abs(charges).max(initial=0.0)), 1e-12)
    colours = []
    for charge in charges:
        target = NEGATIVE_COLOUR if charge < 0 else POSITIVE_COLOUR
        weight = abs(charge) / scale
        colours.append(tuple(float(c) for c in (1.0 - weight) + weight * target))
    return colours


def depiction_svg(molecule, charges, width: int = 520, height: int = 400) -> str:
    """RDKit SVG of the molecule (all atoms, hydrogens included) with atom indices, atoms coloured by charge."""
    from rdkit.Chem import rdDepictor
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = Chem.Mol(molecule.rdkit_mol)
    mol.RemoveAllConformers()
    rdDepictor.SetPreferCoordGen(True)
    rdDepictor.Compute2DCoords(mol)
    drawer = rdMolDraw2D.MolDraw2DSVG(width, height)
    options = drawer.drawOptions()
    options.addAtomIndices = True
    options.atomHighlightsAreCircles = True
    options.fillHighlights = True
    options.clearBackground = False
    colours = charge_colours(charges)
    atoms = list(range(mol.GetNumAtoms()))
    drawer.DrawMolecule(mol, highlightAtoms=atoms, highlightAtomColors=dict(zip(atoms, colours)),
                        highlightBonds=[], highlightAtomRadii={atom: 0.4 for atom in atoms})
    drawer.FinishDrawing()
    svg = drawer.GetDrawingText()
    return svg[svg.index("<svg"):]


# ----------------------------------------------------------------------------- tables


def _atom_label(mol: Chem.Mol, index: int) -> str:
    return f"{mol.GetAtomWithIdx(int(index)).GetSymbol()}{int(index)}"


def _atoms(mol: Chem.Mol, indices) -> str:
    return "-".join(_atom_label(mol, i) for i in indices)


def _torsion_table(table_id: str, title: str, mol, quadruples, signed_k) -> Table:
    periodicities = signed_k.shape[1]
    headers = ["#", "atoms"]
    for n in range(1, periodicities + 1):
        headers += [f"k{n} (kcal/mol)", f"phase{n} (°)"]
    rows = [[row, _atoms(mol, quadruples[row])] for row in range(len(quadruples))]
    for row, _periodicity, phase, k in Parameters.torsion_terms(signed_k):
        rows[row] += [k * KJ_TO_KCAL, round(float(np.degrees(phase)))]
    return Table(table_id, title, headers, rows)


def parameter_tables(molecule, parameters: Parameters) -> list[Table]:
    """Tables of the predicted parameters (bonds, angles, propers, impropers, atoms), in report units."""
    mol = molecule.rdkit_mol
    interactions = parameters.interactions
    bonds = Table("bonds", "Bonds: E = k/2 (r − r0)²", ["#", "atoms", "k (kcal/mol/Å²)", "r0 (Å)"], [
        [row, _atoms(mol, pair), k * KJ_TO_KCAL / 100.0, r0 * 10.0]
        for row, (pair, k, r0) in enumerate(zip(interactions.bonds, parameters.bond_k, parameters.bond_r0))])
    angles = Table("angles", "Angles: E = k/2 (θ − θ0)²", ["#", "atoms", "k (kcal/mol/rad²)", "θ0 (°)"], [
        [row, _atoms(mol, triple), k * KJ_TO_KCAL, float(np.degrees(theta0))]
        for row, (triple, k, theta0) in enumerate(zip(interactions.angles, parameters.angle_k,
                                                       parameters.angle_theta0))])
    propers = _torsion_table("propers", "Proper torsions: E = Σn kn (1 + cos(n φ − phase_n))", mol,
                             interactions.propers, parameters.proper_k)
    impropers = _torsion_table("impropers", "Improper torsions (centre atom third): same form", mol,
                               interactions.impropers, parameters.improper_k)
    atoms = Table("atoms", "Atoms: partial charges and Lennard-Jones types",
                  ["index", "element", "charge (e)", "LJ class (GAFF2 types)", "σ (Å)", "ε (kcal/mol)"], [
                      [index, mol.GetAtomWithIdx(index).GetSymbol(), float(parameters.charges[index]),
                       parameters.lj_types[index], float(parameters.sigma[index]) * 10.0,
                       float(parameters.epsilon[index]) * KJ_TO_KCAL]
                      for index in range(mol.GetNumAtoms())])
    return [bonds, angles, propers, impropers, atoms]


# ----------------------------------------------------------------------------- torsion scans


def rotatable_torsions(mol: Chem.Mol) -> list[tuple[int, int, int, int]]:
    """One dihedral (i, j, k, l) per rotatable bond j-k (non-ring single bond between non-terminal, non-sp atoms).

    Bonds with heavy atoms beyond both ends come first, methyl-like rotors after (the dataset
    builder's choice, :func:`grappa_like.dataset.torsion_drives`).
    """
    from grappa_like.dataset import torsion_drives

    return torsion_drives(mol, max_torsions=mol.GetNumBonds())


def relaxed_scan(system, mol: Chem.Mol, start_positions: np.ndarray, dihedral, n_points: int,
                 platform: str = "CPU") -> TorsionScan:
    """Relaxed scan of ``dihedral`` over n_points angles from -180°: energies of ``system`` (kcal/mol, minimum 0).

    At each angle the start structure (Å) is rotated rigidly about the bond, then minimised with
    the dihedral held by a stiff harmonic restraint that is left out of the reported energy.
    """
    import copy

    import openmm
    from openmm import unit
    from rdkit.Chem import rdMolTransforms

    system = copy.deepcopy(system)
    for force in system.getForces():
        force.setForceGroup(0)
    restraint = openmm.CustomTorsionForce(
        "0.5*k_restraint*delta^2; delta = difference - 2*pi*floor((difference + pi)/(2*pi)); "
        f"difference = theta - theta0; pi = {np.pi}")
    restraint.addGlobalParameter("k_restraint", RESTRAINT_K_KJ_PER_RAD2)
    restraint.addGlobalParameter("theta0", 0.0)
    restraint.addTorsion(*(int(a) for a in dihedral), [])
    restraint.setForceGroup(1)
    system.addForce(restraint)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName(platform))

    work = Chem.Mol(mol)
    work.RemoveAllConformers()
    conformer = Chem.Conformer(work.GetNumAtoms())
    work.AddConformer(conformer, assignId=True)
    conformer = work.GetConformer()
    angles = -180.0 + np.arange(n_points) * 360.0 / n_points
    energies, relaxed = [], []
    for angle in angles:
        for index, xyz in enumerate(start_positions):
            conformer.SetAtomPosition(index, xyz.tolist())
        rdMolTransforms.SetDihedralDeg(conformer, *(int(a) for a in dihedral), float(angle))
        context.setParameter("theta0", float(np.radians(angle)))
        context.setPositions(conformer.GetPositions() / 10.0 * unit.nanometer)
        openmm.LocalEnergyMinimizer.minimize(context, 1.0, 5000)
        state = context.getState(getEnergy=True, getPositions=True, groups={0})
        energies.append(state.getPotentialEnergy().value_in_unit(unit.kilocalorie_per_mole))
        relaxed.append(state.getPositions(asNumpy=True).value_in_unit(unit.angstrom))
    energies = np.array(energies)
    return TorsionScan(tuple(int(a) for a in dihedral), angles, {MM_LABEL: energies - energies.min()},
                       np.array(relaxed))


def _relative(energies) -> np.ndarray:
    energies = np.asarray(energies, dtype=np.float64)
    return energies - np.nanmin(energies) if np.isfinite(energies).any() else energies


def _reference_labelers(molecule, qm: bool, ani_dir: str | None, notes: list[str]) -> dict:
    """{curve name: labeler} for the QM references that can treat this molecule; reasons for the others in notes."""
    from grappa_like import labelers

    chosen = {}
    wanted = ([("GFN2-xTB", labelers.LabelerSpec("gfn2"))] if qm else []) + (
        [("ANI-2x", labelers.LabelerSpec("ani2x", ani_dir=ani_dir))] if ani_dir else [])
    mol = molecule.rdkit_mol
    formal_charges = [atom.GetFormalCharge() for atom in mol.GetAtoms()]
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    for name, spec in wanted:
        try:
            labeler = spec.make()
            labeler.check(molecule.atomic_numbers, molecule.total_charge, formal_charges, bonds)
        except (errors.MissingDependencyError, labelers.LabelerRejectedError) as error:
            notes.append(f"{name} not shown: {' '.join(str(error).split())}")
            continue
        chosen[name] = labeler
        notes.append(f"{name}: {labeler.level_of_theory()}; single points on the grappa_like-relaxed geometries "
                     f"(not a scan relaxed with {name}).")
    if not qm:
        notes.append("GFN2-xTB reference turned off (--no-qm).")
    return chosen


def _gaff2_system(molecule, start_positions: np.ndarray, notes: list[str]):
    """GAFF2 + AM1-BCC OpenMM System from AmberTools, or None (with the reason in notes)."""
    from grappa_like import baselines

    if not baselines.ambertools_available():
        notes.append("GAFF2 not shown: AmberTools (antechamber, sqm, parmchk2, tleap) is not installed.")
        return None
    mol = with_positions(molecule.rdkit_mol, start_positions)
    try:
        system = baselines.gaff2_am1bcc_system(mol, name=molecule.name)
    except (baselines.AmberToolsError, baselines.AmberToolsNotFoundError, ValueError) as error:
        notes.append(f"GAFF2 not shown: {' '.join(str(error).split())[:300]}")
        return None
    notes.append("GAFF2: GAFF2 + AM1-BCC from AmberTools (antechamber, tleap); single points on the "
                 "grappa_like-relaxed geometries.")
    return system


def _system_energies(system, geometries: np.ndarray) -> np.ndarray:
    """Potential energies (kcal/mol) of ``system`` at each geometry (Å)."""
    import openmm
    from openmm import unit

    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    energies = []
    for positions in geometries:
        context.setPositions(positions / 10.0 * unit.nanometer)
        energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilocalorie_per_mole))
    return np.array(energies)


def _labeler_energies(labeler, molecule, geometries: np.ndarray) -> np.ndarray:
    energies, _, _ = labeler.energies_and_forces(molecule.atomic_numbers, geometries, molecule.total_charge)
    return energies


# ----------------------------------------------------------------------------- building the report


def build_report(result, scan_points: int = DEFAULT_SCAN_POINTS, max_scans: int = DEFAULT_MAX_SCANS,
                 qm: bool = True, ani_dir: str | None = None, gaff2: bool = True,
                 md_time_ps: float | None = DEFAULT_MD_TIME_PS, platform: str = "CPU") -> Report:
    """Compute everything the page shows for one parameterized molecule (a :class:`grappa_like.api.Result`).

    ``md_time_ps`` None or 0 turns the MD check off; ``qm=False`` the GFN2-xTB reference; ``gaff2=False`` GAFF2.
    """
    from grappa_like import md_check

    if result.error is not None:
        raise result.error
    if scan_points < 4:
        raise ValueError(f"{result.name}: a torsion scan needs at least 4 points, got {scan_points}")
    molecule, parameters = result.molecule, result.parameters
    system = result.to_openmm()
    start = molecule.conformer_positions(seed=md_check.SEED)
    notes: list[str] = []
    dihedrals = rotatable_torsions(molecule.rdkit_mol)
    scans = []
    if dihedrals and max_scans > 0:
        scans = [relaxed_scan(system, molecule.rdkit_mol, start, dihedral, scan_points, platform)
                 for dihedral in dihedrals[:max_scans]]
        references = _reference_labelers(molecule, qm, ani_dir, notes)
        gaff2_system = _gaff2_system(molecule, start, notes) if gaff2 else None
        if not gaff2:
            notes.append("GAFF2 reference turned off (--no-gaff2).")
        for scan in scans:
            for name, labeler in references.items():
                scan.energies[name] = _relative(_labeler_energies(labeler, molecule, scan.positions))
            if gaff2_system is not None:
                scan.energies["GAFF2"] = _relative(_system_energies(gaff2_system, scan.positions))
    md = None
    if md_time_ps:
        md = md_check.run_md_check(system, molecule.rdkit_mol, parameters.interactions.bonds,
                                   parameters.bond_r0 * 10.0, start, time_ps=md_time_ps, platform=platform)
    return Report(result=result, depiction_svg=depiction_svg(molecule, parameters.charges),
                  tables=parameter_tables(molecule, parameters), scans=scans, n_rotatable=len(dihedrals),
                  notes=notes, md=md, md_time_ps=md_time_ps or 0.0)


class ReportError(errors.GrappaLikeError, RuntimeError):
    """The HTML report of a molecule could not be made."""


def write_report(molecule_or_result, path, model=None, **options) -> str:
    """Write the HTML report of one molecule (SMILES, RDKit Mol, Molecule or Result) to ``path``; return ``path``.

    ``model`` (a Model or model file path; default the shipped model) parameterizes a molecule that
    is not yet a Result, and is named in the page; ``options`` go to :func:`build_report`.
    """
    from grappa_like import ood
    from grappa_like.api import Model, Result, load_model, parameterize

    if model is not None and not isinstance(model, Model):
        model = load_model(model)
    result = molecule_or_result
    if not isinstance(result, Result):
        model = model or load_model(None)
        result = parameterize([molecule_or_result], model=model, progress=False)[0]
    if result.ok and result.ood_score is None and model is not None and model.members:
        result.ood_score = ood.ood_score(result.molecule, model, parameters=result.parameters)
    report = build_report(result, **options)
    return atomic_write_text(path, render_html(report, model))


# ----------------------------------------------------------------------------- HTML


def _plot_png(scan: TorsionScan, mol: Chem.Mol) -> str:
    """Base64 PNG of one scan: every method's curve, relative to its minimum."""
    try:
        from matplotlib.figure import Figure  # no pyplot: a library leaves the user's backend alone
    except ImportError:
        raise errors.MissingDependencyError(
            'the HTML report needs matplotlib for its plots; install it with: pip install "grappa_like[report]"'
        ) from None
    figure = Figure(figsize=(5.4, 3.4), dpi=100)
    axes = figure.subplots()
    closed = np.append(scan.angles_deg, 180.0)  # the curve goes round to +180° = -180°
    for name, energies in scan.energies.items():
        colour, line, marker = CURVE_STYLES.get(name, ("grey", "-.", "x"))
        axes.plot(closed, np.append(energies, energies[0]), color=colour, linestyle=line, marker=marker,
                  markersize=4, label=name)
    axes.set_xlabel(f"dihedral {_atoms(mol, scan.dihedral)} (°)")
    axes.set_ylabel("relative energy (kcal/mol)")
    axes.set_xticks(range(-180, 181, 60))
    axes.set_xlim(-180, 180)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title(f"bond {_atoms(mol, scan.dihedral[1:3])}", fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f'<td data-value="{float(value)!r}">{float(value):.4g}</td>'
    if isinstance(value, (int, np.integer)):
        return f'<td data-value="{int(value)}">{int(value)}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _table_html(table: Table) -> str:
    head = "".join(f'<th title="click to sort">{html.escape(h)}</th>' for h in table.headers)
    body = "\n".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>" for row in table.rows)
    return (f'<section class="parameters"><h3>{html.escape(table.title)} '
            f'<span class="count" id="{table.id}-count">{len(table.rows)} rows</span></h3>\n'
            f'<input type="search" class="filter" data-table="{table.id}" placeholder="filter rows (e.g. C3 or O)">\n'
            f'<table id="{table.id}" class="sortable"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'
            "</section>")


def _scan_html(scan: TorsionScan, mol: Chem.Mol) -> str:
    names = list(scan.energies)
    head = "".join(f"<th>{html.escape(n)} (kcal/mol)</th>" for n in names)
    rows = "\n".join(
        f"<tr><td>{angle:g}</td>" + "".join(
            f"<td>{scan.energies[n][point]:.3f}</td>" if np.isfinite(scan.energies[n][point]) else "<td>failed</td>"
            for n in names) + "</tr>"
        for point, angle in enumerate(scan.angles_deg))
    bond = _atoms(mol, scan.dihedral[1:3])
    return (f'<figure class="scan" data-dihedral="{"-".join(map(str, scan.dihedral))}">'
            f'<img class="scan-plot" alt="energy profile of bond {bond}" src="data:image/png;base64,'
            f'{_plot_png(scan, mol)}">\n<details><summary>values (bond {bond}, dihedral '
            f'{_atoms(mol, scan.dihedral)})</summary><table class="scan-values"><thead><tr><th>dihedral (°)</th>'
            f"{head}</tr></thead><tbody>\n{rows}\n</tbody></table></details></figure>")


def _legend_html(charges) -> str:
    largest = float(np.abs(charges).max(initial=0.0))
    stops = ", ".join(f"rgb({', '.join(str(round(255 * c)) for c in colour)})"
                      for colour in charge_colours(np.linspace(-largest, largest, 9)))
    return (f'<div class="legend"><div class="bar" style="background: linear-gradient(to right, {stops})"></div>'
            f'<div class="ticks"><span>{-largest:+.3f} e</span><span>0</span><span>{largest:+.3f} e</span></div>'
            "<div>atom colour = predicted partial charge; numbers = atom indices (as in the tables)</div></div>")


def _md_html(report: Report) -> str:
    md = report.md
    if md is None:
        return "<p>MD check turned off.</p>"
    from grappa_like.md_check import SP2_OUT_OF_PLANE_ANGSTROM, TEMPERATURE_K, THRESHOLDS

    def verdict(ok: bool) -> str:
        return '<span class="ok">ok</span>' if ok else '<span class="bad">outlier</span>'

    bond_limit = THRESHOLDS["bond_deviation_angstrom"]
    ring_limit = THRESHOLDS["ring_out_of_plane_angstrom"]
    worst_bond = md["max_bond_deviation_atoms"]
    rows = [
        ("status", html.escape(md["blow_up"] or "ran to the end, no blow-up"), verdict(md["blow_up"] is None)),
        ("simulated time (ps)", f"{md['simulated_ps']:g}", ""),
        ("mean temperature (K)", f"{md['mean_temperature_k']}", ""),
        (f"max |r − r0| over all bonds (Å; limit {bond_limit})",
         f"{md['max_bond_deviation']:.3f}" + (f" (bond {worst_bond[0]}-{worst_bond[1]})" if worst_bond else ""),
         verdict(md["n_bond_outliers"] == 0)),
        ("bonds beyond the limit", ", ".join(f"{i}-{j}" for i, j in md["bond_outlier_atoms"]) or "none",
         verdict(md["n_bond_outliers"] == 0)),
        (f"aromatic rings: max out-of-plane distance (Å; limit {ring_limit}; {md['n_aromatic_rings']} rings)",
         f"{md['max_ring_out_of_plane']:.3f}", verdict(md["max_ring_out_of_plane"] <= ring_limit)),
        (f"sp2 centres: max distance from the plane of their neighbours (Å; limit {SP2_OUT_OF_PLANE_ANGSTROM}; "
         f"{md['n_sp2_centres']} centres)", f"{md['max_sp2_out_of_plane']:.3f}"
         + (f" (outliers: atoms {', '.join(map(str, md['sp2_outliers']))})" if md["sp2_outliers"] else ""),
         verdict(not md["sp2_outliers"])),
        (f"stereocentres ({md['n_stereocentres']}): inverted at the end / CIP label changed",
         f"{md['chirality_flips'] or 'none'} / {md['cip_changes'] or 'none'}",
         verdict(not md["chirality_flips"] and not md["cip_changes"])),
    ]
    body = "\n".join(f"<tr><td>{name}</td><td>{value}</td><td>{mark}</td></tr>" for name, value, mark in rows)
    stable = md["stable"]
    return (f'<p class="verdict {"ok" if stable else "bad"}" id="md-verdict">{"Stable" if stable else "Not stable"}: '
            f"{report.md_time_ps:g} ps NVT Langevin MD at {TEMPERATURE_K:g} K in vacuum, 1 fs steps, no "
            "constraints, from an RDKit ETKDG + MMFF94 conformer minimised with the predicted force field "
            "(stable = no blow-up, no bond beyond the limit, flat aromatic rings, no chirality change).</p>\n"
            f'<table id="md-check"><thead><tr><th>check</th><th>value</th><th>verdict</th></tr></thead>'
            f"<tbody>\n{body}\n</tbody></table>")


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1150px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 13px; margin: 0.4em 0 1em; }
th, td { border: 1px solid #ddd; padding: 2px 7px; text-align: right; }
td:nth-child(2), th:nth-child(2) { text-align: left; }
table.sortable th { cursor: pointer; background: #f2f2f2; user-select: none; }
th[aria-sort=ascending]::after { content: " ▲"; } th[aria-sort=descending]::after { content: " ▼"; }
.count { font-weight: normal; font-size: 13px; color: #666; }
.summary td:first-child { text-align: left; font-weight: bold; }
.depiction { display: flex; gap: 2em; align-items: center; flex-wrap: wrap; }
.legend .bar { width: 260px; height: 14px; border: 1px solid #999; }
.legend .ticks { width: 260px; display: flex; justify-content: space-between; font-size: 12px; }
.legend { font-size: 13px; }
.scans { display: flex; flex-wrap: wrap; gap: 1em; } figure.scan { margin: 0; }
.ok { color: #176b2c; font-weight: bold; } .bad { color: #b3141c; font-weight: bold; }
p.verdict { font-size: 15px; } .notes li { font-size: 13px; } input.filter { width: 260px; }
"""

SCRIPT = """
(function () {
  function cellKey(row, column) {
    const cell = row.cells[column];
    return cell.dataset.value !== undefined ? parseFloat(cell.dataset.value) : cell.textContent.trim();
  }
  function sortTable(table, column, descending) {
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      const x = cellKey(a, column), y = cellKey(b, column);
      const order = (typeof x === "number" && typeof y === "number") ? x - y
        : String(x).localeCompare(String(y), undefined, {numeric: true});
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.from(table.tHead.rows[0].cells).forEach(function (th, index) {
      th.setAttribute("aria-sort", index === column ? (descending ? "descending" : "ascending") : "none");
    });
  }
  function filterTable(table, text) {
    const needle = text.trim().toLowerCase();
    let shown = 0;
    Array.from(table.tBodies[0].rows).forEach(function (row) {
      const hit = !needle || row.textContent.toLowerCase().indexOf(needle) >= 0;
      row.style.display = hit ? "" : "none";
      if (hit) { shown += 1; }
    });
    document.getElementById(table.id + "-count").textContent =
      (needle ? shown + " of " : "") + table.tBodies[0].rows.length + " rows";
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.from(table.tHead.rows[0].cells).forEach(function (th, index) {
      th.addEventListener("click", function () {
        sortTable(table, index, th.getAttribute("aria-sort") === "ascending");
      });
    });
  });
  document.querySelectorAll("input.filter").forEach(function (input) {
    input.addEventListener("input", function () {
      filterTable(document.getElementById(input.dataset.table), input.value);
    });
  });
  // A link can open the page sorted or filtered: ?sort=<table>:<column>[:desc]&filter=<table>:<text>
  const query = new URLSearchParams(window.location.search);
  query.getAll("sort").forEach(function (item) {
    const parts = item.split(":");
    const table = document.getElementById(parts[0]);
    if (table) { sortTable(table, parseInt(parts[1], 10), parts[2] === "desc"); }
  });
  query.getAll("filter").forEach(function (item) {
    const at = item.indexOf(":");
    const table = document.getElementById(item.slice(0, at));
    if (table) {
      document.querySelector('input.filter[data-table="' + table.id + '"]').value = item.slice(at + 1);
      filterTable(table, item.slice(at + 1));
    }
  });
  document.body.dataset.ready = "yes";
})();
"""


def _model_description(model) -> str:
    """Path and checksum of a Model, or a note that the report was not told the model."""
    if model is None:
        return "not given to the report"
    return f"{model.path or 'in-memory model'} (sha256 {model.checksum[:12] or 'n/a'})"


def _ood_html(result, model) -> str:
    """The out-of-domain score of the result (:attr:`Result.ood_score`) and the model's threshold."""
    if result.ood_score is None:
        return "not available (the model file holds no ensemble, or the score was not computed)"
    text = f"{result.ood_score:.3g} kcal/mol/Å (spread of the MM forces predicted by the model's ensemble)"
    threshold = getattr(model, "ood_threshold", None)
    if threshold is not None:
        verdict = "ABOVE: the molecule looks unlike the training data" if result.ood_score > threshold else "below"
        text += f"; threshold {threshold:.3g}: {verdict}"
    return text


def render_html(report: Report, model=None) -> str:
    """The report as one self-contained HTML page (inline CSS, JavaScript, SVG and PNG); ``model`` is named in it."""
    result = report.result
    molecule = result.molecule
    mol = molecule.rdkit_mol
    name = html.escape(result.name)
    charges = result.parameters.charges
    formula = rdMolDescriptors.CalcMolFormula(mol)
    summary = [
        ("name", name), ("SMILES", html.escape(molecule.smiles)), ("formula", html.escape(formula)),
        ("atoms", str(molecule.n_atoms)), ("total charge (e)", f"{molecule.total_charge:+d} "
                                           f"(sum of predicted charges {round(float(charges.sum()), 4) + 0.0:+.4f})"),
        ("model", html.escape(_model_description(model))),
        ("out-of-domain score", html.escape(_ood_html(result, model))),
        ("written", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
    ]
    summary_rows = "".join(f"<tr><td>{key}</td><td>{value}</td></tr>" for key, value in summary)
    if not report.n_rotatable:
        scan_intro = "No rotatable bonds: no torsion scans."
    else:
        shown = len(report.scans)
        scan_intro = (f"{report.n_rotatable} rotatable bonds found (non-ring single bonds between non-terminal "
                      f"atoms, methyl and hydroxyl rotors included); {shown} scanned"
                      + (f" (at most {shown} per report; bonds with heavy atoms on both sides first)"
                         if shown < report.n_rotatable else "") + ". ")
        if report.scans:
            scan_intro += (f"Relaxed scans with the predicted parameters (OpenMM): {len(report.scans[0].angles_deg)} "
                           "dihedral values, the dihedral held by a stiff restraint and every other coordinate "
                           "minimised; each curve relative to its own minimum.")
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in report.notes)
    scans = "\n".join(_scan_html(scan, mol) for scan in report.scans)
    tables = "\n".join(_table_html(table) for table in report.tables)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>grappa_like report: {name}</title>
<style>{STYLE}</style></head>
<body>
<h1 id="molecule-name">{name}</h1>
<p>grappa_like force-field report: the parameters the model predicted for this molecule, energy profiles of
its rotatable bonds against reference methods, and a short MD check.</p>
<table class="summary">{summary_rows}</table>
<h2>Structure and partial charges</h2>
<div class="depiction"><div id="depiction">{report.depiction_svg}</div>{_legend_html(charges)}</div>
<h2>Torsion energy profiles</h2>
<p id="scan-intro">{html.escape(scan_intro)}</p>
<ul class="notes">{notes}</ul>
<div class="scans">{scans}</div>
<h2>MD check</h2>
{_md_html(report)}
<h2>Predicted parameters</h2>
<p>Units: Å, degrees, kcal/mol, e. Click a column header to sort; type in a box to filter rows. Harmonic
force constants k are those of E = k/2 (x − x0)² (OpenMM convention; Amber files list k/2).</p>
{tables}
<script>{SCRIPT}</script>
</body></html>
"""
