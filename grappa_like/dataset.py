"""Dataset builder: molecules in, a ``grappa_like-qm-v1`` HDF5 file of labelled conformations out.

Per molecule (docs/dataset.md has the full recipe):

1. conformations (:func:`generate_conformations`): ETKDGv3 embeddings (seeded), MMFF94 minima (UFF
   where MMFF94 has no parameters), Langevin MD snapshots on the MMFF94 surface (or on the
   labeler's) at several temperatures, optionally unminimised ETKDG conformers, torsion drives of
   rotatable bonds and, optionally, of amide / ester / conjugated bonds (constrained MMFF94
   relaxation at each grid point), and optionally normal-mode samples around the labeler's own
   minimum (:func:`normal_mode_samples`);
2. labels: energies and forces from a :mod:`grappa_like.labelers` labeler, AM1-BCC charges and
   GAFF2 types from AmberTools when installed;
3. the molecule is written as its own small file ``<out>.parts/<mol_id>.h5`` (temporary name, then
   renamed), and ``<out>`` is assembled from the parts at the end (temporary name, then renamed).

A run that is interrupted at any point and started again skips every molecule whose part exists,
so a finished molecule is never computed or written twice, and no half-written file is ever seen
under a final name. Units inside this module are those of the data files: Å, kcal/mol, kcal/mol/Å.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

import h5py
import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolAlign, rdMolTransforms
from rdkit.Chem.rdMolDescriptors import CalcNumRotatableBonds

from grappa_like import errors
from grappa_like.data import LAYOUT
from grappa_like.fileio import atomic_write, atomic_write_text
from grappa_like.labelers import Labeler, LabelerFailedError, LabelerRejectedError, LabelerSpec, is_zwitterion
from grappa_like.molecule import embed_conformers, with_positions

log = logging.getLogger(__name__)

BOLTZMANN_KCAL_PER_MOL_K = 0.0019872043
ACCELERATION_UNIT = 4.184e-4  # 1 (kcal/mol/Å)/(g/mol) in Å/fs²
ROTATABLE_BOND = Chem.MolFromSmarts("[!$(*#*)&!D1]-&!@[!$(*#*)&!D1]")
# Bonds with a barrier users care about that the rotatable-bond ranking may leave undriven, in the
# order they are picked (``--conjugated-torsions``); atoms :1 and :2 are the bond (docs/dataset.md).
CONJUGATED_BOND_CLASSES = (
    ("amide", "[CX3:1](=[OX1])-!@[NX3:2]"),          # amides, ureas, carbamates (C(=O)-N)
    ("thioamide", "[CX3:1](=[SX1])-!@[NX3:2]"),
    ("ester", "[CX3:1](=[OX1])-!@[OX2:2]"),          # esters and acids (C(=O)-O)
    ("aryl-aryl", "[a:1]-!@[a:2]"),
    ("conjugated", "[#6,#7;$(*=*),a;!$(*#*):1]-!@[#6,#7;$(*=*),a;!$(*#*):2]"),  # aryl-C=X, dienes, enones...
)
CM_PER_S = 2.99792458e10
KCAL_PER_G_ANGSTROM2_TO_PER_S2 = 4.184e26  # 1 kcal/mol/Å²/(g/mol) as s⁻² (mass-weighted Hessian eigenvalue)
MODE_FLOOR_PER_CM = 200.0  # normal modes softer than this are sampled as if this stiff (100 cm-1 overshot 3x on NMA)
MOL_ID_PATTERN = re.compile(r"[^A-Za-z0-9_.-]")
FAILURES_HEADER = "record\tinput\terror_class\tmessage"
DEFAULT_SEED = 20261125


class ConformerError(errors.GrappaLikeError, RuntimeError):
    """Conformations could not be made for a molecule (embedding failed, MD blew up)."""


class MoleculeTimeoutError(errors.GrappaLikeError, TimeoutError):
    """Building one molecule took longer than its time limit (``--molecule-timeout``)."""


class DatasetBuildError(errors.GrappaLikeError):
    """A build cannot start or finish (parts folder in use, settings differ from the parts', no molecule built)."""


@dataclass(frozen=True)
class ConformerRecipe:
    """How conformations are made (defaults reproduce train-v0's drug-like recipe, plus torsion drives)."""

    conformations: int = 16            # MMFF minima + MD snapshots per molecule (torsion drives come on top)
    max_minima: int = 4                # distinct MMFF minima kept (lowest MMFF energy first)
    max_minima_rigid: int = 2          # ... for molecules with at most one rotatable bond
    embeddings: int = 20               # ETKDGv3 embeddings tried
    prune_rms: float = 0.25            # Å, ETKDG pruning
    distinct_rmsd: float = 0.3         # Å, heavy-atom RMSD (all atoms below 4 heavy atoms) between kept minima
    temperatures: tuple = (300.0, 150.0, 400.0, 225.0, 350.0, 100.0)  # K, MD from minimum 1, 2, ...
    single_minimum_temperatures: tuple = (150.0, 350.0)  # K, two trajectories when only one minimum exists
    timestep_fs: float = 0.5
    friction_per_ps: float = 5.0
    equilibration_fs: float = 150.0
    snapshot_interval_fs: float = 125.0
    md_surface: str = "mmff"           # "mmff" or "labeler" (MD on the labeler's own surface; costly)
    torsion_points: int = 12           # grid points per driven torsion (360° / points apart); 0: no drives
    max_torsions: int = 4              # rotatable bonds driven per molecule at most
    torsion_force_constant: float = 1.0e4  # kcal/mol/rad², MMFF dihedral constraint while relaxing
    max_energy_above_lowest: float = 150.0  # kcal/mol; labelled rows higher than this are dropped
    min_distance: float = 0.6          # Å; rows with a closer atom pair are dropped before labelling
    # Added after the v1 builds: at their defaults they change nothing and are left out of the
    # recorded settings (:meth:`settings_dict`), so old parts folders resume and old files compare equal.
    md_temperatures: tuple = ()        # K; if given, one MD trajectory per temperature, from minima 1, 2, ...
    etkdg_conformations: int = 0       # unminimised ETKDGv3 conformers added (own embedding, no pruning)
    conjugated_torsions: int = 0       # extra drives of CONJUGATED_BOND_CLASSES bonds not driven already
    normal_mode_conformations: int = 0  # samples around the labeler's own minimum (neutral molecules)
    normal_mode_temperatures: tuple = (300.0, 450.0, 600.0)  # K, used in turn by the normal-mode samples

    ADDED_FIELDS = ("md_temperatures", "etkdg_conformations", "conjugated_torsions", "normal_mode_conformations",
                    "normal_mode_temperatures")

    def __post_init__(self):
        if self.conformations < 1 or self.max_minima < 1 or self.max_minima_rigid < 1:
            raise ValueError("conformations, max_minima and max_minima_rigid must be at least 1")
        if self.md_surface not in ("mmff", "labeler"):
            raise ValueError(f"md_surface must be 'mmff' or 'labeler', not {self.md_surface!r}")
        if min(self.torsion_points, self.max_torsions, self.conjugated_torsions, self.etkdg_conformations,
               self.normal_mode_conformations) < 0:
            raise ValueError("torsion_points, max_torsions, conjugated_torsions, etkdg_conformations and "
                             "normal_mode_conformations must not be negative")
        for name in ("md_temperatures", "normal_mode_temperatures"):
            temperatures = getattr(self, name)
            object.__setattr__(self, name, tuple(float(t) for t in temperatures))
            if any(not 0.0 < t <= 2000.0 for t in getattr(self, name)):
                raise ValueError(f"{name}: temperatures must lie in (0, 2000] K, got {list(temperatures)}")
        if not self.normal_mode_temperatures:
            raise ValueError("normal_mode_temperatures must not be empty")
        if not self.max_energy_above_lowest > 0.0:
            raise ValueError(f"max_energy_above_lowest must be positive, got {self.max_energy_above_lowest}")

    def settings_dict(self) -> dict:
        """The recipe as recorded in settings.json and the ``builder`` attr: fields added after the v1
        builds only when they differ from their defaults (so a default recipe records what it always did)."""
        defaults = ConformerRecipe.__dataclass_fields__
        return {key: value for key, value in dataclasses.asdict(self).items()
                if key not in self.ADDED_FIELDS or value != defaults[key].default}


@dataclass
class Conformations:
    """Conformations of one molecule: positions (M, N, 3) Å, one kind per row, the force field used."""

    positions: np.ndarray
    kinds: list[str]
    force_field: str
    md_omitted: list[str] = field(default_factory=list)  # MD trajectories left out, and why


def molecule_seed(mol_id: str, seed: int) -> int:
    """A 31-bit seed for one molecule, from the run's seed and the molecule id (independent of order)."""
    digest = hashlib.sha256(f"{int(seed)}|{mol_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


# ---------------------------------------------------------------------------------------------
# Conformations
# ---------------------------------------------------------------------------------------------

class _ClassicalSurface:
    """MMFF94 (UFF where MMFF94 has no parameters) of one molecule: force fields, energy and forces."""

    def __init__(self, mol: Chem.Mol):
        self.mol = mol
        self.mmff_properties = None
        if AllChem.MMFFHasAllMoleculeParams(mol):
            self.mmff_properties = AllChem.MMFFGetMoleculeProperties(mol, mmffVariant="MMFF94")
            self.mmff_properties.SetMMFFVerbosity(0)
            self.name = "MMFF94"
        elif AllChem.UFFHasAllMoleculeParams(mol):
            self.name = "UFF"
        else:
            raise ConformerError("neither MMFF94 nor UFF has parameters for this molecule")
        self._evaluator = None

    def force_field(self, mol: Chem.Mol, conformer_id: int):
        """A fresh RDKit force field on conformer ``conformer_id`` of ``mol`` (this molecule or a copy)."""
        if self.mmff_properties is not None:
            return AllChem.MMFFGetMoleculeForceField(mol, self.mmff_properties, confId=conformer_id,
                                                     ignoreInterfragInteractions=False)
        return AllChem.UFFGetMoleculeForceField(mol, confId=conformer_id, ignoreInterfragInteractions=False)

    def add_torsion_constraint(self, force_field, atoms, degrees: float, force_constant: float) -> None:
        """Hold dihedral ``atoms`` at ``degrees`` (harmonic, kcal/mol/rad²) during a minimisation."""
        add = (force_field.MMFFAddTorsionConstraint if self.mmff_properties is not None
               else force_field.UFFAddTorsionConstraint)
        add(*atoms, False, degrees, degrees, force_constant)

    def __call__(self, positions: np.ndarray) -> tuple[float, np.ndarray]:
        """(energy kcal/mol, forces (N, 3) kcal/mol/Å) at ``positions`` (Å)."""
        if self._evaluator is None:
            self._evaluator = self.force_field(self.mol, self.mol.GetConformer().GetId())
        flat = np.asarray(positions, dtype=np.float64).ravel().tolist()
        energy = self._evaluator.CalcEnergy(flat)
        gradient = np.asarray(self._evaluator.CalcGrad(flat), dtype=np.float64).reshape(-1, 3)
        return energy, -gradient


def _embed(mol: Chem.Mol, recipe: ConformerRecipe, seed: int) -> list[int]:
    """ETKDGv3 conformers of ``mol`` (in place); their ids. Raises ConformerError if none can be made."""
    conformer_ids = embed_conformers(mol, recipe.embeddings, seed, recipe.prune_rms)
    if not conformer_ids:
        raise ConformerError("RDKit ETKDGv3 could not embed the molecule")
    return conformer_ids


def _minima(mol: Chem.Mol, surface: _ClassicalSurface, conformer_ids, max_minima: int, recipe: ConformerRecipe):
    """Positions (Å) of up to ``max_minima`` distinct minimised conformers, lowest energy first."""
    minimised = []
    for conformer_id in conformer_ids:
        force_field = surface.force_field(mol, conformer_id)
        force_field.Minimize(maxIts=2000)
        positions = np.asarray(force_field.Positions(), dtype=np.float64).reshape(-1, 3)
        conformer = mol.GetConformer(conformer_id)
        for index, xyz in enumerate(positions):
            conformer.SetAtomPosition(index, xyz.tolist())
        minimised.append((force_field.CalcEnergy(), conformer_id))
    minimised.sort()
    heavy = [atom.GetIdx() for atom in mol.GetAtoms() if atom.GetAtomicNum() > 1]
    compare = Chem.RemoveHs(mol) if len(heavy) >= 4 else Chem.Mol(mol)
    kept: list[int] = []
    for _, conformer_id in minimised:
        if len(kept) == max_minima:
            break
        if all(rdMolAlign.GetBestRMS(compare, compare, kept_id, conformer_id) > recipe.distinct_rmsd
               for kept_id in kept):
            kept.append(conformer_id)
    return [mol.GetConformer(conformer_id).GetPositions() for conformer_id in kept]


def langevin_snapshots(positions: np.ndarray, masses: np.ndarray, energy_and_forces, temperature: float,
                       n_snapshots: int, recipe: ConformerRecipe, rng: np.random.Generator) -> list[np.ndarray]:
    """Snapshots (Å) of Langevin (BAOAB) MD from ``positions`` (Å) on ``energy_and_forces`` (kcal/mol/Å).

    Masses in g/mol. After ``recipe.equilibration_fs`` one snapshot every ``recipe.snapshot_interval_fs``.
    """
    if n_snapshots <= 0:
        return []
    dt = recipe.timestep_fs
    inverse_mass = 1.0 / np.asarray(masses, dtype=np.float64)[:, None]
    velocity_scale = np.sqrt(BOLTZMANN_KCAL_PER_MOL_K * temperature * ACCELERATION_UNIT * inverse_mass)  # Å/fs
    x = np.array(positions, dtype=np.float64)
    v = rng.normal(size=x.shape) * velocity_scale
    v -= (v / inverse_mass).sum(0) / (1.0 / inverse_mass).sum()  # no centre-of-mass motion
    acceleration = energy_and_forces(x)[1] * ACCELERATION_UNIT * inverse_mass
    c1 = math.exp(-recipe.friction_per_ps * 1e-3 * dt)
    c2 = math.sqrt(1.0 - c1 * c1)
    equilibration_steps = int(round(recipe.equilibration_fs / dt))
    interval_steps = max(1, int(round(recipe.snapshot_interval_fs / dt)))
    snapshots = []
    for step in range(1, equilibration_steps + n_snapshots * interval_steps + 1):
        v += 0.5 * dt * acceleration
        x += 0.5 * dt * v
        v = c1 * v + c2 * velocity_scale * rng.normal(size=x.shape)
        x += 0.5 * dt * v
        acceleration = energy_and_forces(x)[1] * ACCELERATION_UNIT * inverse_mass
        v += 0.5 * dt * acceleration
        if not np.all(np.isfinite(x)):
            raise ConformerError(f"MD at {temperature:g} K became unstable (non-finite positions)")
        if step > equilibration_steps and (step - equilibration_steps) % interval_steps == 0:
            snapshots.append(x.copy())
    return snapshots


def _outer_atom(mol: Chem.Mol, centre: int, partner: int) -> int | None:
    """The heaviest neighbour of ``centre`` other than ``partner`` (lowest index on ties), or None."""
    neighbours = [a for a in mol.GetAtomWithIdx(centre).GetNeighbors() if a.GetIdx() != partner]
    if not neighbours:
        return None
    return min(neighbours, key=lambda a: (-a.GetAtomicNum(), a.GetIdx())).GetIdx()


def torsion_drives(mol: Chem.Mol, max_torsions: int) -> list[tuple[int, int, int, int]]:
    """Dihedrals (i, j, k, l) to drive, one per rotatable bond j-k, at most ``max_torsions``.

    i and l are the heaviest neighbours (lowest index on ties); bonds with heavy atoms beyond both
    ends come first (then methyl-like rotors), each group in bond order.
    """
    candidates = []
    for j, k in sorted(tuple(sorted(match)) for match in mol.GetSubstructMatches(ROTATABLE_BOND)):
        i, l = _outer_atom(mol, j, k), _outer_atom(mol, k, j)
        if i is None or l is None:
            continue
        both_heavy = mol.GetAtomWithIdx(i).GetAtomicNum() > 1 and mol.GetAtomWithIdx(l).GetAtomicNum() > 1
        candidates.append((not both_heavy, (i, j, k, l)))
    return [dihedral for _, dihedral in sorted(candidates, key=lambda c: c[0])][:max_torsions]


def _drive(mol: Chem.Mol, surface: _ClassicalSurface, start: np.ndarray, dihedral, recipe: ConformerRecipe):
    """(positions Å, kind) of a constrained scan of ``dihedral`` from ``start``, relaxed on the classical surface."""
    work = with_positions(mol, start)
    conformer_id = 0
    results = []
    for point in range(recipe.torsion_points):
        degrees = -180.0 + point * 360.0 / recipe.torsion_points
        target = work.GetConformer(conformer_id)
        for index, xyz in enumerate(start):
            target.SetAtomPosition(index, xyz.tolist())
        rdMolTransforms.SetDihedralDeg(target, *dihedral, degrees)
        force_field = surface.force_field(work, conformer_id)
        surface.add_torsion_constraint(force_field, dihedral, degrees, recipe.torsion_force_constant)
        force_field.Minimize(maxIts=2000)
        positions = np.asarray(force_field.Positions(), dtype=np.float64).reshape(-1, 3)
        results.append((positions, f"torsion:{'-'.join(map(str, dihedral))}:{degrees:g}"))
    return results


def conjugated_drives(mol: Chem.Mol, max_count: int, exclude=()) -> list[tuple[tuple[int, int, int, int], str]]:
    """(dihedral (i, j, k, l), class name) for up to ``max_count`` bonds of :data:`CONJUGATED_BOND_CLASSES`.

    Classes are taken in their order (amide, thioamide, ester, aryl-aryl, other conjugated), each in
    bond order; a bond j-k in ``exclude`` (sorted pairs, e.g. those driven already) is skipped, and
    so is a bond with an end that has no other neighbour. i and l as in :func:`torsion_drives`.
    """
    chosen, seen = [], set(exclude)
    for name, smarts in CONJUGATED_BOND_CLASSES:
        pattern = Chem.MolFromSmarts(smarts)
        mapped = [pattern.GetAtomWithIdx(a).GetAtomMapNum() for a in range(pattern.GetNumAtoms())]
        ends = (mapped.index(1), mapped.index(2))
        bonds = sorted({tuple(sorted((match[ends[0]], match[ends[1]]))) for match in mol.GetSubstructMatches(pattern)})
        for j, k in bonds:
            if len(chosen) == max_count:
                return chosen
            i, l = _outer_atom(mol, j, k), _outer_atom(mol, k, j)
            if (j, k) in seen or i is None or l is None:
                continue
            seen.add((j, k))
            chosen.append(((i, j, k, l), name))
    return chosen


def _md_trajectories(minima: list, recipe: ConformerRecipe) -> list[tuple[np.ndarray, float]]:
    """(start positions, temperature K) of each MD trajectory.

    Default: one per minimum at ``recipe.temperatures`` (two from a single minimum at
    ``single_minimum_temperatures``), as train-v0. With ``md_temperatures``: one per temperature,
    started from minima 1, 2, ... in turn.
    """
    if recipe.md_temperatures:
        return [(minima[i % len(minima)], t) for i, t in enumerate(recipe.md_temperatures)]
    if len(minima) == 1:
        return [(minima[0], t) for t in recipe.single_minimum_temperatures]
    return [(start, recipe.temperatures[i % len(recipe.temperatures)]) for i, start in enumerate(minima)]


def generate_conformations(mol: Chem.Mol, recipe: ConformerRecipe, seed: int,
                           energy_and_forces=None) -> Conformations:
    """Conformations (Å) of ``mol`` (explicit H): MMFF minima, MD snapshots, unminimised ETKDG conformers,
    torsion drives, in that order.

    Row 0 is the lowest MMFF94 minimum. ``energy_and_forces(positions Å) -> (kcal/mol, kcal/mol/Å)``
    replaces the MMFF94 surface for the MD when given (``md_surface = "labeler"``).
    """
    work = Chem.Mol(mol)
    work.RemoveAllConformers()
    conformer_ids = _embed(work, recipe, seed)
    surface = _ClassicalSurface(work)
    rotatable = CalcNumRotatableBonds(work)
    max_minima = recipe.max_minima if rotatable > 1 else min(recipe.max_minima, recipe.max_minima_rigid)
    max_minima = min(max_minima, recipe.conformations)
    minima = _minima(work, surface, conformer_ids, max_minima, recipe)
    positions = list(minima)
    kinds = ["min"] * len(minima)

    trajectories = _md_trajectories(minima, recipe)
    remaining = recipe.conformations - len(minima)
    masses = np.array([atom.GetMass() for atom in work.GetAtoms()])
    md_surface = energy_and_forces if energy_and_forces is not None else surface
    md_omitted = []
    for trajectory, (start, temperature) in enumerate(trajectories):
        n_snapshots = remaining // len(trajectories) + (1 if trajectory < remaining % len(trajectories) else 0)
        rng = np.random.default_rng([seed, trajectory])
        try:
            snapshots = langevin_snapshots(start, masses, md_surface, temperature, n_snapshots, recipe, rng)
        except ConformerError as error:  # one unstable trajectory costs its own snapshots, not the molecule
            md_omitted.append(f"{n_snapshots} snapshots: {error}")
            continue
        positions += snapshots
        kinds += [f"md{temperature:g}"] * len(snapshots)

    if recipe.etkdg_conformations:
        raw = Chem.Mol(work)
        raw.RemoveAllConformers()
        for conformer_id in embed_conformers(raw, recipe.etkdg_conformations, (seed + 1) & 0x7FFFFFFF):
            positions.append(raw.GetConformer(conformer_id).GetPositions())
            kinds.append("etkdg")

    if recipe.torsion_points:
        dihedrals = torsion_drives(work, recipe.max_torsions)
        driven = {tuple(sorted(d[1:3])) for d in dihedrals}
        dihedrals += [d for d, _ in conjugated_drives(work, recipe.conjugated_torsions, driven)]
        for dihedral in dihedrals:
            for xyz, kind in _drive(work, surface, minima[0], dihedral, recipe):
                positions.append(xyz)
                kinds.append(kind)
    return Conformations(np.array(positions, dtype=np.float64), kinds, surface.name, md_omitted)


def relax_on_surface(positions: np.ndarray, energy_and_forces, max_steps: int = 500,
                     max_force: float = 0.1) -> tuple[np.ndarray, float, bool]:
    """BFGS minimisation on ``energy_and_forces`` (Å, kcal/mol, kcal/mol/Å) from ``positions``.

    Steps are capped at 0.2 Å per coordinate, with a backtracking line search. Returns (positions,
    energy, converged: largest force component below ``max_force``).
    """
    x = np.array(positions, dtype=np.float64).ravel()
    energy, forces = energy_and_forces(x.reshape(-1, 3))
    gradient = -np.asarray(forces, dtype=np.float64).ravel()
    inverse_hessian = np.eye(len(x)) / 70.0  # Å²/(kcal/mol): a typical bond-angle stiffness to start from
    for _ in range(max_steps):
        if np.abs(gradient).max() < max_force:
            return x.reshape(-1, 3), energy, True
        direction = -inverse_hessian @ gradient
        if direction @ gradient >= 0.0:  # not downhill: restart from the guess
            inverse_hessian = np.eye(len(x)) / 70.0
            direction = -inverse_hessian @ gradient
        direction *= min(1.0, 0.2 / np.abs(direction).max())
        scale = 1.0
        while True:
            new_energy, new_forces = energy_and_forces((x + scale * direction).reshape(-1, 3))
            if new_energy <= energy + 1e-4 * scale * (direction @ gradient) or scale < 1e-3:
                break
            scale *= 0.5
        step = scale * direction
        new_gradient = -np.asarray(new_forces, dtype=np.float64).ravel()
        change = new_gradient - gradient
        curvature = step @ change
        if curvature > 1e-10:  # BFGS update of the inverse Hessian
            left = np.eye(len(x)) - np.outer(step, change) / curvature
            inverse_hessian = left @ inverse_hessian @ left.T + np.outer(step, step) / curvature
        x, energy, gradient = x + step, new_energy, new_gradient
    return x.reshape(-1, 3), energy, bool(np.abs(gradient).max() < max_force)


def finite_difference_hessian(positions: np.ndarray, forces_of_batch, step: float = 0.005) -> np.ndarray:
    """(3N, 3N) Hessian (kcal/mol/Å²) by central differences of forces (kcal/mol/Å), symmetrised.

    ``forces_of_batch(conformations (K, N, 3) Å) -> forces (K, N, 3)`` gets all 6N displaced
    geometries at once, so a batched labeler (ANI-2x) can evaluate them together.
    """
    x = np.asarray(positions, dtype=np.float64).ravel()
    displaced = np.repeat(x[None], 2 * len(x), axis=0)
    for coordinate in range(len(x)):
        displaced[2 * coordinate, coordinate] += step
        displaced[2 * coordinate + 1, coordinate] -= step
    forces = np.asarray(forces_of_batch(displaced.reshape(len(displaced), -1, 3)), dtype=np.float64)
    forces = forces.reshape(len(x), 2, len(x))
    hessian = -(forces[:, 0] - forces[:, 1]) / (2.0 * step)
    return 0.5 * (hessian + hessian.T)


def vibrational_modes(positions: np.ndarray, masses: np.ndarray, hessian: np.ndarray):
    """(eigenvalues kcal/mol/Å²/(g/mol), mass-weighted orthonormal modes (3N, K)) of the internal motions.

    Rigid translations and rotations (5 for a linear molecule, 6 otherwise) are projected out
    before diagonalising, so every returned mode is a vibration.
    """
    x = np.asarray(positions, dtype=np.float64)
    root_mass = np.sqrt(np.repeat(np.asarray(masses, dtype=np.float64), 3))
    centred = x - (masses[:, None] * x).sum(0) / masses.sum()
    rigid = []
    for axis in np.eye(3):
        rigid.append(np.tile(axis, len(x)))
        rigid.append(np.cross(axis, centred).ravel())
    rigid = np.array(rigid).T * root_mass[:, None]
    left, singular, _ = np.linalg.svd(rigid, full_matrices=True)
    rank = int((singular > 1e-6 * singular.max()).sum())
    internal = left[:, rank:]
    weighted = hessian / np.outer(root_mass, root_mass)
    eigenvalues, vectors = np.linalg.eigh(internal.T @ weighted @ internal)
    return eigenvalues, internal @ vectors


def normal_mode_samples(positions: np.ndarray, masses: np.ndarray, hessian: np.ndarray, temperatures,
                        n_samples: int, rng: np.random.Generator) -> list[tuple[np.ndarray, float]]:
    """(positions Å, temperature K) of ``n_samples`` harmonic Boltzmann samples around a minimum.

    Sample k uses temperature ``temperatures[k % len]``: each vibrational mode is displaced by a
    normal deviate times sqrt(kT / λ), λ its eigenvalue; modes softer than MODE_FLOOR_PER_CM (and
    negative ones, from an imperfect minimum) count as MODE_FLOOR_PER_CM, which keeps the large-
    amplitude torsions from flying apart in the linear (harmonic) picture.
    """
    eigenvalues, modes = vibrational_modes(positions, masses, hessian)
    floor = (2.0 * math.pi * CM_PER_S * MODE_FLOOR_PER_CM) ** 2 / KCAL_PER_G_ANGSTROM2_TO_PER_S2
    stiffness = np.maximum(np.abs(eigenvalues), floor)
    root_mass = np.sqrt(np.repeat(np.asarray(masses, dtype=np.float64), 3))
    samples = []
    for index in range(n_samples):
        temperature = float(temperatures[index % len(temperatures)])
        amplitudes = rng.normal(size=len(stiffness)) * np.sqrt(BOLTZMANN_KCAL_PER_MOL_K * temperature / stiffness)
        displacement = (modes @ amplitudes) / root_mass
        samples.append((np.asarray(positions, dtype=np.float64) + displacement.reshape(-1, 3), temperature))
    return samples


def min_pair_distance(positions: np.ndarray) -> float:
    """Smallest interatomic distance (Å) of one conformation (inf for one atom)."""
    if len(positions) < 2:
        return math.inf
    difference = positions[:, None, :] - positions[None, :, :]
    distances = np.sqrt((difference ** 2).sum(-1))
    return float(distances[np.triu_indices(len(positions), 1)].min())


# ---------------------------------------------------------------------------------------------
# One molecule
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BuildSettings:
    """Everything that decides the content of a built file (sent to worker processes).

    ``labeler`` labels every molecule (a molecule it rejects fails); each of ``extra_labelers``
    adds its label where it can and records ``<label>_omitted`` (the reason) where it cannot, as
    train-v0 carries ``gfn2`` everywhere and ``ani2x`` where ANI-2x applies.
    """

    labeler: LabelerSpec
    recipe: ConformerRecipe = ConformerRecipe()
    label: str | None = None          # label name of ``labeler`` in the file; default: gfn2, ani2x or dft
    seed: int = DEFAULT_SEED
    subset: str = ""
    am1bcc: bool = True               # AM1-BCC charges + GAFF2 types through AmberTools, when installed
    am1bcc_timeout_s: float = 600.0
    molecule_timeout_s: float = 1800.0  # wall-clock limit per molecule; 0: none
    extra_labelers: tuple = ()        # more LabelerSpecs, optional per molecule

    def make_labelers(self) -> list[tuple[str, Labeler]]:
        """(label name, labeler) for the main labeler and then each extra one; raises ValueError on a repeated label."""
        labelers = [spec.make() for spec in (self.labeler, *self.extra_labelers)]
        names = [self.label or labelers[0].label] + [labeler.label for labeler in labelers[1:]]
        if len(set(names)) != len(names):
            raise ValueError(f"each labeler must write its own label; got {', '.join(names)}")
        return list(zip(names, labelers))


@dataclass(frozen=True)
class MoleculeTask:
    """One molecule to build: its id (file-safe, unique), name and mapped SMILES with explicit H."""

    mol_id: str
    name: str
    smiles: str


def mapped_smiles(mol: Chem.Mol) -> str:
    """SMILES with explicit hydrogens whose atom map number k is atom k-1 of ``mol``."""
    mapped = Chem.Mol(mol)
    for atom in mapped.GetAtoms():
        atom.SetAtomMapNum(atom.GetIdx() + 1)
    return Chem.MolToSmiles(mapped, allHsExplicit=True)


def assign_unspecified_stereo(mol: Chem.Mol) -> tuple[Chem.Mol, bool]:
    """(mol with every unspecified stereocentre / double bond fixed to the first isomer, whether any was)."""
    from rdkit.Chem.EnumerateStereoisomers import EnumerateStereoisomers, StereoEnumerationOptions

    options = StereoEnumerationOptions(onlyUnassigned=True, tryEmbedding=False, unique=True)
    first = next(iter(EnumerateStereoisomers(mol, options=options)), None)
    if first is None:
        return mol, False
    changed = Chem.MolToSmiles(first) != Chem.MolToSmiles(mol)
    return first, changed


class _LabelerSurface:
    """One molecule on a labeler's surface: ``surface(positions Å) -> (kcal/mol, forces kcal/mol/Å)``."""

    def __init__(self, labeler: Labeler, atomic_numbers, total_charge: int):
        self.labeler, self.atomic_numbers, self.total_charge = labeler, atomic_numbers, total_charge

    def __call__(self, positions):
        return self.labeler.single_point(self.atomic_numbers, positions, self.total_charge)

    def forces_of_batch(self, conformations, chunk: int = 32):
        """Forces (K, N, 3) of K conformations, ``chunk`` per labeler call; LabelerFailedError if any row fails.

        Chunks bound the memory of a batched labeler: ANI-2x took 5.3 GB for the 444 displaced
        geometries of a 74-atom molecule in one call.
        """
        forces = []
        for first in range(0, len(conformations), chunk):
            _, part, failures = self.labeler.energies_and_forces(
                self.atomic_numbers, conformations[first:first + chunk], self.total_charge)
            if failures:
                row, reason = next(iter(failures.items()))
                raise LabelerFailedError(f"{len(failures)} displaced geometries failed (first, row {first + row}: "
                                         f"{reason})")
            forces.append(part)
        return np.concatenate(forces)


def labeler_normal_mode_rows(start: np.ndarray, masses: np.ndarray, surface, recipe: ConformerRecipe, seed: int):
    """(positions (K, N, 3) Å, kinds, note) of rows on the labeler's own surface.

    The labeler's minimum relaxed from ``start`` (kind ``labeler_min``), then
    ``recipe.normal_mode_conformations`` harmonic samples around it (``nm<T>``) from a finite-
    difference Hessian of the labeler's forces. ``note`` says when the minimisation did not converge.
    """
    minimum, _, converged = relax_on_surface(start, surface)
    hessian = finite_difference_hessian(minimum, surface.forces_of_batch)
    rng = np.random.default_rng([seed, 0x4E4D])
    samples = normal_mode_samples(minimum, masses, hessian, recipe.normal_mode_temperatures,
                                  recipe.normal_mode_conformations, rng)
    positions = np.array([minimum] + [xyz for xyz, _ in samples])
    kinds = ["labeler_min"] + [f"nm{temperature:g}" for _, temperature in samples]
    note = None if converged else "labeler minimisation stopped after 500 steps with forces above 0.1 kcal/mol/A"
    return positions, kinds, note


def build_molecule(task: MoleculeTask, settings: BuildSettings, labelers) -> dict:
    """Conformations and labels of one molecule, as the arrays and attrs of its HDF5 group (Å, kcal/mol).

    ``labelers``: (label, Labeler) pairs as made by :meth:`BuildSettings.make_labelers`, or one Labeler.
    """
    from grappa_like.molecule import from_smiles

    if isinstance(labelers, Labeler):
        labelers = [(settings.label or labelers.label, labelers)]
    start = time.perf_counter()
    molecule = from_smiles(task.smiles, name=task.name)
    mol, stereo_assigned = assign_unspecified_stereo(molecule.rdkit_mol)
    atomic_numbers = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()], dtype=np.int64)
    total_charge = Chem.GetFormalCharge(mol)
    formal_charges = [atom.GetFormalCharge() for atom in mol.GetAtoms()]
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    (main_label, main_labeler), extras = labelers[0], []
    main_labeler.check(atomic_numbers, total_charge, formal_charges, bonds)
    omitted = {}
    for label, labeler in labelers[1:]:
        try:
            labeler.check(atomic_numbers, total_charge, formal_charges, bonds)
            extras.append((label, labeler))
        except LabelerRejectedError as error:
            omitted[f"{label}_omitted"] = str(error)
    seed = molecule_seed(task.mol_id, settings.seed)
    labeler_surface = _LabelerSurface(main_labeler, atomic_numbers, total_charge)
    conformations = generate_conformations(mol, settings.recipe, seed,
                                           labeler_surface if settings.recipe.md_surface == "labeler" else None)
    if conformations.md_omitted:
        omitted["md_omitted"] = "; ".join(conformations.md_omitted)
    if settings.recipe.normal_mode_conformations:
        if total_charge != 0 or is_zwitterion(formal_charges, bonds):
            omitted["normal_modes_omitted"] = (f"charged molecule (total charge {total_charge:+d}) or zwitterion: "
                                               "no gas-phase minimum of the labeler is sampled")
        else:
            masses = np.array([atom.GetMass() for atom in mol.GetAtoms()])
            try:
                rows, kinds, note = labeler_normal_mode_rows(conformations.positions[0], masses, labeler_surface,
                                                             settings.recipe, seed)
            except LabelerFailedError as error:
                omitted["normal_modes_omitted"] = f"{main_label}: {error}"
            else:
                conformations.positions = np.concatenate([conformations.positions, rows])
                conformations.kinds += kinds
                if note:
                    omitted["normal_modes_note"] = note

    dropped: dict[str, int] = {}
    close = np.array([min_pair_distance(p) < settings.recipe.min_distance for p in conformations.positions])
    if close.any():
        dropped[f"atom pair closer than {settings.recipe.min_distance} A"] = int(close.sum())
    candidates = np.flatnonzero(~close)
    finite = np.ones(len(candidates), dtype=bool)
    labels = {}
    for label, labeler in [(main_label, main_labeler), *extras]:
        energies, forces, failures = labeler.energies_and_forces(
            atomic_numbers, conformations.positions[candidates], total_charge)
        for reason in failures.values():
            dropped[f"{label}: {reason}"] = dropped.get(f"{label}: {reason}", 0) + 1
        ok = np.isfinite(energies) & np.isfinite(forces).all(axis=(1, 2))
        if int((~ok).sum()) > len(failures):
            dropped[f"{label}: non-finite energy or forces"] = int((~ok).sum()) - len(failures)
        finite &= ok  # every label covers the same rows
        labels[label] = (energies, forces)
    if not finite.any():
        raise LabelerRejectedError(f"no conformation could be labelled ({'; '.join(sorted(dropped)) or 'no rows'})")
    main_energies = labels[main_label][0]
    high = finite & (main_energies - main_energies[finite].min() > settings.recipe.max_energy_above_lowest)
    if high.any():
        reason = f"more than {settings.recipe.max_energy_above_lowest:g} kcal/mol above the lowest ({main_label})"
        dropped[reason] = int(high.sum())
    keep = finite & ~high
    rows = candidates[keep]

    datasets = {"atomic_numbers": atomic_numbers.astype(np.int8),
                "conformations": conformations.positions[rows].astype(np.float32)}
    for label, (energies, forces) in labels.items():
        datasets[f"energy/{label}"] = energies[keep].astype(np.float64)
        datasets[f"forces/{label}"] = forces[keep].astype(np.float32)
    group = {
        "datasets": datasets,
        "attrs": {
            "smiles": mapped_smiles(mol),
            "name": task.name,
            "subset": settings.subset,
            "total_charge": int(total_charge),
            "conformation_kinds": ",".join(conformations.kinds[row] for row in rows),
            "conformer_force_field": conformations.force_field,
            "input_smiles": task.smiles,
            "seed": int(seed),
            **omitted,
        },
    }
    if stereo_assigned:
        group["attrs"]["stereo_note"] = "unspecified stereo in the input; the builder chose the first stereoisomer"
    if dropped:
        group["attrs"]["dropped_conformations"] = "; ".join(f"{count} {reason}" for reason, count in sorted(dropped.items()))
    if settings.am1bcc:
        _add_am1bcc(group, mol, conformations.positions[0], total_charge, task, settings)
    group["attrs"]["build_seconds"] = round(time.perf_counter() - start, 2)
    return group


