"""Molecule input: every supported input becomes a :class:`Molecule` with explicit hydrogens.

The atom order of a :class:`Molecule` is always the atom order of the input (for a SMILES
without atom maps: the SMILES order, hydrogens appended by RDKit after the heavy atoms; for a
mapped SMILES: the map numbers). Coordinates, when the input has them, are kept in Å.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import AllChem

from grappa_like import errors

SUPPORTED_ELEMENTS = ("H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I")
SUPPORTED_ATOMIC_NUMBERS = tuple(Chem.GetPeriodicTable().GetAtomicNumber(e) for e in SUPPORTED_ELEMENTS)
DEFAULT_MAX_ATOMS = 1000
MAX_NAME_LENGTH = 80  # record names (titles, a SMILES standing in for a name) are cut to this many characters


class _NoCapture:
    messages = ""  # RDKit before 2025 has no CaptureErrorLog: reasons fall back to a generic text


@contextlib.contextmanager
def rdkit_messages():
    """Silence RDKit's logging inside the block; its error messages are kept in ``capture.messages``."""
    block = rdBase.BlockLogs()  # restores the caller's log settings when deleted
    try:
        if hasattr(rdBase, "CaptureErrorLog"):
            with rdBase.CaptureErrorLog() as capture:
                yield capture
        else:
            yield _NoCapture()
    finally:
        del block


_RDKIT_NOISE = re.compile(
    r"^(\*+|-+|Stacktrace:|\d+#.*|(Pre|Post)-condition Violation|Invariant Violation|Violation occurred.*|"
    r"Failed Expression.*|.*check for mistakes around position.*|~*\^)$"
)


def _rdkit_reason(capture, fallback: str) -> str:
    """The first informative line of RDKit's captured log (timestamps and stack traces dropped)."""
    try:
        messages = capture if isinstance(capture, str) else capture.messages
    except UnicodeDecodeError:  # RDKit may cut a multi-byte character of a garbage input in half
        return fallback
    for line in messages.splitlines():
        line = re.sub(r"^\[\d\d:\d\d:\d\d\]\s*", "", line).strip()
        if line and not _RDKIT_NOISE.match(line):
            return _one_line(line)
    return fallback


def _one_line(text, limit: int = 200) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shorten_name(text: str) -> str:
    """``text`` made fit to name a record: control characters as ``?``, one line, at most MAX_NAME_LENGTH."""
    text = " ".join("".join(c if c.isprintable() else "?" for c in str(text).replace("\n", " ")).split())
    return text if len(text) <= MAX_NAME_LENGTH else text[:MAX_NAME_LENGTH - 3] + "..."


def _too_large(name: str, n_atoms: int, max_atoms: int) -> errors.MoleculeTooLargeError:
    return errors.MoleculeTooLargeError(
        f"{name}: {n_atoms} atoms is above the limit of {max_atoms} (raise it with max_atoms / --max-atoms)"
    )


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
        with rdkit_messages():
            if AllChem.EmbedMolecule(mol, params) != 0:
                params.useRandomCoords = True
                if AllChem.EmbedMolecule(mol, params) != 0:
                    raise errors.MoleculeInputError(f"{self.name}: RDKit could not generate a conformer")
            if AllChem.MMFFHasAllMoleculeParams(mol):
                AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
            else:
                AllChem.UFFOptimizeMolecule(mol, maxIters=2000)
        return mol.GetConformer().GetPositions()


def embed_conformers(mol: Chem.Mol, count: int, seed: int, prune_rms: float | None = None) -> list[int]:
    """Embed up to ``count`` ETKDGv3 conformers into ``mol`` (in place, one thread, seeded); their ids.

    Retries from random coordinates when the first attempt gives none; returns [] if that fails too.
    ``prune_rms`` (Å) drops conformers closer than that to an earlier one.
    """
    parameters = AllChem.ETKDGv3()
    parameters.randomSeed = seed
    parameters.numThreads = 1
    if prune_rms is not None:
        parameters.pruneRmsThresh = prune_rms
    ids = list(AllChem.EmbedMultipleConfs(mol, count, parameters))
    if not ids:
        parameters.useRandomCoords = True
        ids = list(AllChem.EmbedMultipleConfs(mol, count, parameters))
    return ids


