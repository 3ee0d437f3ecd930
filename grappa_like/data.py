"""Readers of QM data files: every format becomes :class:`QMRecord` objects in OpenMM units.

Formats (:func:`read_records` tells them apart by themselves):

- ``grappa_like-qm-v1`` HDF5 (see shared/data/README.md): Å, kcal/mol, kcal/mol/Å; labels by name.
- SPICE 2 HDF5, unchanged: one group per molecule with ``smiles`` (mapped), ``atomic_numbers``,
  ``conformations`` (bohr), ``dft_total_energy`` (hartree), ``dft_total_gradient`` (hartree/bohr);
  label ``dft``.
- Grappa's npz (one molecule per file, a file or a folder of them): ``xyz`` (Å), ``energy_qm`` or
  ``energy_qm_total`` (kcal/mol), ``gradient_qm`` or ``gradient_qm_total`` (kcal/mol/Å),
  ``atomic_numbers``, ``mapped_smiles``; label ``qm``.

Units are converted once, here: -> nm, kJ/mol, kJ/mol/nm. Also here: the ``FILE[:LABELS[:WEIGHT]]``
syntax by which ``train`` and ``evaluate`` take several files (:func:`parse_data_spec`).
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import h5py
import numpy as np

from grappa_like import errors
from grappa_like.molecule import Molecule, from_smiles
from grappa_like.units import ANGSTROM_TO_NM, BOHR_TO_NM, HARTREE_TO_KJ, KCAL_TO_KJ

log = logging.getLogger(__name__)

LAYOUT = "grappa_like-qm-v1"
SPICE_FORMAT = "spice"
GRAPPA_NPZ_FORMAT = "grappa-npz"
SPICE_LABEL = "dft"
GRAPPA_LABEL = "qm"
# Label preference: plain labels, first present wins; an entry SUBSETS=LABEL/LABEL... (SUBSETS an
# fnmatch pattern of the group attr ``subset``) gives that family its own order. Peptides learn from
# GFN2-xTB, everything else from ANI-2x where it applies (docs/design-decisions.md, issue 17).
DEFAULT_LABEL_PREFERENCE = ("capped_residue=gfn2/ani2x", "*peptide*=gfn2/ani2x", "ani2x", "gfn2")
V2_LABEL_PREFERENCE = ("ani2x", "gfn2")  # what v1 and v2 trained with: ANI-2x wherever it applies


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


def _family_entry(entry: str) -> tuple[str, tuple[str, ...]] | None:
    """``"*peptide*=gfn2/ani2x"`` -> ("*peptide*", ("gfn2", "ani2x")); None for a plain label."""
    if "=" not in entry:
        return None
    pattern, labels = entry.split("=", 1)
    order = tuple(label.strip() for label in labels.split("/") if label.strip())
    if not pattern.strip() or not order:
        raise ValueError(f"label preference entry {entry!r}: expected SUBSETS=LABEL[/LABEL...], e.g. "
                         "*peptide*=gfn2/ani2x")
    return pattern.strip(), order


def check_label_preference(preference) -> tuple[str, ...]:
    """``preference`` as a tuple; raises ValueError for a malformed ``SUBSETS=LABELS`` entry or no label at all."""
    preference = tuple(entry.strip() for entry in preference if entry.strip())
    for entry in preference:
        _family_entry(entry)
    if not preference:
        raise ValueError("the label preference names no label")
    return preference


def labels_for_subset(preference, subset: str) -> tuple[str, ...]:
    """The label order for a molecule of ``subset``: the first family entry whose pattern matches, else the
    plain entries of ``preference``."""
    plain = []
    for entry in preference:
        family = _family_entry(entry)
        if family is None:
            plain.append(entry)
        elif fnmatch.fnmatchcase(subset, family[0]):
            return family[1]
    return tuple(plain)


def preference_labels(preference) -> set[str]:
    """Every label named in ``preference`` (plain or in a family entry)."""
    labels = set()
    for entry in preference:
        family = _family_entry(entry)
        labels.update(family[1] if family else (entry,))
    return labels


def choose_label(group: h5py.Group, preference=DEFAULT_LABEL_PREFERENCE) -> str | None:
    """First label of ``preference`` (for the group's ``subset``) that the molecule carries energies for, or None."""
    available = set(group["energy"].keys()) if "energy" in group else set()
    order = labels_for_subset(preference, str(group.attrs.get("subset", "")))
    return next((label for label in order if label in available), None)


def detect_format(path: str) -> str:
    """``"grappa_like-qm-v1"``, ``"spice"`` or ``"grappa-npz"``: the format of a data file (or npz folder)."""
    path = os.fspath(path)
    if os.path.isdir(path) or path.lower().endswith(".npz"):
        return GRAPPA_NPZ_FORMAT
    if not os.path.isfile(path):
        raise errors.DataFileError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise errors.DataFileError(f"{path}: neither an HDF5 file nor a Grappa .npz file (or folder of them)")
    with h5py.File(path, "r") as handle:
        layout = handle.attrs.get("layout")
        if layout is not None:
            if layout != LAYOUT:
                raise errors.DataFileError(f"{path}: layout attribute is {layout!r}, expected {LAYOUT!r}")
            return LAYOUT
        first = next((handle[key] for key in handle.keys() if isinstance(handle[key], h5py.Group)), None)
        if first is not None and {"smiles", "atomic_numbers", "conformations", "dft_total_energy"} <= set(first.keys()):
            return SPICE_FORMAT
    raise errors.DataFileError(
        f"{path}: not a known QM data file (no layout={LAYOUT!r} attribute, and not SPICE: its groups lack "
        "smiles / atomic_numbers / conformations / dft_total_energy)")


def available_labels(path: str) -> list[str]:
    """Every label that some molecule of ``path`` carries energies for."""
    data_format = detect_format(path)
    if data_format == SPICE_FORMAT:
        return [SPICE_LABEL]
    if data_format == GRAPPA_NPZ_FORMAT:
        return [GRAPPA_LABEL]
    labels = set()
    with h5py.File(path, "r") as handle:
        for group in handle.values():
            if "energy" in group:
                labels.update(group["energy"].keys())
    return sorted(labels)


def read_records(path: str, label_preference=DEFAULT_LABEL_PREFERENCE, mol_ids=None) -> Iterator[QMRecord]:
    """Yield a :class:`QMRecord` for every molecule of ``path`` that has one of the preferred labels.

    ``path`` is a grappa_like-qm-v1 or SPICE HDF5 file, a Grappa .npz file or a folder of them;
    SPICE and Grappa molecules that grappa_like cannot take (other elements, several fragments) are
    skipped with one warning per file.
    """
    data_format = detect_format(path)
    if data_format == SPICE_FORMAT:
        yield from _read_spice(path, label_preference, mol_ids)
        return
    if data_format == GRAPPA_NPZ_FORMAT:
        yield from _read_grappa_npz(path, label_preference, mol_ids)
        return
    with h5py.File(path, "r") as handle:
        for mol_id in (mol_ids if mol_ids is not None else handle.keys()):
            group = handle[mol_id]
            label = choose_label(group, label_preference)
            if label is None:
                continue
            yield _record(path, mol_id, group, label)


def read_records_by_id(paths, mol_ids, label_preference=DEFAULT_LABEL_PREFERENCE) -> list[QMRecord]:
    """The records of ``mol_ids`` found in the grappa_like-qm-v1 files ``paths`` (the first file holding
    an id wins), sorted by id; ids found in no file are left out (e.g. a model's validation split)."""
    wanted, found = set(mol_ids), {}
    for path in paths:
        with h5py.File(path, "r") as handle:
            present = sorted(wanted.intersection(handle.keys()) - found.keys())
        for record in read_records(path, label_preference, mol_ids=present):
            found[record.mol_id] = record
    return [found[mol_id] for mol_id in sorted(found)]


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


class _Skipped:
    """Counts molecules a reader skipped, by error class; one warning per file at the end."""

    def __init__(self, path: str):
        self.path, self.counts, self.first = path, Counter(), None

    def add(self, error: Exception) -> None:
        self.counts[type(error).__name__] += 1
        self.first = self.first or str(error)

    def report(self) -> None:
        if self.counts:
            kinds = ", ".join(f"{count} {name}" for name, count in self.counts.most_common())
            log.warning(f"{self.path}: skipped {sum(self.counts.values())} molecules ({kinds}; first: {self.first})")


def _scalar_text(value) -> str:
    """A string stored as an HDF5 / npz scalar, bytes or one-element array."""
    value = np.asarray(value)
    if value.shape:
        value = value.reshape(-1)[0]
    value = value.item() if hasattr(value, "item") else value
    return value.decode() if isinstance(value, bytes) else str(value)


def _molecule_from_mapped_smiles(smiles: str, name: str, atomic_numbers: np.ndarray, where: str) -> Molecule:
    molecule = from_smiles(smiles, name=name)
    if not np.array_equal(np.asarray(atomic_numbers, dtype=np.int64), molecule.atomic_numbers):
        raise errors.DataFileError(f"{where}: element order of the mapped SMILES differs from atomic_numbers")
    return molecule


def _finite_rows(energies: np.ndarray, forces: np.ndarray | None) -> np.ndarray:
    rows = np.isfinite(energies)
    if forces is not None:
        rows &= np.isfinite(forces).all(axis=(1, 2))
    return rows


def _read_spice(path: str, label_preference, mol_ids) -> Iterator[QMRecord]:
    """Records of a SPICE HDF5 file (bohr, hartree, hartree/bohr -> nm, kJ/mol, kJ/mol/nm); label ``dft``."""
    if SPICE_LABEL not in preference_labels(label_preference):
        return
    skipped = _Skipped(path)
    with h5py.File(path, "r") as handle:
        for mol_id in (mol_ids if mol_ids is not None else handle.keys()):
            group = handle[mol_id]
            try:
                smiles = _scalar_text(group["smiles"][()])
                molecule = _molecule_from_mapped_smiles(smiles, mol_id, group["atomic_numbers"][:], f"{path}:{mol_id}")
            except (errors.MoleculeInputError, errors.DataFileError) as error:
                skipped.add(error)
                continue
            energies = group["dft_total_energy"][:].astype(np.float64) * HARTREE_TO_KJ
            forces = None
            if "dft_total_gradient" in group:
                forces = -group["dft_total_gradient"][:].astype(np.float64) * (HARTREE_TO_KJ / BOHR_TO_NM)
            rows = _finite_rows(energies, forces)
            if not rows.any():
                skipped.add(errors.DataFileError(f"{path}:{mol_id}: no conformation with finite energy and gradient"))
                continue
            subset = _scalar_text(group["subset"][()]) if "subset" in group else ""
            yield QMRecord(
                mol_id=mol_id, name=mol_id, subset=subset, label=SPICE_LABEL, molecule=molecule,
                positions=group["conformations"][:].astype(np.float64)[rows] * BOHR_TO_NM,
                energies=energies[rows], forces=None if forces is None else forces[rows],
                am1bcc_charges=None, gaff2_types=None,
                attrs={"smiles": smiles, "subset": subset, "format": SPICE_FORMAT},
            )
    skipped.report()


def _read_grappa_npz(path: str, label_preference, mol_ids) -> Iterator[QMRecord]:
    """Records of Grappa npz files (Å, kcal/mol, kcal/mol/Å gradients -> nm, kJ/mol, kJ/mol/nm forces); label ``qm``."""
    if GRAPPA_LABEL not in preference_labels(label_preference):
        return
    if not os.path.isdir(path):
        record = _grappa_npz_record(path)
        if mol_ids is None or record.mol_id in mol_ids:
            yield record
        return
    skipped = _Skipped(path)
    wanted = None if mol_ids is None else set(mol_ids)
    for file_path in sorted(glob.glob(os.path.join(glob.escape(path), "*.npz"))):
        try:
            record = _grappa_npz_record(file_path)
        except (errors.MoleculeInputError, errors.DataFileError) as error:
            skipped.add(error)
            continue
        if wanted is None or record.mol_id in wanted:
            yield record
    skipped.report()


def _grappa_npz_record(path: str) -> QMRecord:
    try:
        arrays = dict(np.load(path, allow_pickle=False))
    except Exception as error:  # not a zip, truncated, pickled objects
        raise errors.DataFileError(f"{path}: cannot read it as an npz file ({error})") from None
    energy_key = next((k for k in ("energy_qm", "energy_qm_total") if k in arrays), None)
    missing = [key for key in ("xyz", "atomic_numbers", "mapped_smiles") if key not in arrays]
    if energy_key is None or missing:
        raise errors.DataFileError(f"{path}: a Grappa npz file needs xyz, atomic_numbers, mapped_smiles and "
                                   f"energy_qm (or energy_qm_total); missing {missing or ['energy_qm']}")
    stem = os.path.splitext(os.path.basename(path))[0]
    mol_id = _scalar_text(arrays["mol_id"]) if "mol_id" in arrays else stem
    smiles = _scalar_text(arrays["mapped_smiles"])
    molecule = _molecule_from_mapped_smiles(smiles, mol_id, arrays["atomic_numbers"], path)
    energies = np.asarray(arrays[energy_key], dtype=np.float64).reshape(-1) * KCAL_TO_KJ
    gradient_key = next((k for k in ("gradient_qm", "gradient_qm_total") if k in arrays), None)
    forces = None
    if gradient_key is not None:
        forces = -np.asarray(arrays[gradient_key], dtype=np.float64) * (KCAL_TO_KJ / ANGSTROM_TO_NM)
    positions = np.asarray(arrays["xyz"], dtype=np.float64) * ANGSTROM_TO_NM
    if positions.shape != (len(energies), molecule.n_atoms, 3) or (forces is not None and forces.shape != positions.shape):
        raise errors.DataFileError(f"{path}: xyz {positions.shape}, energy {energies.shape} and gradient shapes disagree "
                                   f"for {molecule.n_atoms} atoms")
    rows = _finite_rows(energies, forces)
    if not rows.any():
        raise errors.DataFileError(f"{path}: no conformation with finite energy and gradient")
    return QMRecord(
        mol_id=mol_id, name=mol_id, subset=_scalar_text(arrays["subset"]) if "subset" in arrays else "",
        label=GRAPPA_LABEL, molecule=molecule, positions=positions[rows], energies=energies[rows],
        forces=None if forces is None else forces[rows], am1bcc_charges=None, gaff2_types=None,
        attrs={"smiles": smiles, "format": GRAPPA_NPZ_FORMAT, "file": path},
    )


@dataclass(frozen=True)
class DataSpec:
    """A data file with an optional label preference and a loss weight (``FILE[:LABELS[:WEIGHT]]``)."""

    path: str
    labels: tuple[str, ...] | None = None  # None: the command's --labels
    weight: float = 1.0

    def __str__(self) -> str:
        text = self.path
        if self.labels is not None or self.weight != 1.0:
            text += ":" + ",".join(self.labels or ())
        if self.weight != 1.0:
            text += f":{self.weight:g}"
        return text


def parse_data_spec(text: str) -> DataSpec:
    """``"spice.h5:dft,gfn2:2.0"`` -> DataSpec("spice.h5", ("dft", "gfn2"), 2.0); an existing path is taken whole.

    LABELS may hold family entries (``SUBSETS=LABEL/LABEL``, see :func:`labels_for_subset`). Raises
    ValueError for an empty path, a non-positive or non-numeric weight, a malformed family entry, or too
    many fields.
    """
    if isinstance(text, DataSpec):
        return text
    text = os.fspath(text)
    if os.path.exists(text):
        return DataSpec(text)
    fields = text.split(":")
    if len(fields) > 3 or not fields[0]:
        raise ValueError(f"data file {text!r}: expected FILE[:LABELS[:WEIGHT]], e.g. spice.h5:dft:2.0")
    labels = tuple(label.strip() for label in fields[1].split(",") if label.strip()) if len(fields) > 1 else ()
    try:
        labels = check_label_preference(labels) if labels else ()
    except ValueError as error:
        raise ValueError(f"data file {text!r}: {error}") from None
    weight = 1.0
    if len(fields) == 3 and fields[2].strip():
        try:
            weight = float(fields[2])
        except ValueError:
            raise ValueError(f"data file {text!r}: weight {fields[2]!r} is not a number") from None
        if not np.isfinite(weight) or weight <= 0:
            raise ValueError(f"data file {text!r}: the weight must be a positive number, not {fields[2]!r}")
    return DataSpec(fields[0], labels or None, weight)


def read_data(specs, label_preference=DEFAULT_LABEL_PREFERENCE) -> list[tuple[QMRecord, float]]:
    """(record, weight) for every molecule of every data spec (``FILE[:LABELS[:WEIGHT]]`` text or DataSpec).

    Each record's ``attrs["data_file"]`` is the path it was read from.

    A file's own labels, when given, replace ``label_preference``. Raises DataFileError for a file
    of which no molecule carries any of the wanted labels (the message lists the labels it has).
    """
    pairs = []
    for spec in map(parse_data_spec, specs):
        preference = spec.labels or tuple(label_preference)
        records = list(read_records(spec.path, preference))
        if not records:
            raise errors.DataFileError(
                f"{spec.path}: no molecule carries any of the labels {','.join(preference)} (labels in this file: "
                f"{','.join(available_labels(spec.path)) or 'none'}); choose them as {spec.path}:LABELS")
        for record in records:
            record.attrs["data_file"] = spec.path
        pairs += [(record, spec.weight) for record in records]
    return pairs


def split_per_file(ids_per_file, validation_fraction: float = 0.1, seed: int = 20261125):
    """(train ids, validation ids) with each file split on its own by :func:`split_by_molecule`.

    Adding a file therefore never moves a molecule of the other files between training and
    validation. A molecule id met again in a later file keeps the side it got first, so the same
    molecule (e.g. a capped residue with extra torsion drives) is never on both sides.
    """
    side = {}
    for ids in ids_per_file:
        new_ids = sorted(set(ids) - side.keys())
        if not new_ids:
            continue
        train, validation = split_by_molecule(new_ids, validation_fraction, seed)
        side.update({mol_id: "train" for mol_id in train})
        side.update({mol_id: "validation" for mol_id in validation})
    return (sorted(k for k, v in side.items() if v == "train"),
            sorted(k for k, v in side.items() if v == "validation"))


def keep_same_molecules_together(train_ids, validation_ids, identity: dict, forced_validation=()):
    """(train ids, validation ids) after two corrections of a split by id.

    ``identity`` maps each id to what makes it the same molecule (e.g. its canonical SMILES): a
    training id whose molecule is also a validation molecule under another id (the same molecule in
    two files) moves to validation, so no molecule is on both sides. ``forced_validation``: ids that
    must be in validation (e.g. an earlier model's validation split, to compare on the same
    molecules); ids not in the data are ignored.
    """
    validation = set(validation_ids) | (set(forced_validation) & (set(train_ids) | set(validation_ids)))
    validation_molecules = {identity[mol_id] for mol_id in validation}
    validation |= {mol_id for mol_id in train_ids if identity[mol_id] in validation_molecules}
    return sorted(set(train_ids) - validation), sorted(validation)


def split_by_molecule(mol_ids, validation_fraction: float = 0.1, seed: int = 20261125):
    """(train ids, validation ids): a seeded random split by molecule, independent of input order."""
    ids = sorted(mol_ids)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))
    n_validation = max(1, int(round(validation_fraction * len(ids))))
    validation = sorted(ids[i] for i in order[:n_validation])
    train = sorted(ids[i] for i in order[n_validation:])
    return train, validation