def _add_am1bcc(group: dict, mol: Chem.Mol, positions: np.ndarray, total_charge: int, task: MoleculeTask,
                settings: BuildSettings) -> None:
    """AM1-BCC charges and GAFF2 types (antechamber, single-point AM1 as in train-v0) at the lowest MMFF
    minimum, or a note why they are absent."""
    from grappa_like.baselines import AmberToolsError, AmberToolsNotFoundError, gaff2_am1bcc_charges_and_types

    with_conformer = with_positions(mol, positions)
    try:
        charges, types = gaff2_am1bcc_charges_and_types(with_conformer, total_charge, task.mol_id,
                                                        timeout_s=settings.am1bcc_timeout_s, optimize_geometry=False)
    except AmberToolsNotFoundError as error:
        group["attrs"]["am1bcc_omitted"] = f"AmberTools not installed ({error})"
        return
    except (AmberToolsError, ValueError, OSError) as error:
        group["attrs"]["am1bcc_omitted"] = " ".join(str(error).split())[:500]
        return
    if abs(float(np.sum(charges)) - total_charge) > 0.02:
        group["attrs"]["am1bcc_omitted"] = f"AM1-BCC charges sum to {np.sum(charges):.3f}, not {total_charge}"
        return
    group["datasets"]["charges/am1bcc"] = np.asarray(charges, dtype=np.float32)
    group["datasets"]["gaff2_types"] = np.array([t.encode() for t in types])


