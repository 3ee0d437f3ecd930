"""OpenMM integration: a residue-template generator for small molecules, and bonded
re-parameterization of Systems built with another force field (e.g. a protein with amber14).

:class:`TemplateGenerator` works like openmmforcefields' ``GAFFTemplateGenerator``::

    generator = TemplateGenerator(molecules=["CC(=O)Oc1ccccc1C(=O)O"], cache="templates.json")
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    forcefield.registerTemplateGenerator(generator.generator)

A residue that no other template matches is compared with the registered molecules by graph
isomorphism (elements and bonds only; atom names and order do not matter; the formal charges and
bond orders come from the registered molecule). The model runs once per molecule; the template
it yields is kept in memory and, with ``cache=``, in a JSON or SQLite file keyed by model checksum
and canonical isomeric SMILES.

The generated ffxml (its System equals :func:`grappa_like.writers.to_openmm_system` term by term;
the tests check the energy force by force) is the portable file of :func:`grappa_like.export.ffxml_string` (see
:mod:`grappa_like.export` for its layout), named by a tag made from the model checksum and a hash
of the canonical SMILES, so several molecules and models coexist in one ForceField. OpenMM builds
one improper per centre atom; the other two of our three are added by the file's ``<Script>``,
which ForceField runs at ``createSystem``. Nonbonded: ``coulomb14scale`` 1/1.2 and ``lj14scale``
0.5, with OpenMM deriving exclusions and 1-4 exceptions from the bonds exactly as amber14 does, so
the template mixes with ``amber14-all.xml``.

:func:`reparameterize_system` keeps particles, masses, constraints and the NonbondedForce of a
System and replaces the HarmonicBond/HarmonicAngle/PeriodicTorsion (and CMAP) terms of the chosen
molecules by the model's. Bond orders and formal charges are inferred residue by residue with
RDKit's ``DetermineBondOrders`` (external bonds capped with hydrogens, residue charge =
rounded sum of the NonbondedForce charges), falling back to the whole molecule.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import sqlite3
import tempfile
import warnings
from collections import Counter

import numpy as np
import openmm
from openmm import app, unit
from rdkit import Chem
from rdkit.Chem import rdDetermineBonds

from grappa_like import errors
from grappa_like.api import Model, load_model
from grappa_like.export import ffxml_string
from grappa_like.molecule import Molecule, from_rdkit, read_file, to_molecule
from grappa_like.parameters import Parameters

__all__ = ["TemplateGenerator", "reparameterize_system", "molecules_from_topology", "molecule_topology"]

TEMPLATE_FORMAT = "ffxml-v2"     # part of the cache key: templates of older versions are made anew
CHARGE_TOLERANCE = 1e-4       # e; template charges must add up to the formal charge
RESIDUE_CHARGE_TOLERANCE = 0.05  # e; residue charges further from an integer: infer bond orders per molecule
MAX_REPARAMETERIZED_ATOMS = 100_000
# RDKit's DetermineBondOrders on a whole molecule can take minutes beyond ~150 atoms with several
# charged groups (e.g. a 12-residue peptide); larger molecules are inferred residue by residue only.
MAX_WHOLE_MOLECULE_ATOMS = 200


def _as_model(model) -> Model:
    return model if isinstance(model, Model) else load_model(model)


def _model_checksum(model: Model) -> str:
    """The model file's sha256, or one computed from the weights for a model built in memory."""
    if model.checksum:
        return model.checksum
    digest = hashlib.sha256()
    for name, weights in sorted(model.network.weights.items()):
        digest.update(name.encode())
        digest.update(weights.tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Graph matching


def _element_graph(atomic_numbers, bonds) -> Chem.Mol:
    """RDKit graph holding only elements and connectivity (all bonds single, no charges)."""
    graph = Chem.RWMol()
    for atomic_number in atomic_numbers:
        atom = Chem.Atom(int(atomic_number))
        atom.SetNoImplicit(True)
        graph.AddAtom(atom)
    for i, j in bonds:
        graph.AddBond(int(i), int(j), Chem.BondType.SINGLE)
    graph = graph.GetMol()
    graph.UpdatePropertyCache(strict=False)
    return graph


def _graph_key(atomic_numbers, n_bonds: int) -> tuple:
    return tuple(sorted(int(z) for z in atomic_numbers)), int(n_bonds)


def _residue_graph(residue):
    """(atomic numbers, local bonds, has external bonds) of an OpenMM residue; None if an atom has no element."""
    atoms = list(residue.atoms())
    if any(atom.element is None for atom in atoms):
        return None
    local = {atom.index: k for k, atom in enumerate(atoms)}
    bonds = [(local[a.index], local[b.index]) for a, b in residue.internal_bonds()]
    has_external = any(True for _ in residue.external_bonds())
    return [atom.element.atomic_number for atom in atoms], bonds, has_external


def _heavy_graph(atomic_numbers, bonds) -> Chem.Mol:
    """Element graph of the non-hydrogen atoms only."""
    heavy = [k for k, z in enumerate(atomic_numbers) if int(z) != 1]
    local = {k: n for n, k in enumerate(heavy)}
    return _element_graph([atomic_numbers[k] for k in heavy],
                          [(local[i], local[j]) for i, j in bonds if i in local and j in local])


def _same_graph(first: Chem.Mol, second: Chem.Mol) -> bool:
    return (first.GetNumAtoms() == second.GetNumAtoms() and first.GetNumBonds() == second.GetNumBonds()
            and first.HasSubstructMatch(second))


def _formula_counts(molecule: Molecule) -> Counter:
    return Counter(atom.GetSymbol() for atom in molecule.rdkit_mol.GetAtoms())


def _describe(molecule: Molecule) -> str:
    formula = _hill_formula(_formula_counts(molecule))
    if molecule.name == molecule.smiles:
        return f"{molecule.smiles} ({formula})"
    return f"{molecule.name} ({molecule.smiles}, {formula})"


def _hill_formula(counts: Counter) -> str:
    """Hill formula: C, then H, then the other elements alphabetically (all alphabetically without C)."""
    order = (["C", "H"] if "C" in counts else []) + sorted(e for e in counts if "C" not in counts or e not in ("C", "H"))
    return "".join(f"{e}{counts[e] if counts[e] > 1 else ''}" for e in order if counts.get(e))


# --------------------------------------------------------------------------------------------
# ffxml of one molecule


def template_xml(molecule: Molecule, parameters: Parameters, tag: str) -> str:
    """ffxml (string) with one residue template named ``tag``: the portable file of
    :func:`grappa_like.export.ffxml_string`, after checking that the charges add up."""
    total = float(np.sum(parameters.charges))
    if abs(total - molecule.total_charge) > CHARGE_TOLERANCE:
        raise errors.GrappaLikeError(
            f"{molecule.name}: the model's charges add up to {total:.6f} e, not to the formal charge "
            f"{molecule.total_charge}"
        )
    return ffxml_string(molecule, parameters, residue_name=tag)


# --------------------------------------------------------------------------------------------
# Template cache


class _TemplateCache:
    """Template XML by key in a JSON file (``.json``) or an SQLite database (any other suffix)."""

    def __init__(self, path: str):
        self.path = os.path.abspath(str(path))
        self.is_json = self.path.lower().endswith(".json")
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if not self.is_json:
            with self._connect() as connection:
                connection.execute("CREATE TABLE IF NOT EXISTS templates (key TEXT PRIMARY KEY, xml TEXT NOT NULL)")

    def _connect(self):
        return sqlite3.connect(self.path, timeout=30)

    def _read_json(self) -> dict:
        if not os.path.exists(self.path):
            return {}
        try:
            with open(self.path) as handle:
                return json.load(handle)
        except (OSError, ValueError) as error:
            raise errors.GrappaLikeError(f"{self.path}: template cache is not readable JSON ({error})") from None

    def get(self, key: str) -> str | None:
        if self.is_json:
            return self._read_json().get(key)
        with self._connect() as connection:
            row = connection.execute("SELECT xml FROM templates WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, xml: str) -> None:
        if not self.is_json:
            with self._connect() as connection:
                connection.execute("INSERT OR REPLACE INTO templates (key, xml) VALUES (?, ?)", (key, xml))
            return
        content = dict(self._read_json(), **{key: xml})
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(self.path), suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as stream:
                json.dump(content, stream, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)


# --------------------------------------------------------------------------------------------
# Template generator


class TemplateGenerator:
    """Residue-template generator for OpenMM's ForceField: register ``.generator`` with
    ``forcefield.registerTemplateGenerator``; molecules are SMILES, RDKit Mols, SDF/MOL2 paths,
    grappa_like or openff Molecules; ``cache`` is a ``.json`` or SQLite file path."""

    def __init__(self, molecules=None, model: Model | str | None = None, cache: str | None = None):
        self.model = _as_model(model)
        self.checksum = _model_checksum(self.model)
        self.cache = _TemplateCache(cache) if cache else None
        self.molecules: list[Molecule] = []
        self._by_graph: dict[tuple, list[tuple[Molecule, Chem.Mol]]] = {}
        self._templates: dict[str, tuple[str, str]] = {}  # cache key -> (tag, xml)
        if molecules is not None:
            self.add_molecules(molecules)

    def add_molecules(self, molecules) -> None:
        """Register one or several molecules (SMILES, RDKit Mol, SDF/MOL2 path, Molecule, openff Molecule)."""
        if isinstance(molecules, (str, os.PathLike, Molecule, Chem.Mol)) or not hasattr(molecules, "__iter__"):
            molecules = [molecules]
        for item in molecules:
            if isinstance(item, (str, os.PathLike)) and os.path.isfile(item):
                for _, record in read_file(str(item)):
                    if isinstance(record, Exception):
                        raise record
                    self._register(record)
            else:
                self._register(to_molecule(item))

    def _register(self, molecule: Molecule) -> None:
        bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in molecule.rdkit_mol.GetBonds()]
        key = _graph_key(molecule.atomic_numbers, len(bonds))
        self.molecules.append(molecule)
        self._by_graph.setdefault(key, []).append((molecule, _element_graph(molecule.atomic_numbers, bonds)))

    def match(self, residue) -> Molecule | None:
        """The registered molecule whose graph (elements, bonds) is that of ``residue``, or None."""
        graph = _residue_graph(residue)
        if graph is None:
            return None
        atomic_numbers, bonds, has_external = graph
        if has_external:
            return None
        candidates = self._by_graph.get(_graph_key(atomic_numbers, len(bonds)), [])
        if not candidates:
            return None
        residue_graph = _element_graph(atomic_numbers, bonds)
        for molecule, molecule_graph in candidates:
            if molecule_graph.HasSubstructMatch(residue_graph):
                return molecule
        return None

    def diagnose(self, residue) -> str:
        """Why ``residue`` matches no registered molecule: name, index, formula, closest molecules, likely cause, fix."""
        atoms = list(residue.atoms())
        where = f"residue {residue.index} ({residue.name}, chain {residue.chain.id}, id {residue.id})"
        if any(atom.element is None for atom in atoms):
            return f"grappa_like: {where} has atoms without an element (virtual sites?): it cannot be matched"
        counts = Counter(atom.element.symbol for atom in atoms)
        formula = _hill_formula(counts)
        head = f"grappa_like: {where}, {formula}, matches no registered molecule"
        if any(True for _ in residue.external_bonds()):
            return (f"{head}: it is bonded to another residue, and the template generator only types whole "
                    "molecules (covalent ligands are not supported)")
        if not self.molecules:
            return f"{head}: no molecule is registered; fix: generator.add_molecules(<SMILES or SDF of {residue.name}>)"
        atomic_numbers, bonds, _ = _residue_graph(residue)
        heavy = _heavy_graph(atomic_numbers, bonds)
        same_heavy = [m for m in self.molecules if _same_graph(heavy, _heavy_graph(
            m.atomic_numbers, [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in m.rdkit_mol.GetBonds()]))]
        for molecule in same_heavy:
            n_hydrogens, registered = counts.get("H", 0), int(np.sum(molecule.atomic_numbers == 1))
            described = _describe(molecule)
            if n_hydrogens == 0:
                return (f"{head}: its heavy atoms are those of the registered {described}, but it has no hydrogens "
                        "(a PDB straight from a crystal structure?); fix: add the hydrogens to the structure, e.g. "
                        "build the ligand from its SDF with grappa_like.openmm.molecule_topology(molecule) or "
                        "rdkit's Chem.AddHs(mol, addCoords=True), then Modeller.add it")
            if n_hydrogens != registered:
                return (f"{head}: its heavy atoms are those of the registered {described}, but it has "
                        f"{n_hydrogens} hydrogens instead of {registered}: another protonation state; fix: "
                        f"generator.add_molecules(<SMILES of the form in the structure>), or protonate the "
                        f"structure as {molecule.smiles}")
            return (f"{head}: same formula and heavy atoms as the registered {described}, but the hydrogens sit on "
                    "other atoms: another tautomer (or a wrong bond in the topology); fix: "
                    "generator.add_molecules(<SMILES of this tautomer>), or check the residue's bonds (CONECT records)")
        closest = sorted(self.molecules, key=lambda m: sum((Counter(_formula_counts(m)) - counts).values())
                         + sum((counts - Counter(_formula_counts(m))).values()))[:3]
        listed = ", ".join(_describe(m) for m in closest)
        return (f"{head}: not registered (closest registered: {listed}); fix: "
                f"generator.add_molecules(<SMILES or SDF of {residue.name}>) before createSystem")

    def template(self, molecule: Molecule) -> tuple[str, str]:
        """(template name, ffxml string) of a molecule: from memory, the cache file, or the model."""
        smiles = molecule.smiles
        key = f"{self.checksum}:{TEMPLATE_FORMAT}:{smiles}"
        if key in self._templates:
            return self._templates[key]
        tag = f"grappa-{self.checksum[:8]}-{hashlib.sha256(smiles.encode()).hexdigest()[:12]}"
        xml = self.cache.get(key) if self.cache else None
        if xml is None:
            parameters = self.model.predict([molecule])[0]
            xml = template_xml(molecule, parameters, tag)
            if self.cache:
                self.cache.put(key, xml)
        self._templates[key] = (tag, xml)
        return tag, xml

    def generator(self, forcefield, residue) -> bool:
        """OpenMM template-generator callable: load a template for ``residue`` if it is a registered molecule;
        else warn (:class:`~grappa_like.errors.ResidueMismatchWarning`) with the likely cause and the fix."""
        molecule = self.match(residue)
        if molecule is None:
            warnings.warn(self.diagnose(residue), errors.ResidueMismatchWarning, stacklevel=2)
            return False
        tag, xml = self.template(molecule)
        if tag not in forcefield._templates:
            forcefield.loadFile(io.StringIO(xml))
        return True


def molecule_topology(molecule: Molecule, residue_name: str = "LIG"):
    """(OpenMM Topology with one residue, positions in nm) of a molecule, atoms in molecule order."""
    topology = app.Topology()
    residue = topology.addResidue(residue_name, topology.addChain())
    atoms = []
    for index, atomic_number in enumerate(molecule.atomic_numbers):
        element = app.Element.getByAtomicNumber(int(atomic_number))
        atoms.append(topology.addAtom(f"{element.symbol}{index}", element, residue))
    for bond in molecule.rdkit_mol.GetBonds():
        topology.addBond(atoms[bond.GetBeginAtomIdx()], atoms[bond.GetEndAtomIdx()])
    positions = unit.Quantity(np.asarray(molecule.conformer_positions()) * 0.1, unit.nanometer)
    return topology, positions


# --------------------------------------------------------------------------------------------
# Bonded re-parameterization of existing Systems


def _components(topology) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """(sorted atom indices, bonds as topology index pairs) of each connected molecule of a topology."""
    parent = list(range(topology.getNumAtoms()))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    bonds = [(a.index, b.index) for a, b in topology.bonds()]
    for i, j in bonds:
        parent[root(i)] = root(j)
    atoms: dict[int, list[int]] = {}
    for index in range(len(parent)):
        atoms.setdefault(root(index), []).append(index)
    bonds_of: dict[int, list[tuple[int, int]]] = {}
    for i, j in bonds:
        bonds_of.setdefault(root(i), []).append((i, j))
    return [(members, bonds_of.get(key, [])) for key, members in atoms.items()]


def _is_water_or_ion(elements) -> bool:
    symbols = sorted(e.symbol for e in elements if e is not None)
    return len(elements) == 1 or symbols == ["H", "H", "O"]


def _nonbonded_charges(system) -> np.ndarray:
    forces = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    if not forces:
        raise errors.GrappaLikeError("the System has no NonbondedForce: cannot infer the molecules' formal charges")
    force = forces[0]
    return np.array([force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
                     for i in range(force.getNumParticles())])


def _determine_bond_orders(mol: Chem.Mol, charge: int) -> Chem.Mol:
    mol = Chem.Mol(mol)
    rdDetermineBonds.DetermineBondOrders(mol, charge=charge, embedChiral=False)
    return mol


def _rdkit_molecule(all_atoms, atoms: list[int], bonds, charges: np.ndarray, name: str) -> Chem.Mol:
    """RDKit Mol (topology order) of one molecule: bond orders and formal charges inferred per residue."""
    local = {index: k for k, index in enumerate(atoms)}
    skeleton = Chem.RWMol()
    for index in atoms:
        element = all_atoms[index].element
        if element is None:
            raise errors.MoleculeInputError(f"{name}: atom {index} has no element (virtual site?)")
        skeleton.AddAtom(Chem.Atom(element.atomic_number))
    bonds = [(local[i], local[j]) for i, j in bonds]
    for i, j in bonds:
        skeleton.AddBond(i, j, Chem.BondType.SINGLE)
    total_charge = int(round(charges[atoms].sum()))

    residues: dict[int, list[int]] = {}
    for index in atoms:
        residues.setdefault(all_atoms[index].residue.index, []).append(local[index])
    residue_charges = {r: charges[[atoms[k] for k in members]].sum() for r, members in residues.items()}
    if len(residues) > 1 and all(abs(q - round(q)) < RESIDUE_CHARGE_TOLERANCE for q in residue_charges.values()):
        try:
            mol = _bond_orders_by_residue(skeleton, bonds, residues, residue_charges)
            if Chem.GetFormalCharge(mol) == total_charge:
                return mol
        except Exception:  # RDKit raises several classes; fall back to the whole molecule
            pass
    if len(atoms) > MAX_WHOLE_MOLECULE_ATOMS:
        raise errors.MoleculeInputError(
            f"{name}: bond orders of a molecule this large ({len(atoms)} atoms) are only inferred residue by "
            "residue, which needs residues with integer charges; exclude it with residues="
        )
    try:
        mol = _determine_bond_orders(skeleton.GetMol(), total_charge)
        Chem.SanitizeMol(mol)
    except Exception as error:
        raise errors.MoleculeInputError(
            f"{name}: cannot infer bond orders and formal charges for total charge {total_charge} ({error})"
        ) from None
    return mol


def _bond_orders_by_residue(skeleton: Chem.RWMol, bonds, residues: dict, residue_charges: dict) -> Chem.Mol:
    """Bond orders and charges residue by residue (bonds to other residues capped with H; they stay single)."""
    mol = Chem.RWMol(skeleton)
    residue_of = {k: r for r, members in residues.items() for k in members}
    for r, members in residues.items():
        position = {k: p for p, k in enumerate(members)}
        fragment = Chem.RWMol()
        for k in members:
            fragment.AddAtom(Chem.Atom(skeleton.GetAtomWithIdx(k).GetAtomicNum()))
        for i, j in bonds:
            if residue_of[i] == r and residue_of[j] == r:
                fragment.AddBond(position[i], position[j], Chem.BondType.SINGLE)
            elif residue_of[i] == r or residue_of[j] == r:
                cap = fragment.AddAtom(Chem.Atom(1))
                fragment.AddBond(position[i] if residue_of[i] == r else position[j], cap, Chem.BondType.SINGLE)
        fragment = _determine_bond_orders(fragment.GetMol(), int(round(residue_charges[r])))
        for k in members:
            mol.GetAtomWithIdx(k).SetFormalCharge(fragment.GetAtomWithIdx(position[k]).GetFormalCharge())
        for bond in fragment.GetBonds():
            i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            if i < len(members) and j < len(members):
                mol.GetBondBetweenAtoms(members[i], members[j]).SetBondType(bond.GetBondType())
    mol = mol.GetMol()
    for atom in mol.GetAtoms():
        atom.SetNoImplicit(True)
    Chem.SanitizeMol(mol)
    return mol


def molecules_from_topology(topology, system, residues=None) -> list[tuple[list[int], Molecule]]:
    """(topology atom indices, Molecule in that order) of each chosen molecule of a topology.

    ``residues``: Residue objects, residue indices or residue names; the molecules containing any
    of them are chosen. Default: every molecule except water and monatomic ions. Formal charges
    come from the System's NonbondedForce (rounded sum per residue / molecule).
    """
    charges = _nonbonded_charges(system)
    all_atoms = list(topology.atoms())
    wanted = None if residues is None else ({residues} if isinstance(residues, str) else set(residues))
    chosen = []
    for atoms, bonds in _components(topology):
        atom_residues = {all_atoms[i].residue for i in atoms}
        if wanted is None:
            take = not _is_water_or_ion([all_atoms[i].element for i in atoms])
        else:
            take = any(r in wanted or r.index in wanted or r.name in wanted for r in atom_residues)
        if take:
            chosen.append((atoms, bonds))
    result = []
    for atoms, bonds in chosen:
        first = all_atoms[atoms[0]].residue
        name = f"{first.name}{first.id} (chain {first.chain.id}, {len(atoms)} atoms)"
        mol = _rdkit_molecule(all_atoms, atoms, bonds, charges, name)
        result.append((atoms, from_rdkit(mol, name, max_atoms=MAX_REPARAMETERIZED_ATOMS)))
    return result


def _copy_terms(force, keep):
    """New force of the same type holding the terms of ``force`` for which keep(atom indices) is true."""
    new = type(force)()
    new.setForceGroup(force.getForceGroup())
    new.setName(force.getName())
    if isinstance(force, openmm.HarmonicBondForce):
        for i in range(force.getNumBonds()):
            a, b, length, k = force.getBondParameters(i)
            if keep((a, b)):
                new.addBond(a, b, length, k)
    elif isinstance(force, openmm.HarmonicAngleForce):
        for i in range(force.getNumAngles()):
            a, b, c, angle, k = force.getAngleParameters(i)
            if keep((a, b, c)):
                new.addAngle(a, b, c, angle, k)
    elif isinstance(force, openmm.PeriodicTorsionForce):
        for i in range(force.getNumTorsions()):
            a, b, c, d, periodicity, phase, k = force.getTorsionParameters(i)
            if keep((a, b, c, d)):
                new.addTorsion(a, b, c, d, periodicity, phase, k)
    else:  # CMAPTorsionForce
        for i in range(force.getNumMaps()):
            new.addMap(*force.getMapParameters(i))
        for i in range(force.getNumTorsions()):
            parameters = force.getTorsionParameters(i)
            if keep(parameters[1:]):
                new.addTorsion(*parameters)
    new.setUsesPeriodicBoundaryConditions(force.usesPeriodicBoundaryConditions())
    return new


_BONDED_TYPES = (openmm.HarmonicBondForce, openmm.HarmonicAngleForce, openmm.PeriodicTorsionForce,
                 openmm.CMAPTorsionForce)


def reparameterize_system(system, topology, model: Model | str | None = None, residues=None) -> openmm.System:
    """Copy of ``system`` whose bonded terms (bonds, angles, torsions, CMAP) of the chosen molecules
    are the model's; particles, masses, constraints and NonbondedForce (with exceptions) unchanged.

    ``residues`` as in :func:`molecules_from_topology` (default: all but water and monatomic ions).
    Constrained bonds get no harmonic term, and angles whose three distances are constrained no
    angle term, as in ``ForceField.createSystem`` — unless the System keeps such terms itself
    (``flexibleConstraints``).
    """
    if system.getNumParticles() != topology.getNumAtoms():
        raise errors.GrappaLikeError(
            f"the System has {system.getNumParticles()} particles but the topology {topology.getNumAtoms()} atoms")
    model = _as_model(model)
    chosen = molecules_from_topology(topology, system, residues)
    parameters = model.predict([molecule for _, molecule in chosen]) if chosen else []
    molecule_of = np.full(system.getNumParticles(), -1)
    for number, (atoms, _) in enumerate(chosen):
        molecule_of[atoms] = number
    replaced = molecule_of >= 0

    constrained = set()
    for i in range(system.getNumConstraints()):
        a, b, _ = system.getConstraintParameters(i)
        constrained.add((min(a, b), max(a, b)))

    def is_constrained(a, b):
        return (min(a, b), max(a, b)) in constrained

    old_forces = [system.getForce(i) for i in range(system.getNumForces())]
    flexible_bonds = any(
        replaced[a] and is_constrained(a, b)
        for f in old_forces if isinstance(f, openmm.HarmonicBondForce)
        for a, b, _, _ in (f.getBondParameters(i) for i in range(f.getNumBonds())))
    flexible_angles = any(
        replaced[a] and is_constrained(a, b) and is_constrained(b, c) and is_constrained(a, c)
        for f in old_forces if isinstance(f, openmm.HarmonicAngleForce)
        for a, b, c, _, _ in (f.getAngleParameters(i) for i in range(f.getNumAngles())))

    def keep(atom_indices):  # drop a term only when all its atoms lie in one replaced molecule
        owners = {int(molecule_of[a]) for a in atom_indices}
        return len(owners) > 1 or owners == {-1}

    new_forces = [_copy_terms(f, keep) if isinstance(f, _BONDED_TYPES) else copy.deepcopy(f) for f in old_forces]
    first = {}
    for kind in _BONDED_TYPES[:3]:
        matching = [f for f in new_forces if type(f) is kind]
        if matching:
            first[kind] = matching[0]
        else:
            first[kind] = kind()
            first[kind].setUsesPeriodicBoundaryConditions(False)
            new_forces.append(first[kind])
    bond_force, angle_force, torsion_force = (first[kind] for kind in _BONDED_TYPES[:3])

    for (atoms, _), params in zip(chosen, parameters):
        index = np.asarray(atoms)
        terms = params.interactions
        for (i, j), r0, k in zip(index[terms.bonds], params.bond_r0, params.bond_k):
            if flexible_bonds or not is_constrained(int(i), int(j)):
                bond_force.addBond(int(i), int(j), float(r0), float(k))
        for (i, j, k), theta0, force_constant in zip(index[terms.angles], params.angle_theta0, params.angle_k):
            i, j, k = int(i), int(j), int(k)
            if flexible_angles or not (is_constrained(i, j) and is_constrained(j, k) and is_constrained(i, k)):
                angle_force.addAngle(i, j, k, float(theta0), float(force_constant))
        for quadruples, signed_k in ((index[terms.propers], params.proper_k),
                                     (index[terms.impropers], params.improper_k)):
            for row, periodicity, phase, k in Parameters.torsion_terms(signed_k):
                torsion_force.addTorsion(*(int(a) for a in quadruples[row]), periodicity, phase, k)

    new_system = copy.deepcopy(system)
    while new_system.getNumForces():
        new_system.removeForce(new_system.getNumForces() - 1)
    for force in new_forces:
        new_system.addForce(force)
    return new_system
