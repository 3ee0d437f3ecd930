"""Molecule input: every supported input becomes a :class:`Molecule` with explicit hydrogens.

The atom order of a :class:`Molecule` is always the atom order of the input (for a SMILES
without atom maps: the SMILES order, hydrogens appended by RDKit after the heavy atoms; for a
mapped SMILES: the map numbers). Coordinates, when the input has them, are kept in Å.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

from grappa_like import errors

SUPPORTED_ELEMENTS = ("H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I")
SUPPORTED_ATOMIC_NUMBERS = tuple(Chem.GetPeriodicTable().GetAtomicNumber(e) for e in SUPPORTED_ELEMENTS)
DEFAULT_MAX_ATOMS = 1000


@dataclass
class Molecule:
    """A validated molecule: RDKit Mol with explicit hydrogens, a name and optional coordinates (Å)."""

    rdkit_mol: Chem.Mol
    name: str = "mol"
    positions: np.ndarray | None = field(default=None, repr=False)  # (N, 3) Å, or None

    @property
    def n_atoms(self) -> int:
        return self.rdkit_mol.GetNumAtoms()

    @property
    def total_charge(self) -> int:
        return Chem.GetFormalCharge(self.rdkit_mol)

    @property
    def atomic_numbers(self) -> np.ndarray:
        return np.array([a.GetAtomicNum() for a in self.rdkit_mol.GetAtoms()], dtype=np.int64)

    @property
    def smiles(self) -> str:
        """Canonical isomeric SMILES (hydrogens implicit)."""
        return Chem.MolToSmiles(Chem.RemoveHs(self.rdkit_mol))

    def mapped_smiles(self) -> str:
        """SMILES with explicit hydrogens whose atom map number k is atom k-1."""
        mol = Chem.Mol(self.rdkit_mol)
        for atom in mol.GetAtoms():
            atom.SetAtomMapNum(atom.GetIdx() + 1)
        return Chem.MolToSmiles(mol, allHsExplicit=True)

    def conformer_positions(self, seed: int = 0xF00D) -> np.ndarray:
        """Return input coordinates (Å) if present, else one RDKit ETKDG + MMFF conformer (Å)."""
        if self.positions is not None:
            return self.positions
        mol = Chem.Mol(self.rdkit_mol)
        params = AllChem.ETKDGv3()
        params.randomSeed = seed
        if AllChem.EmbedMolecule(mol, params) != 0:
            params.useRandomCoords = True
            if AllChem.EmbedMolecule(mol, params) != 0:
                raise errors.MoleculeInputError(f"{self.name}: RDKit could not generate a conformer")
        if AllChem.MMFFHasAllMoleculeParams(mol):
            AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
        else:
            AllChem.UFFOptimizeMolecule(mol, maxIters=2000)
        return mol.GetConformer().GetPositions()


def validate(mol: Chem.Mol, name: str, max_atoms: int = DEFAULT_MAX_ATOMS) -> None:
    """Raise a typed :class:`errors.MoleculeInputError` naming ``name`` if ``mol`` is not acceptable."""
    n_atoms = mol.GetNumAtoms()
    if n_atoms == 0:
        raise errors.EmptyMoleculeError(f"{name}: the molecule has no atoms")
    if n_atoms > max_atoms:
        raise errors.MoleculeTooLargeError(
            f"{name}: {n_atoms} atoms is above the limit of {max_atoms} (raise it with max_atoms)"
        )
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() not in SUPPORTED_ATOMIC_NUMBERS:
            raise errors.UnsupportedElementError(
                f"{name}: element {atom.GetSymbol()} (atom {atom.GetIdx()}) is not supported; "
                f"supported: {' '.join(SUPPORTED_ELEMENTS)}"
            )
        if atom.GetNumRadicalElectrons() > 0:
            raise errors.RadicalError(
                f"{name}: atom {atom.GetIdx()} ({atom.GetSymbol()}) has unpaired electrons; "
                "only closed-shell molecules are supported"
            )
        if atom.GetAtomicNum() > 1 and atom.GetNumImplicitHs() > 0:
            raise errors.MissingHydrogensError(
                f"{name}: atom {atom.GetIdx()} ({atom.GetSymbol()}) has implicit hydrogens; "
                "give all hydrogens explicitly"
            )
    if n_atoms > 1 and len(Chem.GetMolFrags(mol)) > 1:
        raise errors.DisconnectedMoleculeError(
            f"{name}: {len(Chem.GetMolFrags(mol))} disconnected fragments; give one molecule per record "
            "(strip salts and counter-ions)"
        )


def _finish(mol: Chem.Mol, name: str, positions: np.ndarray | None, max_atoms: int) -> Molecule:
    validate(mol, name, max_atoms)
    if positions is not None:
        positions = np.asarray(positions, dtype=np.float64).reshape(mol.GetNumAtoms(), 3)
    return Molecule(rdkit_mol=mol, name=name, positions=positions)


def _positions_of(mol: Chem.Mol) -> np.ndarray | None:
    if mol.GetNumConformers() == 0:
        return None
    conformer = mol.GetConformer()
    positions = conformer.GetPositions()
    if not conformer.Is3D() and np.allclose(positions[:, 2], 0.0):
        return None
    return positions


def from_smiles(smiles: str, name: str | None = None, max_atoms: int = DEFAULT_MAX_ATOMS) -> Molecule:
    """Molecule from a SMILES; a fully atom-mapped SMILES fixes the atom order by map number."""
    name = name or smiles
    mol = Chem.MolFromSmiles(smiles, sanitize=False) if smiles else None
    if mol is None or mol.GetNumAtoms() == 0 and smiles.strip():
        raise errors.UnparsableInputError(f"{name}: cannot parse SMILES {smiles!r}")
    try:
        Chem.SanitizeMol(mol)
    except Exception as error:  # RDKit raises several unrelated classes here
        raise errors.UnparsableInputError(f"{name}: invalid SMILES {smiles!r} ({error})") from None
    map_numbers = [a.GetAtomMapNum() for a in mol.GetAtoms()]
    if mol.GetNumAtoms() and all(map_numbers) and sorted(map_numbers) == list(range(1, len(map_numbers) + 1)):
        order = sorted(range(len(map_numbers)), key=lambda i: map_numbers[i])
        mol = Chem.RenumberAtoms(mol, order)
        for atom in mol.GetAtoms():
            atom.SetAtomMapNum(0)
    mol = Chem.AddHs(mol)
    return _finish(mol, name, None, max_atoms)


def from_rdkit(mol: Chem.Mol, name: str | None = None, max_atoms: int = DEFAULT_MAX_ATOMS) -> Molecule:
    """Molecule from an RDKit Mol; missing hydrogens are appended (with coordinates if it has a 3D conformer)."""
    if mol is None:
        raise errors.UnparsableInputError(f"{name or 'molecule'}: got None instead of an RDKit Mol")
    name = name or (mol.GetProp("_Name") if mol.HasProp("_Name") and mol.GetProp("_Name").strip() else "mol")
    mol = Chem.Mol(mol)
    try:
        Chem.SanitizeMol(mol)
    except Exception as error:
        raise errors.UnparsableInputError(f"{name}: RDKit cannot sanitize the molecule ({error})") from None
    has_3d = _positions_of(mol) is not None
    if any(a.GetNumImplicitHs() for a in mol.GetAtoms()):
        mol = Chem.AddHs(mol, addCoords=has_3d)
    return _finish(mol, name, _positions_of(mol) if has_3d else None, max_atoms)


def from_openff(offmol, name: str | None = None, max_atoms: int = DEFAULT_MAX_ATOMS) -> Molecule:
    """Molecule from an ``openff.toolkit.Molecule`` (atom order kept; needs openff-toolkit)."""
    rdmol = offmol.to_rdkit()
    return from_rdkit(rdmol, name or offmol.name or "mol", max_atoms)


def from_pdb(path: str, smiles: str, name: str | None = None, max_atoms: int = DEFAULT_MAX_ATOMS) -> Molecule:
    """Molecule from a PDB file (atom order and coordinates) plus a SMILES giving the bond orders."""
    name = name or os.path.splitext(os.path.basename(path))[0]
    pdb_mol = Chem.MolFromPDBFile(str(path), removeHs=False, sanitize=False, proximityBonding=True)
    if pdb_mol is None or pdb_mol.GetNumAtoms() == 0:
        raise errors.UnparsableInputError(f"{name}: cannot read PDB file {path}")
    template = Chem.MolFromSmiles(smiles)
    if template is None:
        raise errors.UnparsableInputError(f"{name}: cannot parse template SMILES {smiles!r}")
    template = Chem.AddHs(template)
    return _from_skeleton(pdb_mol, template, name, _positions_of(pdb_mol), max_atoms)


def from_topology(topology, template, positions=None, name: str | None = None,
                  max_atoms: int = DEFAULT_MAX_ATOMS) -> Molecule:
    """Molecule from an OpenMM Topology whose graph matches ``template`` (SMILES or RDKit Mol).

    ``positions`` (optional) are OpenMM Quantities or arrays in nm.
    """
    name = name or "topology"
    if isinstance(template, str):
        parsed = Chem.MolFromSmiles(template)
        if parsed is None:
            raise errors.UnparsableInputError(f"{name}: cannot parse template SMILES {template!r}")
        template = parsed
    template = Chem.AddHs(template)
    skeleton = Chem.RWMol()
    for atom in topology.atoms():
        if atom.element is None:
            raise errors.TemplateMismatchError(f"{name}: topology atom {atom.index} has no element")
        skeleton.AddAtom(Chem.Atom(atom.element.atomic_number))
    for bond in topology.bonds():
        skeleton.AddBond(bond.atom1.index, bond.atom2.index, Chem.BondType.SINGLE)
    coordinates = None
    if positions is not None:
        from openmm import unit

        if unit.is_quantity(positions):
            positions = positions.value_in_unit(unit.nanometer)
        coordinates = np.asarray(positions, dtype=np.float64) * 10.0
    return _from_skeleton(skeleton.GetMol(), template, name, coordinates, max_atoms)


def _from_skeleton(skeleton: Chem.Mol, template: Chem.Mol, name: str, positions, max_atoms: int) -> Molecule:
    """Give the atoms of ``skeleton`` (elements + connectivity, input order) the chemistry of ``template``."""
    if skeleton.GetNumAtoms() != template.GetNumAtoms():
        n_h = sum(a.GetAtomicNum() == 1 for a in skeleton.GetAtoms())
        hint = " (the structure has no hydrogens: add them, e.g. with OpenMM Modeller)" if n_h == 0 else ""
        error_class = errors.MissingHydrogensError if n_h == 0 else errors.TemplateMismatchError
        raise error_class(
            f"{name}: the structure has {skeleton.GetNumAtoms()} atoms but the template has "
            f"{template.GetNumAtoms()}{hint}"
        )
    template_graph = _single_bond_graph(template)
    skeleton_graph = _single_bond_graph(skeleton)
    match = template_graph.GetSubstructMatch(skeleton_graph)
    if not match or template_graph.GetNumBonds() != skeleton_graph.GetNumBonds():
        raise errors.TemplateMismatchError(
            f"{name}: the bonds of the structure do not match the template (elements or connectivity differ)"
        )
    mol = Chem.RenumberAtoms(template, list(match))
    if positions is not None:
        conformer = Chem.Conformer(mol.GetNumAtoms())
        for index, xyz in enumerate(np.asarray(positions, dtype=np.float64)):
            conformer.SetAtomPosition(index, xyz.tolist())
        conformer.Set3D(True)
        mol.RemoveAllConformers()
        mol.AddConformer(conformer, assignId=True)
        Chem.AssignStereochemistryFrom3D(mol)
    return _finish(mol, name, positions, max_atoms)


def _single_bond_graph(mol: Chem.Mol) -> Chem.Mol:
    """Copy of ``mol`` holding only elements and connectivity (all bonds single, no charges)."""
    graph = Chem.RWMol()
    for atom in mol.GetAtoms():
        graph.AddAtom(Chem.Atom(atom.GetAtomicNum()))
    for bond in mol.GetBonds():
        graph.AddBond(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), Chem.BondType.SINGLE)
    graph = graph.GetMol()
    graph.UpdatePropertyCache(strict=False)
    return graph


def read_file(path: str, smiles: str | None = None, max_atoms: int = DEFAULT_MAX_ATOMS
              ) -> Iterator[tuple[str, Molecule | Exception]]:
    """Yield ``(record_name, Molecule or the error)`` for every record of an SDF / MOL2 / PDB / SMI file.

    A bad record yields its error and reading goes on with the next one.
    """
    base = os.path.splitext(os.path.basename(str(path)))[0]
    lower = str(path).lower()
    if not os.path.exists(path):
        yield base, errors.UnparsableInputError(f"{path}: no such file")
        return
    if lower.endswith(".sdf") or lower.endswith(".sdf.gz") or lower.endswith(".mol"):
        yield from _read_sdf(path, base, max_atoms)
    elif lower.endswith(".mol2"):
        mol = Chem.MolFromMol2File(str(path), removeHs=False)
        if mol is None:
            yield base, errors.UnparsableInputError(f"{path}: RDKit cannot read this MOL2 file")
        else:
            yield _as_result(lambda: from_rdkit(mol, _title(mol) or base, max_atoms), base)
    elif lower.endswith(".pdb"):
        if smiles is None:
            yield base, errors.UnparsableInputError(
                f"{path}: a PDB file needs a SMILES for bond orders (--smiles)"
            )
        else:
            yield _as_result(lambda: from_pdb(path, smiles, base, max_atoms), base)
    elif lower.endswith(".smi") or lower.endswith(".txt"):
        with open(path) as handle:
            for line_number, line in enumerate(handle, start=1):
                fields = line.split()
                if not fields or fields[0].startswith("#"):
                    continue
                name = fields[1] if len(fields) > 1 else f"{base}:{line_number}"
                yield _as_result(lambda: from_smiles(fields[0], name, max_atoms), name)
    else:
        yield base, errors.UnparsableInputError(
            f"{path}: unknown file type (use .sdf, .mol, .mol2, .pdb or .smi)"
        )


def _read_sdf(path: str, base: str, max_atoms: int):
    if str(path).lower().endswith(".gz"):
        import gzip

        supplier = Chem.ForwardSDMolSupplier(gzip.open(path), removeHs=False, sanitize=False)
    else:
        supplier = Chem.ForwardSDMolSupplier(str(path), removeHs=False, sanitize=False)
    for index, mol in enumerate(supplier):
        fallback = f"{base}:{index + 1}"
        if mol is None:
            yield fallback, errors.UnparsableInputError(f"{path} record {index + 1}: RDKit cannot parse it")
            continue
        name = _title(mol) or fallback
        yield _as_result(lambda: from_rdkit(mol, name, max_atoms), name)


def _title(mol: Chem.Mol) -> str:
    return mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""


def _as_result(build, name: str):
    try:
        return name, build()
    except errors.MoleculeInputError as error:
        return name, error


def to_molecule(obj, name: str | None = None, max_atoms: int = DEFAULT_MAX_ATOMS) -> Molecule:
    """Turn one SMILES / RDKit Mol / openff Molecule / :class:`Molecule` into a :class:`Molecule`."""
    if isinstance(obj, Molecule):
        return obj
    if isinstance(obj, str):
        return from_smiles(obj, name, max_atoms)
    if isinstance(obj, Chem.Mol):
        return from_rdkit(obj, name, max_atoms)
    if type(obj).__module__.startswith("openff."):
        return from_openff(obj, name, max_atoms)
    raise errors.MoleculeInputError(
        f"{name or 'input'}: cannot make a molecule from {type(obj).__name__} "
        "(give a SMILES, an RDKit Mol, an openff Molecule or a grappa_like Molecule)"
    )