# ---------------------------------------------------------------------------------------------
# Files: parts, assembly, failures
# ---------------------------------------------------------------------------------------------

def root_attrs(settings: BuildSettings, levels_of_theory: dict, source: str) -> dict:
    """Root attributes of a built file (and of each part); ``levels_of_theory``: label -> description."""
    return {
        "layout": LAYOUT,
        **{f"level_of_theory.{label}": level for label, level in levels_of_theory.items()},
        "source": source,
        "seed": int(settings.seed),
        "charges.am1bcc": ("AM1-BCC from antechamber/sqm (AmberTools): AM1 single point (maxcyc=0, no AM1 "
                           "geometry optimisation) at the lowest MMFF94 minimum (conformation row 0); gaff2_types from the same "
                           "antechamber run (-at gaff2); molecules without them carry the attr am1bcc_omitted"),
        "builder": json.dumps({"program": "grappa-like build-dataset",
                               "labelers": [spec.name for spec in (settings.labeler, *settings.extra_labelers)],
                               "recipe": settings.recipe.settings_dict()}, sort_keys=True),
    }


def write_group(handle: h5py.File, mol_id: str, group: dict) -> None:
    """Write one molecule group (datasets and attrs as made by :func:`build_molecule`) into an open file."""
    target = handle.create_group(mol_id)
    for name, value in group["datasets"].items():
        target.create_dataset(name, data=value)
    for name, value in group["attrs"].items():
        target.attrs[name] = value


