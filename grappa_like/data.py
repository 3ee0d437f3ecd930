"""Readers of QM data files in the ``grappa_like-qm-v1`` HDF5 layout (see shared/data/README.md).

Units are converted once, here: Å -> nm, kcal/mol -> kJ/mol, kcal/mol/Å -> kJ/mol/nm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import h5py
import numpy as np

from grappa_like import errors
from grappa_like.molecule import Molecule, from_smiles

LAYOUT = "grappa_like-qm-v1"
KCAL_TO_KJ = 4.184
ANGSTROM_TO_NM = 0.1
DEFAULT_LABEL_PREFERENCE = ("ani2x", "gfn2")


@dataclass
class QMRecord:
    """One molecule of a QM file, in OpenMM units (nm, kJ/mol, kJ/mol/nm)."""

    mol_id: str
    name: str
    subset: str
    label: str
    molecule: Molecule
    positions: np.ndarray            # (M, N, 3) nm
    energies: np.ndarray             # (M,) kJ/mol, total energies as the file gives them
    forces: np.ndarray | None        # (M, N, 3) kJ/mol/nm, or None when the label has no forces
    am1bcc_charges: np.ndarray | None  # (N,) e
    gaff2_types: list[str] | None
    other_labels: dict = field(default_factory=dict)  # label -> (energies kJ/mol, forces kJ/mol/nm or None)
    attrs: dict = field(default_factory=dict)         # every group attribute, as str (e.g. "pdb")


def choose_label(group: h5py.Group, preference=DEFAULT_LABEL_PREFERENCE) -> str | None:
    """First label of ``preference`` that the molecule carries energies for (None if none)."""
    available = set(group["energy"].keys()) if "energy" in group else set()
    return next((label for label in preference if label in available), None)


def read_records(path: str, label_preference=DEFAULT_LABEL_PREFERENCE, mol_ids=None) -> Iterator[QMRecord]:
    """Yield a :class:`QMRecord` for every molecule of ``path`` that has one of the preferred labels."""
    with h5py.File(path, "r") as handle:
        if handle.attrs.get("layout") != LAYOUT:
            raise errors.DataFileError(f"{path}: layout attribute is {handle.attrs.get('layout')!r}, expected {LAYOUT!r}")
        for mol_id in (mol_ids if mol_ids is not None else handle.keys()):
            group = handle[mol_id]
            label = choose_label(group, label_preference)
            if label is None:
                continue
            yield _record(path, mol_id, group, label)


def _record(path: str, mol_id: str, group: h5py.Group, label: str) -> QMRecord:
    attrs = group.attrs
    molecule = from_smiles(str(attrs["smiles"]), name=str(attrs.get("name", mol_id)))
    atomic_numbers = group["atomic_numbers"][:].astype(np.int64)
    if not np.array_equal(atomic_numbers, molecule.atomic_numbers):
        raise errors.DataFileError(f"{path}:{mol_id}: element order of the mapped SMILES differs from atomic_numbers")
    labels = {name: _label_arrays(group, name) for name in group["energy"].keys()}
    energies, forces = labels.pop(label)
    charges = group["charges"]["am1bcc"][:].astype(np.float64) if "charges" in group and "am1bcc" in group["charges"] else None
    types = [t.decode() for t in group["gaff2_types"][:]] if "gaff2_types" in group else None
    return QMRecord(
        mol_id=mol_id,
        name=str(attrs.get("name", mol_id)),
        subset=str(attrs.get("subset", "")),
        label=label,
        molecule=molecule,
        positions=group["conformations"][:].astype(np.float64) * ANGSTROM_TO_NM,
        energies=energies,
        forces=forces,
        am1bcc_charges=charges,
        gaff2_types=types,
        other_labels=labels,
        attrs={key: str(value) for key, value in attrs.items()},
    )


def _label_arrays(group: h5py.Group, label: str):
    """(energies kJ/mol, forces kJ/mol/nm or None) of one label of a molecule group."""
    energies = group["energy"][label][:].astype(np.float64) * KCAL_TO_KJ
    forces = None
    if "forces" in group and label in group["forces"]:
        forces = group["forces"][label][:].astype(np.float64) * (KCAL_TO_KJ / ANGSTROM_TO_NM)
    return energies, forces


def split_by_molecule(mol_ids, validation_fraction: float = 0.1, seed: int = 20261125):
    """(train ids, validation ids): a seeded random split by molecule, independent of input order."""
    ids = sorted(mol_ids)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))
    n_validation = max(1, int(round(validation_fraction * len(ids))))
    validation = sorted(ids[i] for i in order[:n_validation])
    train = sorted(ids[i] for i in order[n_validation:])
    return train, validation