def with_positions(mol: Chem.Mol, positions) -> Chem.Mol:
    """A copy of ``mol`` whose only conformer (3D, id 0) has the given positions (Å)."""
    copy = Chem.Mol(mol)
    copy.RemoveAllConformers()
    conformer = Chem.Conformer(copy.GetNumAtoms())
    for index, xyz in enumerate(np.asarray(positions, dtype=np.float64)):
        conformer.SetAtomPosition(index, xyz.tolist())
    conformer.Set3D(True)
    copy.AddConformer(conformer, assignId=True)
    return copy


def validate(mol: Chem.Mol, name: str, max_atoms: int = DEFAULT_MAX_ATOMS) -> None:
    """Raise a typed :class:`errors.MoleculeInputError` naming ``name`` if ``mol`` is not acceptable."""
    n_atoms = mol.GetNumAtoms()
    if n_atoms == 0:
        raise errors.EmptyMoleculeError(f"{name}: the molecule has no atoms")
    if n_atoms > max_atoms:
        raise _too_large(name, n_atoms, max_atoms)
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
    if not isinstance(smiles, str):
        raise errors.UnparsableInputError(f"{name or 'input'}: expected a SMILES string, got {type(smiles).__name__}")
    text = smiles.strip()
    name = name or shorten_name(text) or "SMILES"
    if not text:
        raise errors.UnparsableInputError(f"{name}: empty SMILES")
    if not text.isascii() or not text.isprintable():
        raise errors.UnparsableInputError(
            f"{name}: SMILES {shorten_name(text)!r} contains characters that are not printable ASCII")
    if any(character.isspace() for character in text):
        raise errors.UnparsableInputError(
            f"{name}: SMILES {shorten_name(text)!r} contains whitespace; give one SMILES per record "
            "(names go in the second column of a .smi file)"
        )
    with rdkit_messages() as log:
        mol = Chem.MolFromSmiles(text, sanitize=False)
    if mol is None or mol.GetNumAtoms() == 0:
        reason = _rdkit_reason(log, "RDKit cannot parse it")
        raise errors.UnparsableInputError(f"{name}: cannot parse SMILES {shorten_name(text)!r} ({reason})")
    if mol.GetNumAtoms() > max_atoms:  # checked before adding hydrogens, which could take long
        raise _too_large(name, mol.GetNumAtoms(), max_atoms)
    try:
        with rdkit_messages():
            Chem.SanitizeMol(mol)
    except Exception as error:  # RDKit raises several unrelated classes here
        raise errors.UnparsableInputError(
            f"{name}: invalid SMILES {shorten_name(text)!r} ({_one_line(error)})") from None
    map_numbers = [a.GetAtomMapNum() for a in mol.GetAtoms()]
    if all(map_numbers):
        if sorted(map_numbers) != list(range(1, len(map_numbers) + 1)):
            raise errors.UnparsableInputError(
                f"{name}: every atom has an atom map number, but they are not 1..{len(map_numbers)} each once"
            )
        order = sorted(range(len(map_numbers)), key=lambda i: map_numbers[i])
        mol = Chem.RenumberAtoms(mol, order)
        for atom in mol.GetAtoms():
            atom.SetAtomMapNum(0)
    with rdkit_messages():
        mol = Chem.AddHs(mol)
    return _finish(mol, name, None, max_atoms)


def from_rdkit(mol: Chem.Mol, name: str | None = None, max_atoms: int = DEFAULT_MAX_ATOMS) -> Molecule:
    """Molecule from an RDKit Mol; missing hydrogens are appended (with coordinates if it has a 3D conformer)."""
    if not isinstance(mol, Chem.Mol):
        got = "None" if mol is None else type(mol).__name__
        raise errors.UnparsableInputError(f"{name or 'molecule'}: got {got} instead of an RDKit Mol")
    name = name or _title(mol) or "mol"
    if mol.GetNumAtoms() > max_atoms:
        raise _too_large(name, mol.GetNumAtoms(), max_atoms)
    mol = Chem.Mol(mol)
    try:
        with rdkit_messages():
            Chem.SanitizeMol(mol)
    except Exception as error:
        raise errors.UnparsableInputError(
            f"{name}: RDKit cannot sanitize the molecule ({_one_line(error)})") from None
    has_3d = _positions_of(mol) is not None
    if any(a.GetNumImplicitHs() for a in mol.GetAtoms()):
        with rdkit_messages():
            mol = Chem.AddHs(mol, addCoords=has_3d)
    return _finish(mol, name, _positions_of(mol) if has_3d else None, max_atoms)