def write_part(path: str, mol_id: str, group: dict, attrs: dict) -> None:
    """Write a one-molecule grappa_like-qm-v1 file atomically (temporary name, then renamed)."""
    def write(temporary):
        with h5py.File(temporary, "w") as handle:
            for name, value in attrs.items():
                handle.attrs[name] = value
            write_group(handle, mol_id, group)
    atomic_write(path, write)


def assemble(out_path: str, part_paths: list[tuple[str, str]], attrs: dict) -> None:
    """Copy the molecule group of every (mol_id, part path) into ``out_path`` (atomically), in order."""
    def write(temporary):
        with h5py.File(temporary, "w") as handle:
            for name, value in attrs.items():
                handle.attrs[name] = value
            for mol_id, part_path in part_paths:
                with h5py.File(part_path, "r") as part:
                    part.copy(part[mol_id], handle, name=mol_id)
    atomic_write(out_path, write)


def unique_mol_ids(names: list[str]) -> list[str]:
    """File-safe ids ([A-Za-z0-9_.-], no leading dot) from record names; duplicates get _2, _3, ..."""
    ids, seen = [], set()
    for index, name in enumerate(names, start=1):
        base = MOL_ID_PATTERN.sub("_", name).lstrip(".") or f"mol{index}"
        candidate, suffix = base, 1
        while candidate in seen:
            suffix += 1
            candidate = f"{base}_{suffix}"
        seen.add(candidate)
        ids.append(candidate)
    return ids


