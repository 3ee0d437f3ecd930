"""Short-MD sanity check of one parameterized molecule: blow-ups, bond-length, planarity and chirality outliers.

NVT Langevin MD (LangevinMiddleIntegrator, friction 1/ps) in vacuum from a given start structure,
minimised first with the System itself. Every 0.1 ps (and after the minimisation) it checks:

- blow-up: non-finite coordinates or energy, an OpenMM error, or a potential energy more than
  50 kJ/mol per atom above the minimised energy (equipartition puts it near 1.25 kJ/mol per atom
  at 300 K); the run stops at a blow-up;
- bond-length outliers: |r - r0| > 0.3 Å for any unconstrained bond (thermal fluctuations at
  300 K are ~0.03-0.08 Å);
- planarity of aromatic rings: largest distance of a ring atom from the ring's best-fit plane
  (SVD), flagged above 0.3 Å (a flat ring at 300 K stays below ~0.15 Å);
- planarity of sp2 centres (RDKit hybridisation SP2, three neighbours): distance of the centre from
  the plane of its neighbours, flagged above 0.3 Å (a tetrahedral centre sits ~0.5 Å out of it);
- chirality: the sign of the signed volume of every tetrahedral stereocentre compared with the
  start structure, and the CIP labels (RDKit, from 3D) of start and end.

Lengths in Å, energies in kJ/mol. Used by ``scripts/md_stability.py`` and the HTML report.
"""

from __future__ import annotations

import math

import numpy as np
from rdkit import Chem

from grappa_like.molecule import with_positions

TEMPERATURE_K = 300.0
FRICTION_PER_PS = 1.0
SAMPLE_EVERY_PS = 0.1
SEED = 20261125
THRESHOLDS = {
    "bond_deviation_angstrom": 0.3,
    "ring_out_of_plane_angstrom": 0.3,
    "energy_above_minimum_kj_mol_per_atom": 50.0,
}
SP2_OUT_OF_PLANE_ANGSTROM = 0.3


def aromatic_rings(mol: Chem.Mol) -> list[list[int]]:
    """Atom indices of every ring whose atoms are all aromatic."""
    return [list(ring) for ring in mol.GetRingInfo().AtomRings()
            if all(mol.GetAtomWithIdx(i).GetIsAromatic() for i in ring)]


def ring_out_of_plane(positions: np.ndarray, rings) -> float:
    """Largest distance (Å) of a ring atom from its ring's best-fit plane, over all rings (0 without rings)."""
    worst = 0.0
    for ring in rings:
        xyz = positions[ring] - positions[ring].mean(axis=0)
        normal = np.linalg.svd(xyz)[2][-1]
        worst = max(worst, float(np.abs(xyz @ normal).max()))
    return worst


def sp2_centres(mol: Chem.Mol) -> list[tuple[int, list[int]]]:
    """(centre, its three neighbours) for every atom that RDKit calls SP2 and that has exactly three neighbours."""
    return [(atom.GetIdx(), sorted(n.GetIdx() for n in atom.GetNeighbors())) for atom in mol.GetAtoms()
            if atom.GetHybridization() == Chem.HybridizationType.SP2 and atom.GetDegree() == 3]


def sp2_out_of_plane(positions: np.ndarray, centres) -> np.ndarray:
    """Distance (Å) of each sp2 centre from the plane through its three neighbours (positions in Å)."""
    distances = []
    for centre, (a, b, c) in centres:
        normal = np.cross(positions[b] - positions[a], positions[c] - positions[a])
        distances.append(abs(float(np.dot(positions[centre] - positions[a], normal))) / np.linalg.norm(normal))
    return np.array(distances)


def stereocentres(mol: Chem.Mol) -> list[tuple[int, list[int]]]:
    """Tetrahedral stereocentres (specified or not) with their neighbours in atom-index order."""
    centres = Chem.FindMolChiralCenters(mol, includeUnassigned=True, useLegacyImplementation=False)
    return [(index, sorted(n.GetIdx() for n in mol.GetAtomWithIdx(index).GetNeighbors())) for index, _ in centres]


def signed_volumes(positions: np.ndarray, centres) -> np.ndarray:
    """Signed volume (p1 - c)·((p2 - c)×(p3 - c)) of each stereocentre c with its first three neighbours."""
    volumes = []
    for centre, neighbours in centres:
        a, b, c = (positions[n] - positions[centre] for n in neighbours[:3])
        volumes.append(float(np.dot(a, np.cross(b, c))))
    return np.array(volumes)


def cip_labels(mol: Chem.Mol, positions: np.ndarray) -> dict[int, str]:
    """CIP labels (R/S) of the stereocentres of ``mol`` placed at ``positions`` (Å), from 3D."""
    copy = with_positions(mol, positions)
    Chem.AssignStereochemistryFrom3D(copy, replaceExistingTags=True)
    return {atom.GetIdx(): atom.GetProp("_CIPCode") for atom in copy.GetAtoms() if atom.HasProp("_CIPCode")}