def from_openff(offmol, name: str | None = None, max_atoms: int = DEFAULT_MAX_ATOMS) -> Molecule:
    """Molecule from an ``openff.toolkit.Molecule`` (atom order kept; needs openff-toolkit)."""
    rdmol = offmol.to_rdkit()
    return from_rdkit(rdmol, name or offmol.name or "mol", max_atoms)


def from_pdb(path: str, smiles: str, name: str | None = None, max_atoms: int = DEFAULT_MAX_ATOMS) -> Molecule:
    """Molecule from a PDB file (atom order and coordinates) plus a SMILES giving the bond orders."""
    name = name or os.path.splitext(os.path.basename(str(path)))[0]
    if not os.path.isfile(path):
        raise errors.UnparsableInputError(f"{name}: cannot read PDB file {path} (not a file)")
    try:
        with rdkit_messages() as log:
            pdb_mol = Chem.MolFromPDBFile(str(path), removeHs=False, sanitize=False, proximityBonding=True)
    except Exception as error:
        raise errors.UnparsableInputError(f"{name}: cannot read PDB file {path} ({_one_line(error)})") from None
    if pdb_mol is None or pdb_mol.GetNumAtoms() == 0:
        reason = _rdkit_reason(log, "no ATOM/HETATM records")
        raise errors.UnparsableInputError(f"{name}: cannot read PDB file {path} ({reason})")
    template = _template(smiles, name)
    return _from_skeleton(pdb_mol, template, name, _positions_of(pdb_mol), max_atoms)


def _template(template, name: str) -> Chem.Mol:
    """The template (SMILES or RDKit Mol) as a sanitized RDKit Mol with explicit hydrogens."""
    if isinstance(template, str):
        with rdkit_messages() as log:
            parsed = Chem.MolFromSmiles(template.strip()) if template.strip() else None
        if parsed is None:
            reason = _rdkit_reason(log, "empty" if not template.strip() else "RDKit cannot parse it")
            raise errors.UnparsableInputError(
                f"{name}: cannot parse template SMILES {shorten_name(template)!r} ({reason})")
        template = parsed
    if not isinstance(template, Chem.Mol):
        raise errors.UnparsableInputError(
            f"{name}: the template must be a SMILES or an RDKit Mol, got {type(template).__name__}")
    try:
        with rdkit_messages():
            template = Chem.Mol(template)
            Chem.SanitizeMol(template)
            return Chem.AddHs(template)
    except Exception as error:
        raise errors.UnparsableInputError(f"{name}: RDKit cannot sanitize the template ({_one_line(error)})") from None


def from_topology(topology, template, positions=None, name: str | None = None,
                  max_atoms: int = DEFAULT_MAX_ATOMS) -> Molecule:
    """Molecule from an OpenMM Topology whose graph matches ``template`` (SMILES or RDKit Mol).

    ``positions`` (optional) are OpenMM Quantities or arrays in nm.
    """
    name = name or "topology"
    template = _template(template, name)
    if not hasattr(topology, "atoms") or not hasattr(topology, "bonds"):
        raise errors.TemplateMismatchError(f"{name}: expected an OpenMM Topology, got {type(topology).__name__}")
    skeleton = Chem.RWMol()
    for atom in topology.atoms():
        if atom.element is None:
            raise errors.TemplateMismatchError(f"{name}: topology atom {atom.index} ({atom.name}) has no element")
        skeleton.AddAtom(Chem.Atom(atom.element.atomic_number))
    for bond in topology.bonds():
        i, j = bond.atom1.index, bond.atom2.index
        if i == j:
            raise errors.TemplateMismatchError(f"{name}: topology atom {i} is bonded to itself")
        if skeleton.GetBondBetweenAtoms(i, j) is None:  # a bond listed twice counts once
            skeleton.AddBond(i, j, Chem.BondType.SINGLE)
    coordinates = None
    if positions is not None:
        from openmm import unit

        if unit.is_quantity(positions):
            positions = positions.value_in_unit(unit.nanometer)
        try:
            coordinates = np.asarray(positions, dtype=np.float64).reshape(skeleton.GetNumAtoms(), 3) * 10.0
        except (TypeError, ValueError):
            raise errors.TemplateMismatchError(
                f"{name}: positions of shape {np.shape(positions)} do not fit the "
                f"{skeleton.GetNumAtoms()} topology atoms") from None
    return _from_skeleton(skeleton.GetMol(), template, name, coordinates, max_atoms)


