"""Evaluation: energy and force errors of a model, and of classical baselines, on QM conformations.

Errors are reported as the field reports them: energy RMSE on energies mean-centred per molecule
(kcal/mol) and force-component RMSE (kcal/mol/Å), pooled over the conformations of a group
(subset × label). Every method is evaluated on exactly the same conformations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import openmm
import torch

from grappa_like.data import QMRecord
from grappa_like.energy import energy_and_forces, parameters_energy
from grappa_like.units import KJ_PER_NM_TO_KCAL_PER_ANGSTROM, KJ_TO_KCAL



def openmm_energies_forces(system: openmm.System, positions_nm: np.ndarray):
    """Energies (M,) kJ/mol and forces (M, N, 3) kJ/mol/nm of ``system`` on the Reference platform."""
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    energies, forces = [], []
    for positions in positions_nm:
        context.setPositions(positions)
        state = context.getState(getEnergy=True, getForces=True)
        energies.append(state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole))
        forces.append(state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer))
    return np.array(energies), np.array(forces)


def parameters_energies_forces(parameters, positions_nm: np.ndarray):
    """Energies (M,) kJ/mol and forces (M, N, 3) kJ/mol/nm of grappa_like parameters (torch, float64)."""
    energies, forces = energy_and_forces(torch.as_tensor(positions_nm, dtype=torch.float64),
                                         lambda x: parameters_energy(x, parameters))
    return energies.detach().numpy(), forces.detach().numpy()


@dataclass
class ErrorAccumulator:
    """Sums of squared errors of one method on one group, for pooled RMSEs."""

    energy_sq: float = 0.0
    energy_n: int = 0
    force_sq: float = 0.0
    force_n: int = 0
    molecules: int = 0
    per_molecule: list = field(default_factory=list)

    def add(self, mol_id: str, record: QMRecord, energies: np.ndarray, forces: np.ndarray) -> None:
        """Add one molecule's predictions (kJ/mol, kJ/mol/nm) against the record's labels."""
        energy_error = ((energies - energies.mean()) - (record.energies - record.energies.mean())) * KJ_TO_KCAL
        self.energy_sq += float((energy_error ** 2).sum())
        self.energy_n += energy_error.size
        force_rmse = None
        if record.forces is not None:
            force_error = (forces - record.forces) * KJ_PER_NM_TO_KCAL_PER_ANGSTROM
            self.force_sq += float((force_error ** 2).sum())
            self.force_n += force_error.size
            force_rmse = float(np.sqrt((force_error ** 2).mean()))
        self.molecules += 1
        self.per_molecule.append({"mol_id": mol_id, "energy_rmse": float(np.sqrt((energy_error ** 2).mean())),
                                  "force_rmse": force_rmse})

    def summary(self) -> dict:
        return {
            "molecules": self.molecules,
            "conformations": self.energy_n,
            "energy_rmse": math.sqrt(self.energy_sq / self.energy_n) if self.energy_n else None,
            "force_rmse": math.sqrt(self.force_sq / self.force_n) if self.force_n else None,
        }


def gaff2_system_for_record(record: QMRecord, cache_dir: str | None = None) -> openmm.System:
    """GAFF2 + AM1-BCC System: from the record's stored AM1-BCC charges and GAFF2 types when present,
    else by the full AmberTools route (antechamber -c bcc -at gaff2, parmchk2, tleap)."""
    from rdkit import Chem

    from grappa_like import baselines

    mol = Chem.Mol(record.molecule.rdkit_mol)
    conformer = Chem.Conformer(mol.GetNumAtoms())
    for index, xyz in enumerate(record.positions[0] * 10.0):
        conformer.SetAtomPosition(index, xyz.tolist())
    mol.AddConformer(conformer, assignId=True)
    if record.am1bcc_charges is not None and record.gaff2_types is not None:
        return baselines.gaff2_system_from_types(mol, record.gaff2_types, record.am1bcc_charges, name=record.mol_id)
    return baselines.gaff2_am1bcc_system(mol, name=record.mol_id, cache_dir=cache_dir)


def ff14sb_system_for_record(record: QMRecord) -> openmm.System:
    """Amber ff14SB System (OpenMM amber14-all.xml, vacuum, NoCutoff) from the record's ``pdb`` attribute."""
    import io

    from openmm import app

    if "pdb" not in record.attrs:
        raise ValueError(f"{record.mol_id}: no 'pdb' attribute, ff14SB needs residue names")
    pdb = app.PDBFile(io.StringIO(record.attrs["pdb"]))
    elements = [atom.element.atomic_number for atom in pdb.topology.atoms()]
    if elements != record.molecule.atomic_numbers.tolist():
        raise ValueError(f"{record.mol_id}: the atom order of the stored PDB differs from the QM data")
    return app.ForceField("amber14-all.xml").createSystem(pdb.topology, nonbondedMethod=app.NoCutoff,
                                                          constraints=None, rigidWater=False)


def baseline_predictors(names, cache_dir: str | None = None) -> dict:
    """Map baseline names to functions record -> (energies kJ/mol, forces kJ/mol/nm).

    Names: ``gaff2`` (GAFF2 + AM1-BCC via AmberTools), ``ff14sb`` (OpenMM amber14-all.xml, needs a
    ``pdb`` attribute) and ``label:<name>`` (a label stored in the file, e.g. ``label:amber99sbildn``).
    """
    predictors = {}
    for name in names:
        if name == "gaff2":
            predictors[name] = lambda record: openmm_energies_forces(
                gaff2_system_for_record(record, cache_dir), record.positions)
        elif name == "ff14sb":
            predictors[name] = lambda record: openmm_energies_forces(ff14sb_system_for_record(record), record.positions)
        elif name.startswith("label:"):
            predictors[name.split(":", 1)[1]] = lambda record, label=name.split(":", 1)[1]: record.other_labels[label]
        else:
            raise ValueError(f"unknown baseline {name!r} (use gaff2, ff14sb or label:<name>)")
    return predictors