def run_md_check(system, mol: Chem.Mol, bonds: np.ndarray, r0: np.ndarray, start_positions: np.ndarray,
                 time_ps: float = 10.0, timestep_fs: float = 1.0, platform: str = "CPU", seed: int = SEED,
                 constrained: np.ndarray | None = None) -> dict:
    """Run the MD check of one molecule; ``r0`` and ``start_positions`` in Å. Returns the metrics (Å, kJ/mol).

    ``constrained`` marks the bonds held by constraints of ``system`` (skipped by the bond check).
    """
    import openmm
    from openmm import unit

    constrained = np.zeros(len(bonds), dtype=bool) if constrained is None else np.asarray(constrained, dtype=bool)
    n_atoms = system.getNumParticles()
    degrees_of_freedom = 3 * n_atoms - system.getNumConstraints()
    rings = aromatic_rings(mol)
    planar_centres = sp2_centres(mol)
    centres = stereocentres(mol)
    start_volumes = signed_volumes(start_positions, centres)
    start_cip = cip_labels(mol, start_positions)
    record = {"n_atoms": n_atoms, "n_aromatic_rings": len(rings), "n_sp2_centres": len(planar_centres),
              "n_stereocentres": len(centres)}

    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE_K * unit.kelvin, FRICTION_PER_PS / unit.picosecond,
                                                 timestep_fs * unit.femtoseconds)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform))
    context.setPositions(start_positions / 10.0 * unit.nanometer)
    if system.getNumConstraints():
        context.applyConstraints(1e-6)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 5000)
    minimum = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    context.setVelocitiesToTemperature(TEMPERATURE_K * unit.kelvin, seed)

    steps_per_sample = max(1, round(SAMPLE_EVERY_PS * 1000.0 / timestep_fs))
    n_samples = max(1, round(time_ps / SAMPLE_EVERY_PS))
    blow_up, worst_bond, worst_bond_index, outlier_bonds = None, 0.0, None, set()
    worst_ring, ever_inverted, temperatures = 0.0, np.zeros(len(centres), dtype=bool), []
    worst_sp2, sp2_outliers = np.zeros(len(planar_centres)), set()
    positions = start_positions
    kinetic_factor = 2.0 / (degrees_of_freedom * unit.MOLAR_GAS_CONSTANT_R.value_in_unit(
        unit.kilojoule_per_mole / unit.kelvin))
    for sample in range(n_samples + 1):
        if sample:
            try:
                integrator.step(steps_per_sample)
            except Exception as error:  # OpenMM raises on NaN coordinates
                blow_up = f"OpenMM error at {sample * SAMPLE_EVERY_PS:.1f} ps: {' '.join(str(error).split())[:120]}"
                break
        state = context.getState(getPositions=True, getEnergy=True)
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        if not (np.all(np.isfinite(positions)) and math.isfinite(energy) and math.isfinite(kinetic)):
            blow_up = f"non-finite coordinates or energy at {sample * SAMPLE_EVERY_PS:.1f} ps"
            break
        if (energy - minimum) / n_atoms > THRESHOLDS["energy_above_minimum_kj_mol_per_atom"]:
            blow_up = (f"potential energy {(energy - minimum) / n_atoms:.3g} kJ/mol per atom above the minimum "
                       f"at {sample * SAMPLE_EVERY_PS:.1f} ps")
            break
        if sample:
            temperatures.append(kinetic * kinetic_factor)
        lengths = np.linalg.norm(positions[bonds[:, 0]] - positions[bonds[:, 1]], axis=1)
        deviation = np.where(constrained, 0.0, np.abs(lengths - r0))
        if deviation.max(initial=0.0) > worst_bond:
            worst_bond, worst_bond_index = float(deviation.max()), int(deviation.argmax())
        outlier_bonds.update(np.flatnonzero(deviation > THRESHOLDS["bond_deviation_angstrom"]).tolist())
        worst_ring = max(worst_ring, ring_out_of_plane(positions, rings))
        if planar_centres:
            heights = sp2_out_of_plane(positions, planar_centres)
            worst_sp2 = np.maximum(worst_sp2, heights)
            sp2_outliers.update(planar_centres[i][0] for i in np.flatnonzero(heights > SP2_OUT_OF_PLANE_ANGSTROM))
        if centres:
            ever_inverted |= np.sign(signed_volumes(positions, centres)) != np.sign(start_volumes)

    end_volumes = signed_volumes(positions, centres) if centres else np.zeros(0)
    flipped = [centres[i][0] for i in np.flatnonzero(np.sign(end_volumes) != np.sign(start_volumes))]
    end_cip = cip_labels(mol, positions) if blow_up is None else {}
    cip_changes = sorted(i for i in start_cip if blow_up is None and end_cip.get(i) != start_cip[i])
    bond_atoms = None if worst_bond_index is None else [int(a) for a in bonds[worst_bond_index]]
    record.update(
        status="blow-up" if blow_up else "ran",
        blow_up=blow_up,
        simulated_ps=round(len(temperatures) * SAMPLE_EVERY_PS, 3),
        max_bond_deviation=round(worst_bond, 4),
        max_bond_deviation_atoms=bond_atoms,
        n_bond_outliers=len(outlier_bonds),
        bond_outlier_atoms=[[int(a) for a in bonds[i]] for i in sorted(outlier_bonds)],
        max_r0_minus_start=round(float(np.abs(r0 - np.linalg.norm(
            start_positions[bonds[:, 0]] - start_positions[bonds[:, 1]], axis=1)).max(initial=0.0)), 4),
        max_ring_out_of_plane=round(worst_ring, 4),
        max_sp2_out_of_plane=round(float(worst_sp2.max(initial=0.0)), 4),
        sp2_outliers=sorted(int(i) for i in sp2_outliers),
        chirality_flips=flipped,
        transient_inversions=[centres[i][0] for i in np.flatnonzero(ever_inverted)],
        cip_changes=cip_changes,
        mean_temperature_k=round(float(np.mean(temperatures)), 1) if temperatures else None,
    )
    record["stable"] = (blow_up is None and not outlier_bonds and not flipped and not cip_changes
                        and worst_ring <= THRESHOLDS["ring_out_of_plane_angstrom"])
    return record