def _one_line(text, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass
class BuildReport:
    """What a build did: molecules written, failures (record, input, error class, message), paths."""

    out_path: str
    written: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)   # built in this run (the rest came from parts)
    failures: list[tuple[str, str, str, str]] = field(default_factory=list)
    seeded: list[str] = field(default_factory=list)     # taken from --seed-from files into the parts
    not_started: list[str] = field(default_factory=list)  # left for the next run by the time limit
    failures_path: str | None = None


class _PartsFolder:
    """``<out>.parts/``: one finished part per molecule, failure markers, the settings, a lock."""

    def __init__(self, out_path: str):
        self.path = os.path.abspath(out_path) + ".parts"
        self.out_path = os.path.abspath(out_path)

    def part(self, mol_id: str) -> str:
        return os.path.join(self.path, f"{mol_id}.h5")

    def failure(self, mol_id: str) -> str:
        return os.path.join(self.path, f"{mol_id}.failed.json")

    @contextlib.contextmanager
    def locked(self):
        """Hold an exclusive lock on the folder; raise DatasetBuildError if another build holds it."""
        import fcntl

        os.makedirs(self.path, exist_ok=True)
        handle = open(os.path.join(self.path, ".lock"), "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise DatasetBuildError(f"{self.path} is in use by another build-dataset run") from None
        try:
            self._remove_stale_temporaries()
            yield self
        finally:
            handle.close()

    def _remove_stale_temporaries(self) -> None:
        """Remove temporary files a killed run left behind (in the parts folder and next to the output)."""
        folder, name = os.path.split(self.out_path)
        stale = glob.glob(os.path.join(glob.escape(self.path), ".*.tmp"))  # the folder is ours while locked
        ours = re.compile(rf"\.{re.escape(name)}(\.failures\.tsv)?\.\d+-[0-9a-f]{{8}}\.tmp")  # fileio's names
        stale += [os.path.join(folder, entry) for entry in os.listdir(folder) if ours.fullmatch(entry)]
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                log.info(f"removed {path} left by an interrupted run")

    def check_settings(self, fingerprint: dict) -> None:
        """Record the settings on first use; raise DatasetBuildError if earlier parts used other settings."""
        path = os.path.join(self.path, "settings.json")
        if os.path.exists(path):
            with open(path) as handle:
                previous = json.load(handle)
            if previous != fingerprint:
                differing = sorted(key for key in set(previous) | set(fingerprint)
                                   if previous.get(key) != fingerprint.get(key))
                raise DatasetBuildError(
                    f"{self.path} holds molecules built with other settings ({', '.join(differing)} differ: "
                    f"{', '.join(f'{k}={previous.get(k)!r}' for k in differing)}); give another -o or remove that folder")
            return
        atomic_write_text(path, json.dumps(fingerprint, indent=1, sort_keys=True))

    def finished(self, task: MoleculeTask) -> bool:
        """True if a readable part of this very molecule exists (a broken or outdated one is removed)."""
        path = self.part(task.mol_id)
        if not os.path.exists(path):
            return False
        try:
            with h5py.File(path, "r") as handle:
                same = handle[task.mol_id].attrs.get("input_smiles") == task.smiles
        except Exception as error:  # an unreadable part (disk trouble): compute it again
            log.warning(f"{path}: unreadable part ({_one_line(error)}); the molecule is built again")
            same = None
        if same is False:
            log.warning(f"{task.mol_id}: the input SMILES changed since its part was written; built again")
        if not same:
            os.remove(path)
        return bool(same)

    def recorded_failure(self, task: MoleculeTask) -> tuple | None:
        path = self.failure(task.mol_id)
        if not os.path.exists(path):
            return None
        with open(path) as handle:
            record = json.load(handle)
        if record.get("input") != task.smiles:
            os.remove(path)
            return None
        return record["record"], record["input"], record["error_class"], record["message"]

    def record_failure(self, failure: tuple) -> None:
        record = dict(zip(("record", "input", "error_class", "message"), failure))
        atomic_write_text(self.failure(failure[0]), json.dumps(record))


_WORKER_LABELERS: list | None = None
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def limit_threads(threads: int = 1) -> None:
    """Use ``threads`` OpenMP / BLAS threads from now on, also in libraries already loaded.

    The environment variables reach libraries loaded later; torch.set_num_threads reaches the
    OpenMP runtime that torch loaded, which tblite and pyscf share once torch is imported (their
    libgomp.so.1 resolves to torch's copy). Spinning OpenMP threads on a busy machine can slow a
    GFN2 single point down a hundredfold, so the builder runs one thread per process.
    """
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def _init_worker(settings: BuildSettings) -> None:
    """Worker process start: one thread per library, and the labelers made once."""
    global _WORKER_LABELERS
    limit_threads(1)
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    _WORKER_LABELERS = settings.make_labelers()


def _run_task(task: MoleculeTask, settings: BuildSettings, parts_path: str, attrs: dict, labelers=None) -> tuple:
    """Build one molecule and write its part; ("done", mol_id, seconds, dropped) or ("failed", failure tuple)."""
    labelers = labelers or _WORKER_LABELERS
    try:
        with _time_limit(settings.molecule_timeout_s):
            group = build_molecule(task, settings, labelers)
        write_part(os.path.join(parts_path, f"{task.mol_id}.h5"), task.mol_id, group, attrs)
        return "done", task.mol_id, group["attrs"]["build_seconds"], group["attrs"].get("dropped_conformations")
    except Exception as error:  # one molecule's failure never stops the batch
        return "failed", (task.mol_id, task.smiles, type(error).__name__, _one_line(error))


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise MoleculeTimeoutError in this (main) thread after ``seconds`` of wall time.

    A SIGALRM timer: it interrupts Python code (the conformer, drive and labelling loops) between
    calls, not inside one long C++ call. Without SIGALRM or off the main thread it does nothing.
    """
    if not seconds or not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise MoleculeTimeoutError(f"took more than {seconds:g} s (--molecule-timeout)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_inputs(path: str) -> tuple[list[MoleculeTask], list[tuple[str, str, str, str]]]:
    """Molecules of a SMILES file (``SMILES [name]`` per line; SDF / MOL2 also read, coordinates ignored).

    Returns (tasks, input failures); ids are the record names made file-safe and unique.
    """
    from grappa_like.molecule import read_file

    records = list(read_file(path))
    tasks, failures = [], []
    for (name, outcome), mol_id in zip(records, unique_mol_ids([name for name, _ in records])):
        if isinstance(outcome, Exception):
            failures.append((mol_id, name, type(outcome).__name__, _one_line(outcome)))
        else:
            tasks.append(MoleculeTask(mol_id, name, mapped_smiles(outcome.rdkit_mol)))
    return tasks, failures


def build_dataset(input_path: str, out_path: str, settings: BuildSettings, workers: int = 1,
                  source: str | None = None, retry_failed: bool = False, progress: bool = True,
                  client=None, seed_from: tuple[str, ...] = (), stop_after_minutes: float | None = None
                  ) -> BuildReport:
    """Build ``out_path`` from the molecules of ``input_path``; resumes from ``<out>.parts/``; returns a report.

    ``seed_from``: earlier output files of this build (same settings and labelers, e.g. a partial
    file made on another machine); their molecules with the same input SMILES become parts
    and are not built again. ``stop_after_minutes``: no molecule starts after that much wall
    time (those already started finish); ``out_path`` is assembled from the finished molecules
    and :attr:`BuildReport.not_started` lists the rest, which the same call builds next time.

    ``client``: a ``distributed.Client``; each molecule is then built on a Dask worker (which needs
    grappa_like and the labeler installed, not this disk) and sent back; this process alone writes
    the parts, so resuming works as with ``workers``. The per-molecule time limit needs SIGALRM in
    a process's main thread and does not apply on Dask workers.

    Raises DatasetBuildError when it cannot run (settings differ from the existing parts', folder
    locked, nothing could be built) and MissingDependencyError when the labeler cannot be made.
    """
    from tqdm.auto import tqdm

    labelers = settings.make_labelers()
    levels = {label: labeler.level_of_theory() for label, labeler in labelers}
    source = source or f"molecules from {os.path.basename(input_path)}; conformations and labels by grappa-like build-dataset"
    attrs = root_attrs(settings, levels, source)
    fingerprint = {"labels": list(levels), **{f"level_of_theory.{k}": v for k, v in levels.items()},
                   "seed": settings.seed, "subset": settings.subset,
                   **{f"recipe.{key}": value for key, value in settings.recipe.settings_dict().items()}}
    fingerprint = json.loads(json.dumps(fingerprint))  # tuples as lists, as read back from JSON
    tasks, input_failures = read_inputs(input_path)
    for failure in input_failures:
        log.warning(f"failed: {failure[0]}: {failure[2]}: {failure[3]}")
    report = BuildReport(out_path=os.path.abspath(out_path))
    parts = _PartsFolder(out_path)
    deadline = None if stop_after_minutes is None else time.monotonic() + 60.0 * stop_after_minutes
    with parts.locked():
        parts.check_settings(fingerprint)
        for seed_path in seed_from:
            report.seeded += _seed_parts(seed_path, tasks, parts, attrs)
        failures = {failure[0]: failure for failure in input_failures}
        todo = []
        for task in tasks:
            if parts.finished(task):
                continue
            recorded = None if retry_failed else parts.recorded_failure(task)
            if recorded is not None:
                failures[task.mol_id] = recorded
                continue
            with contextlib.suppress(FileNotFoundError):
                os.remove(parts.failure(task.mol_id))
            todo.append(task)
        log.info(f"{len(tasks)} molecules in {input_path}: {len(tasks) - len(todo)} already done or failed before, "
                 f"{len(todo)} to build; " + "; ".join(f"{label}: {level}" for label, level in levels.items()))
        bar = tqdm(total=len(todo), desc="molecules", unit="mol", disable=not progress)
        outcomes = (_dask_outcomes(todo, settings, parts.path, attrs, client) if client is not None
                    else _outcomes(todo, settings, parts.path, attrs, labelers, workers))
        try:
            for outcome in ([] if _past(deadline) else outcomes):
                if outcome[0] == "done":
                    report.computed.append(outcome[1])
                    if outcome[3]:
                        log.info(f"{outcome[1]}: dropped {outcome[3]}")
                else:
                    failure = outcome[1]
                    failures[failure[0]] = failure
                    if outcome[0] == "failed":  # a lost one (worker died) is not recorded: the next run retries it
                        parts.record_failure(failure)
                    log.warning(f"failed: {failure[0]}: {failure[2]}: {failure[3]}")
                bar.update(1)
                bar.set_postfix(failed=len(failures))
                if _past(deadline):
                    break
        finally:
            outcomes.close()  # on a time limit: unstarted molecules are cancelled, started ones finish
            bar.close()
        finished = [(task.mol_id, parts.part(task.mol_id)) for task in tasks if os.path.exists(parts.part(task.mol_id))]
        done_or_failed = {mol_id for mol_id, _ in finished} | set(failures)
        report.not_started = [task.mol_id for task in todo if task.mol_id not in done_or_failed]
        order = {task.mol_id: index for index, task in enumerate(tasks)}
        report.failures = sorted(failures.values(), key=lambda f: order.get(f[0], -1))
        report.failures_path = os.path.abspath(out_path) + ".failures.tsv"
        lines = [FAILURES_HEADER] + ["\t".join(" ".join(str(v).split()) for v in failure) for failure in report.failures]
        atomic_write_text(report.failures_path, "\n".join(lines) + "\n")
        if not finished and not report.not_started:
            raise DatasetBuildError(f"no molecule of {input_path} could be built; see {report.failures_path}")
        if not finished:  # stopped before the first molecule finished: nothing to write yet
            return report
        if report.computed or not _up_to_date(out_path, finished, attrs):
            assemble(out_path, finished, attrs)
        report.written = [mol_id for mol_id, _ in finished]
    return report


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def _seed_parts(seed_path: str, tasks, parts: "_PartsFolder", attrs: dict) -> list[str]:
    """Copy the molecules of an earlier output file of this build into missing parts; their ids."""
    def comparable(values) -> dict:
        return {key: (value.decode() if isinstance(value, bytes) else value) for key, value in values.items()
                if key != "source"}

    try:
        handle = h5py.File(seed_path, "r")
    except Exception as error:
        raise DatasetBuildError(f"{seed_path}: cannot read it as a seed file ({_one_line(error, 200)})") from None
    seeded = []
    with handle:
        theirs, ours = comparable(dict(handle.attrs)), comparable(attrs)
        if theirs != ours:
            differing = sorted(key for key in set(theirs) | set(ours) if theirs.get(key) != ours.get(key))
            raise DatasetBuildError(f"{seed_path} was built with other settings ({', '.join(differing)} differ); "
                                    f"it cannot seed this build")
        for task in tasks:
            if task.mol_id not in handle or os.path.exists(parts.part(task.mol_id)):
                continue
            if handle[task.mol_id].attrs.get("input_smiles") == task.smiles:
                seeded.append(task.mol_id)
    for mol_id in seeded:  # a part is a one-molecule file, as assembling writes it
        assemble(parts.part(mol_id), [(mol_id, seed_path)], attrs)
    if seeded:
        log.info(f"{len(seeded)} molecules taken from {seed_path}")
    return seeded


def _up_to_date(out_path: str, finished: list[tuple[str, str]], attrs: dict) -> bool:
    """True if ``out_path`` exists and holds exactly the molecules ``finished`` and the root ``attrs``."""
    if not os.path.exists(out_path):
        return False
    try:
        with h5py.File(out_path, "r") as handle:
            same_attrs = {key: handle.attrs.get(key) for key in attrs} == attrs
            return same_attrs and set(handle.keys()) == {mol_id for mol_id, _ in finished}
    except Exception:  # unreadable: assemble again
        return False


_DASK_LABELERS: dict = {}


def _build_on_dask_worker(task: MoleculeTask, settings: BuildSettings) -> tuple:
    """Dask task: ("built", mol_id, group) or ("failed", failure tuple); the labelers are made once per worker."""
    key = repr((settings.labeler, settings.extra_labelers, settings.label))
    if key not in _DASK_LABELERS:
        limit_threads(1)
        _DASK_LABELERS[key] = settings.make_labelers()
    try:
        return "built", task.mol_id, build_molecule(task, settings, _DASK_LABELERS[key])
    except Exception as error:  # one molecule's failure never stops the batch
        return "failed", (task.mol_id, task.smiles, type(error).__name__, _one_line(error))


def _dask_outcomes(todo, settings, parts_path, attrs, client):
    """Yield the outcome of every task built on ``client``'s workers; parts are written here as they arrive."""
    from distributed import as_completed

    futures = {client.submit(_build_on_dask_worker, task, settings, pure=False): task for task in todo}
    try:
        for future in as_completed(futures):
            task = futures.pop(future)
            try:
                result = future.result()
            except Exception as error:  # the worker died or the task was lost: retried by the next run
                yield "lost", (task.mol_id, task.smiles, type(error).__name__, _one_line(error))
                continue
            finally:
                future.release()
            if result[0] == "built":
                group = result[2]
                write_part(os.path.join(parts_path, f"{task.mol_id}.h5"), task.mol_id, group, attrs)
                yield "done", task.mol_id, group["attrs"]["build_seconds"], group["attrs"].get("dropped_conformations")
            else:
                yield result
    finally:  # stopped early (time limit): the molecules not yet sent back are dropped, built next run
        client.cancel(list(futures))


def _outcomes(todo, settings, parts_path, attrs, labelers, workers: int):
    """Yield the outcome of every task: in this process (workers <= 1) or in a pool of worker processes."""
    if workers <= 1 or len(todo) <= 1:
        for task in todo:
            yield _run_task(task, settings, parts_path, attrs, labelers)
        return
    import concurrent.futures
    import multiprocessing

    saved = {v: os.environ.get(v) for v in THREAD_VARIABLES}
    os.environ.update({v: "1" for v in saved})  # inherited by the spawned workers before they import anything
    executor = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker, initargs=(settings,))
    try:
        futures = {executor.submit(_run_task, task, settings, parts_path, attrs): task for task in todo}
        for future in concurrent.futures.as_completed(futures):
            task = futures[future]
            try:
                yield future.result()
            except Exception as error:  # the worker process died (e.g. out of memory): retried by the next run
                yield "lost", (task.mol_id, task.smiles, type(error).__name__, _one_line(error))
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value
