"""Out-of-domain score: how much the networks of a model's ensemble disagree on a molecule's MM forces.

A model file may carry extra networks (ensemble members, see :mod:`grappa_like.model_file`) of the
same config, trained independently. For a molecule, a few conformers are embedded with RDKit's
ETKDGv3 (fixed seed, so the score is reproducible bit for bit), the MM forces of every network's
parameters are computed on them (torch energy, float64), and the score is

    sqrt( mean over conformers, atoms, x/y/z of Var_networks[F] )        (kcal/mol/Å)

i.e. the RMS of the per-component standard deviation (population, about the ensemble mean) of
the forces across the main network and its members. Forces come from the OpenMM System that the
writer builds (Reference platform, double precision), so no torch is needed. It is 0 when all networks agree. Where the
training data covered a molecule well the networks agree; where it did not, they extrapolate
differently. docs/benchmarks.md measures how well the score ranks molecules by their force error.
"""

from __future__ import annotations

import numpy as np
from rdkit import Chem

from grappa_like.molecule import embed_conformers
from grappa_like.units import ANGSTROM_TO_NM, KJ_PER_NM_TO_KCAL_PER_ANGSTROM
from grappa_like.writers import to_openmm_system

DEFAULT_CONFORMERS = 3
DEFAULT_SEED = 20260101


def conformers(molecule, count: int = DEFAULT_CONFORMERS, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Positions (M ≤ count, N, 3) in nm of ETKDGv3 conformers of ``molecule`` (seeded, single thread).

    Raises ValueError if RDKit cannot embed the molecule.
    """
    mol = Chem.Mol(molecule.rdkit_mol)
    mol.RemoveAllConformers()
    ids = embed_conformers(mol, count, seed)
    if not ids:
        raise ValueError(f"{molecule.name}: RDKit ETKDGv3 could not embed the molecule")
    return np.stack([mol.GetConformer(i).GetPositions() for i in ids]) * ANGSTROM_TO_NM


def mm_forces(parameters, positions_nm: np.ndarray) -> np.ndarray:
    """MM forces (M, N, 3) in kcal/mol/Å of ``parameters`` (all terms) at ``positions_nm`` (M, N, 3)."""
    import openmm
    from openmm import unit

    n_atoms = positions_nm.shape[1]
    system = to_openmm_system(parameters, [6] * n_atoms)  # masses do not enter the forces
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    forces = []
    for positions in positions_nm:
        context.setPositions(positions)
        state = context.getState(getForces=True)
        forces.append(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
    return np.asarray(forces) * KJ_PER_NM_TO_KCAL_PER_ANGSTROM


def force_spread(forces: np.ndarray) -> float:
    """RMS over conformers, atoms and components of the standard deviation across networks (axis 0).

    The population variance is taken as the mean of squared pairwise differences over 2, which is
    exactly 0 when all networks agree (the mean-based formula leaves rounding residues).
    """
    forces = np.asarray(forces, dtype=np.float64)
    differences = forces[:, None] - forces[None, :]
    return float(np.sqrt((differences ** 2).mean(axis=(0, 1)).mean() / 2.0))


def ensemble_force_spread(molecule, model, parameters=None, positions_nm: np.ndarray | None = None) -> float | None:
    """Out-of-domain score (kcal/mol/Å) of a :class:`~grappa_like.molecule.Molecule` under a loaded
    :class:`~grappa_like.api.Model`, or None if the model has no ensemble (public entry point:
    :func:`grappa_like.api.ood_score`). ``parameters``: the main network's, if already computed;
    ``positions_nm``: conformers instead of the model's ETKDG settings. Raises ValueError if no
    conformer can be embedded."""
    if not model.members:
        return None
    if positions_nm is None:
        settings = model.ood_settings
        positions_nm = conformers(molecule, settings["conformers"], settings["seed"])
    if parameters is None:
        parameters = model.predict([molecule])[0]
    all_parameters = [parameters] + [member.predict([molecule])[0] for member in model.members]
    return force_spread([mm_forces(p, positions_nm) for p in all_parameters])