def evaluate_records(records, model, baselines: dict | None = None, on_error=None, progress=False,
                     parity_points: dict | None = None) -> dict:
    """Errors of ``model`` and of each baseline predictor per group ``subset/label``; also charge RMSE and
    LJ-type accuracy. ``baselines``: name -> function(record) -> (energies, forces), see
    :func:`baseline_predictors`. If ``parity_points`` is a dict, (QM, predicted) force components in
    kcal/mol/Å are appended to it per (group, method), for parity plots.

    Returns {"groups": {group: {method: summary}}, "per_molecule": ..., "charges": ..., "lj_types": ...,
    "failures": [...]}.
    """
    from tqdm.auto import tqdm

    baselines = baselines or {}
    accumulators: dict = {}
    charge_sq, charge_n, lj_correct, lj_n = 0.0, 0, 0, 0
    failures = []
    for record in tqdm(records, desc="evaluate", disable=not progress):
        group = f"{record.subset}/{record.label}"
        parameters = model.predict([record.molecule])[0]
        predictions = {"grappa_like": lambda: parameters_energies_forces(parameters, record.positions)}
        predictions.update({name: (lambda function=function: function(record)) for name, function in baselines.items()})
        for method, predict in predictions.items():
            try:
                energies, forces = predict()
            except Exception as error:  # a baseline failure is reported, never fatal
                if method == "grappa_like":
                    raise
                failures.append({"mol_id": record.mol_id, "method": method, "error": f"{type(error).__name__}: {error}"})
                if on_error:
                    on_error(record.mol_id, method, error)
                continue
            accumulators.setdefault(group, {}).setdefault(method, ErrorAccumulator()).add(
                record.mol_id, record, energies, forces)
            if parity_points is not None and forces is not None and record.forces is not None:
                points = parity_points.setdefault((group, method), ([], []))
                points[0].append(record.forces.ravel() * KJ_PER_NM_TO_KCAL_PER_ANGSTROM)
                points[1].append(np.asarray(forces).ravel() * KJ_PER_NM_TO_KCAL_PER_ANGSTROM)
        if record.am1bcc_charges is not None:
            charge_sq += float(((parameters.charges - record.am1bcc_charges) ** 2).sum())
            charge_n += len(parameters.charges)
        if record.gaff2_types is not None:
            table = model.lj_table
            predicted = [table.names.index(name) for name in parameters.lj_types]
            expected = [table.gaff2_type_to_class.get(t, -1) for t in record.gaff2_types]
            lj_correct += sum(p == e for p, e in zip(predicted, expected))
            lj_n += len(expected)
    return {
        "groups": {group: {method: acc.summary() for method, acc in methods.items()}
                   for group, methods in sorted(accumulators.items())},
        "per_molecule": {group: {method: acc.per_molecule for method, acc in methods.items()}
                         for group, methods in sorted(accumulators.items())},
        "charges": {"rmse_vs_am1bcc": math.sqrt(charge_sq / charge_n) if charge_n else None, "atoms": charge_n},
        "lj_types": {"accuracy_vs_gaff2": lj_correct / lj_n if lj_n else None, "atoms": lj_n},
        "failures": failures,
    }


def pooled(groups: dict, method: str, key_filter=lambda group: True) -> dict:
    """Pool group summaries of one method (weighted by conformations / force components) into one summary."""
    energy_sq = energy_n = force_sq = force_n = molecules = 0
    for group, methods in groups.items():
        if not key_filter(group) or method not in methods:
            continue
        summary = methods[method]
        n = summary["conformations"]
        energy_sq += summary["energy_rmse"] ** 2 * n
        energy_n += n
        molecules += summary["molecules"]
        if summary["force_rmse"] is not None:
            force_sq += summary["force_rmse"] ** 2 * n
            force_n += n
    return {"molecules": molecules, "conformations": energy_n,
            "energy_rmse": math.sqrt(energy_sq / energy_n) if energy_n else None,
            "force_rmse": math.sqrt(force_sq / force_n) if force_n else None}


def markdown_table(groups: dict, methods=("grappa_like", "gaff2")) -> str:
    """Markdown table: per group, energy and force RMSE of each method and the ratio to the first baseline."""
    header = ["group", "molecules", "conformations"]
    for method in methods:
        header += [f"{method} E RMSE", f"{method} F RMSE"]
    if len(methods) > 1:
        header += [f"F ratio {methods[0]}/{methods[1]}", f"E ratio {methods[0]}/{methods[1]}"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    all_groups = dict(groups)
    all_groups["all"] = {method: pooled(groups, method) for method in methods}
    for group, results in all_groups.items():
        first = results.get(methods[0], {})
        cells = [group, str(first.get("molecules", "")), str(first.get("conformations", ""))]
        for method in methods:
            summary = results.get(method)
            cells += [_fmt(summary and summary["energy_rmse"]), _fmt(summary and summary["force_rmse"])]
        if len(methods) > 1:
            a, b = results.get(methods[0]), results.get(methods[1])
            cells += [_ratio(a, b, "force_rmse"), _ratio(a, b, "energy_rmse")]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def _ratio(a, b, key) -> str:
    if not a or not b or a.get(key) is None or not b.get(key):
        return "–"
    return f"{a[key] / b[key]:.2f}"