def _formula(counts: Counter) -> str:
    table = Chem.GetPeriodicTable()
    return "".join(f"{table.GetElementSymbol(z)}{n if n > 1 else ''}" for z, n in sorted(counts.items()))


def _from_skeleton(skeleton: Chem.Mol, template: Chem.Mol, name: str, positions, max_atoms: int) -> Molecule:
    """Give the atoms of ``skeleton`` (elements + connectivity, input order) the chemistry of ``template``."""
    if skeleton.GetNumAtoms() == 0:
        raise errors.EmptyMoleculeError(f"{name}: the structure has no atoms")
    if skeleton.GetNumAtoms() > max_atoms:
        raise _too_large(name, skeleton.GetNumAtoms(), max_atoms)
    if skeleton.GetNumAtoms() != template.GetNumAtoms():
        have = Counter(a.GetAtomicNum() for a in skeleton.GetAtoms())
        want = Counter(a.GetAtomicNum() for a in template.GetAtoms())
        heavy_match = {z: n for z, n in have.items() if z != 1} == {z: n for z, n in want.items() if z != 1}
        if heavy_match and have[1] < want[1]:
            raise errors.MissingHydrogensError(
                f"{name}: the structure has {have[1]} of the template's {want[1]} hydrogens; add them "
                "(e.g. with OpenMM Modeller.addHydrogens) or give an SDF/MOL2 with bond orders"
            )
        raise errors.TemplateMismatchError(
            f"{name}: the structure has {skeleton.GetNumAtoms()} atoms ({_formula(have)}) but the template has "
            f"{template.GetNumAtoms()} ({_formula(want)})"
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
        mol = with_positions(mol, positions)
        with rdkit_messages():
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


def check_total_charge(molecule: Molecule, total_charge: int | None) -> Molecule:
    """Return ``molecule`` if its formal charges add up to ``total_charge`` (None: no check), else raise."""
    if total_charge is not None and molecule.total_charge != int(total_charge):
        charged = [f"{a.GetSymbol()}{a.GetIdx()}{a.GetFormalCharge():+d}"
                   for a in molecule.rdkit_mol.GetAtoms() if a.GetFormalCharge()]
        raise errors.ChargeMismatchError(
            f"{molecule.name}: the formal charges add up to {molecule.total_charge:+d} "
            f"({', '.join(charged) or 'no charged atoms'}), but the total charge given is {int(total_charge):+d}"
        )
    return molecule


FILE_TYPES = ".sdf, .sdf.gz, .mol, .mol2, .pdb or .smi"


def read_file(path: str, smiles: str | None = None, max_atoms: int = DEFAULT_MAX_ATOMS
              ) -> Iterator[tuple[str, Molecule | Exception]]:
    """Yield ``(record_name, Molecule or the error)`` for every record of an SDF / MOL2 / PDB / SMI file.

    A bad record yields its error and reading goes on with the next one. A file that cannot be read
    at all (missing, a folder, unknown type, garbage, empty) yields one error under the file's name.
    """
    path = str(path)
    base = os.path.splitext(os.path.basename(path.rstrip(os.sep)))[0] or "input"
    lower = path.lower()
    if lower.endswith(".gz"):
        base = os.path.splitext(base)[0] or base
    if not os.path.exists(path):
        yield base, errors.UnparsableInputError(f"{path}: no such file")
        return
    if os.path.isdir(path):
        yield base, errors.UnparsableInputError(f"{path}: is a folder, not a molecule file")
        return
    if lower.endswith((".sdf", ".sdf.gz", ".mol")):
        reader = _read_sdf(path, base, max_atoms)
    elif lower.endswith(".mol2"):
        reader = _read_mol2(path, base, max_atoms)
    elif lower.endswith(".pdb"):
        if smiles is None:
            yield base, errors.UnparsableInputError(f"{path}: a PDB file needs a SMILES for bond orders (--smiles)")
            return
        reader = iter([_as_result(lambda: from_pdb(path, smiles, base, max_atoms), base)])
    elif lower.endswith((".smi", ".txt")):
        reader = _read_smi(path, base, max_atoms)
    else:
        yield base, errors.UnparsableInputError(f"{path}: unknown file type (use {FILE_TYPES})")
        return
    n_records = 0
    try:
        for record in reader:
            n_records += 1
            yield record
    except Exception as error:  # an unreadable file (gzip garbage, I/O error): the records read so far stand
        yield f"{base}:{n_records + 1}", errors.UnparsableInputError(
            f"{path}: reading stopped after {n_records} records ({type(error).__name__}: {_one_line(error)})")
        return
    if n_records == 0:
        yield base, errors.EmptyMoleculeError(f"{path}: the file holds no molecule records")


def _text_lines(path: str):
    """Lines of a (possibly gzipped) text file; bytes that are not UTF-8 become U+FFFD."""
    if path.lower().endswith(".gz"):
        import gzip

        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _read_sdf(path: str, base: str, max_atoms: int):
    """Records of an SDF / MOL file, split at ``$$$$`` lines and parsed one by one."""
    with _text_lines(path) as handle:
        lines, index = [], 0
        for line in handle:
            if line.strip() == "$$$$":
                index += 1
                yield _parse_mol_block("".join(lines), path, f"{base}:{index}", index, max_atoms)
                lines = []
            else:
                lines.append(line)
        if "".join(lines).strip():  # a last record without $$$$ (a .mol file, or a truncated SDF)
            index += 1
            yield _parse_mol_block("".join(lines), path, f"{base}:{index}", index, max_atoms)


def _parse_mol_block(block: str, path: str, fallback: str, index: int, max_atoms: int):
    try:
        with rdkit_messages() as log:
            mol = Chem.MolFromMolBlock(block, sanitize=False, removeHs=False)
    except Exception as error:
        mol, log = None, str(error)
    if mol is None:  # named by position: the title line of a broken record may be junk too
        title = shorten_name(block.split("\n", 1)[0].strip())
        title = f" (title {title!r})" if title else ""
        reason = _rdkit_reason(log, "not a valid MDL mol block")
        return fallback, errors.UnparsableInputError(
            f"{fallback}: {path} record {index}{title}: RDKit cannot parse it ({reason})")
    name = shorten_name(_title(mol)) or fallback
    return _as_result(lambda: from_rdkit(mol, name, max_atoms), name)


def _read_mol2(path: str, base: str, max_atoms: int):
    """Records of a MOL2 file (one per ``@<TRIPOS>MOLECULE`` section)."""
    with _text_lines(path) as handle:
        text = handle.read()
    blocks = [block for block in re.split(r"(?m)^(?=@<TRIPOS>MOLECULE)", text) if block.strip()]
    if len(blocks) > 1 and not blocks[0].lstrip().startswith("@<TRIPOS>MOLECULE"):
        blocks = blocks[1:]  # comments before the first molecule
    for index, block in enumerate(blocks, start=1):
        fallback = base if len(blocks) == 1 else f"{base}:{index}"
        with rdkit_messages() as log:
            mol = Chem.MolFromMol2Block(block, sanitize=False, removeHs=False)
        if mol is None:
            reason = _rdkit_reason(log, "not a valid TRIPOS MOL2 molecule")
            yield fallback, errors.UnparsableInputError(
                f"{fallback}: {path}: RDKit cannot read this MOL2 record ({reason})")
            continue
        name = shorten_name(_title(mol)) or fallback
        yield _as_result(lambda: from_rdkit(mol, name, max_atoms), name)


def _read_smi(path: str, base: str, max_atoms: int):
    """Records of a .smi file: ``SMILES [name]`` per line; blank lines, ``#`` comments and a header skipped."""
    with _text_lines(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if line_number == 1 and fields[0].lower() == "smiles":  # a column header
                continue
            name = shorten_name(fields[1]) if len(fields) > 1 else f"{base}:{line_number}"
            yield _as_result(lambda: from_smiles(fields[0], name, max_atoms), name)


def _title(mol: Chem.Mol) -> str:
    return mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""


def _as_result(build, name: str):
    """``(name, build())``, or ``(name, error)``: any failure becomes a typed error naming the record."""
    try:
        return name, build()
    except errors.MoleculeInputError as error:
        return name, error
    except Exception as error:  # never let a raw RDKit / numpy exception end the batch
        return name, errors.UnparsableInputError(f"{name}: {type(error).__name__}: {_one_line(error)}")


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
