"""Exports: :class:`~grappa_like.parameters.Parameters` -> GROMACS, Amber and OpenMM ffxml files.

Every export reproduces the energy of :func:`grappa_like.writers.to_openmm_system` (the reference
System): the tests load each file back with OpenMM and compare energies and forces.

GROMACS (``<prefix>.top`` + ``<prefix>.gro``)
    Written directly (no ParmEd): ParmEd prints bond lengths with 5 decimals of a nm, which moves
    forces by ~1e-4 relative. The ``.top`` is self-contained (no ``#include``): ``[ defaults ]``
    ``1 2 yes 0.5 0.8333333333333334`` (LJ, Lorentz-Berthelot, Amber fudge factors 0.5 and 1/1.2), one
    ``[ atomtypes ]`` entry per distinct LJ parameter pair with names prefixed by a tag unique to
    this molecule and parameter set, then one ``[ moleculetype ]`` (nrexcl 3). Every 1-4 pair is
    listed once in ``[ pairs ]`` with explicit σ and 0.5·ε, so the LJ 1-4 term does not depend on
    gen-pairs/fudgeLJ; the 1-4 Coulomb term uses fudgeQQ. Propers are ``[ dihedrals ]`` function 9,
    impropers function 4, one line per periodicity. To put the molecule in a larger topology, move
    its ``[ atomtypes ]`` lines below the force field's and include the ``[ moleculetype ]`` block.
    The ``.gro`` has 3 decimals (nm), as the format prescribes, and a cubic box 2 nm wider than the
    molecule.

GROMACS ligand for ``#include`` (``<prefix>.itp``, ``<prefix>_atomtypes.itp``, ``<prefix>.gro``)
    The same ``[ atomtypes ]`` and ``[ moleculetype ]`` in two files, for a topology made with an
    Amber force field of GROMACS (``[ defaults ]`` nbfunc 1, comb-rule 2). 1-4 pairs are function 2
    (own fudgeQQ, charges, σ, 0.5·ε), so the including file's gen-pairs/fudge factors do not apply.

Amber ligand for tleap (``<prefix>.mol2`` + ``<prefix>.frcmod``)
    One two-character atom type per atom (tleap reads no longer ones), letters unused by the force
    fields of AmberTools. tleap builds one improper per centre; :func:`complete_amber_impropers`
    rewrites them from the frcmod (three per centre) in the prmtop that tleap saves.

Amber (``<prefix>.prmtop`` + ``<prefix>.inpcrd``)
    ParmEd (``parmed.openmm.load_topology`` on the reference System, then ``AmberParm``). ParmEd
    turns our NonbondedForce exceptions into exactly one dihedral per 1-4 pair that carries
    SCEE = 1.2 and SCNB = 2.0; every other dihedral (further periodicities of the same quadruple,
    the second path of a ring, all impropers) is marked "no 1-4" (negative third index). 1-4 pairs
    without a torsion term (around linear sp atoms) get a zero-amplitude dihedral. The export calls
    ``AmberParm`` directly, so a parameter set that Amber cannot express fails loudly instead of
    falling back to a CHAMBER file as ``Structure.save`` does.

OpenMM ffxml (one file)
    One residue template; each atom has its own atom type (and class) ``<tag>-<atom name>``, so
    the file can be loaded next to other force fields and other molecules' ffxml files. The
    template name is ``<residue_name>`` if given, else ``GL-<tag>`` (ForceField refuses two
    templates of the same name). Bonds, angles and all propers are ordinary typed entries (propers
    around linear atoms get a zero entry, which adds nothing but keeps wildcard propers of other
    force fields off them). Impropers: ForceField builds only ONE improper per atom with three
    neighbours, while our energy has three (one per neighbour on the axis). The first is a
    ``<Improper>`` entry in ``ordering="amber"`` (with unique types that ordering adds exactly
    (a, b, c, d), centre third); the other two are added by a ``<Script>`` in the file, which
    ForceField runs after building the System: it finds every residue typed by this template and
    adds the missing torsions to the PeriodicTorsionForce. No other forces are created. Tools that
    ignore ``<Script>`` (ParmEd's ffxml reader, for one) would miss two of every three impropers.
    Charges are per atom in the template (``UseAttributeFromResidue``); 1-4 scales 1/1.2 and 0.5.

Every file is written to a temporary name in its folder and renamed, so no half-written file is
left behind. Units inside the files are each format's own (GROMACS nm/kJ/degrees; Amber Å/kcal).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from xml.sax.saxutils import quoteattr

import numpy as np

from grappa_like import errors
from grappa_like.fileio import atomic_write, atomic_write_text
from grappa_like.parameters import COULOMB_14_SCALE, LJ_14_SCALE, Parameters
from grappa_like.writers import to_openmm_system

DEFAULT_RESIDUE_NAME = "MOL"
GRO_BOX_PADDING_NM = 1.0
SCEE = 1.0 / COULOMB_14_SCALE   # 1.2
SCNB = 1.0 / LJ_14_SCALE        # 2.0

_GROMACS_EXTENSIONS = (".top", ".gro", ".itp")
_AMBER_EXTENSIONS = (".prmtop", ".parm7", ".inpcrd", ".rst7")


# ------------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------------

def atom_names(molecule) -> list[str]:
    """Unique atom names for ``molecule``: element symbol + per-element counter (C1, C2, H1, ...)."""
    counters: dict[str, int] = defaultdict(int)
    names = []
    for atom in molecule.rdkit_mol.GetAtoms():
        symbol = atom.GetSymbol()
        counters[symbol] += 1
        names.append(f"{symbol}{counters[symbol]}")
    return names


def openmm_topology(molecule, residue_name: str = DEFAULT_RESIDUE_NAME):
    """OpenMM Topology of ``molecule``: one chain, one residue, atoms named by :func:`atom_names`, bonds with orders."""
    from openmm import app
    from rdkit import Chem

    bond_types = {
        Chem.BondType.SINGLE: (app.Single, 1), Chem.BondType.DOUBLE: (app.Double, 2),
        Chem.BondType.TRIPLE: (app.Triple, 3), Chem.BondType.AROMATIC: (app.Aromatic, None),
    }
    topology = app.Topology()
    residue = topology.addResidue(residue_name, topology.addChain())
    atoms = [
        topology.addAtom(name, app.Element.getByAtomicNumber(atom.GetAtomicNum()), residue)
        for name, atom in zip(atom_names(molecule), molecule.rdkit_mol.GetAtoms())
    ]
    for bond in molecule.rdkit_mol.GetBonds():
        bond_type, order = bond_types.get(bond.GetBondType(), (None, None))
        topology.addBond(atoms[bond.GetBeginAtomIdx()], atoms[bond.GetEndAtomIdx()], bond_type, order)
    return topology


def parameter_tag(molecule, parameters: Parameters) -> str:
    """Short tag ('gl' + 8 hex digits) unique to this molecule graph (atom order included) and parameter set."""
    digest = hashlib.sha256(molecule.mapped_smiles().encode())
    for array in (parameters.bond_k, parameters.bond_r0, parameters.angle_k, parameters.angle_theta0,
                  parameters.proper_k, parameters.improper_k, parameters.charges, parameters.sigma,
                  parameters.epsilon):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return "gl" + digest.hexdigest()[:8]


def _strip_extension(path_prefix, extensions) -> str:
    path_prefix = os.fspath(path_prefix)
    root, extension = os.path.splitext(path_prefix)
    return root if extension.lower() in extensions else path_prefix


def _positions_nm(molecule) -> np.ndarray:
    return np.asarray(molecule.conformer_positions(), dtype=np.float64) / 10.0


def _masses(molecule) -> list[float]:
    from openmm import app, unit

    return [app.Element.getByAtomicNumber(int(z)).mass.value_in_unit(unit.dalton) for z in molecule.atomic_numbers]


def _check(molecule, parameters: Parameters) -> None:
    if parameters.interactions.n_atoms != molecule.n_atoms:
        raise ValueError(
            f"{molecule.name}: the parameters are for {parameters.interactions.n_atoms} atoms "
            f"but the molecule has {molecule.n_atoms}"
        )


def _number(value) -> str:
    """Shortest text that reads back as the same double."""
    return repr(float(value))


# ------------------------------------------------------------------------------------------------
# GROMACS
# ------------------------------------------------------------------------------------------------

def to_gromacs(molecule, parameters: Parameters, path_prefix, residue_name: str = DEFAULT_RESIDUE_NAME) -> list[str]:
    """Write ``<prefix>.top`` (self-contained, nm/kJ/mol/degrees) and ``<prefix>.gro`` (nm); return their paths."""
    _check(molecule, parameters)
    prefix = _strip_extension(path_prefix, _GROMACS_EXTENSIONS)
    top_path, gro_path = prefix + ".top", prefix + ".gro"
    names = atom_names(molecule)
    atomic_write_text(top_path, _gromacs_top(molecule, parameters, names, residue_name))
    atomic_write_text(gro_path, _gromacs_gro(molecule, names, residue_name))
    return [top_path, gro_path]


def to_gromacs_itp(molecule, parameters: Parameters, path_prefix,
                   residue_name: str = DEFAULT_RESIDUE_NAME) -> list[str]:
    """Write ``<prefix>.itp`` ([ moleculetype ] named ``residue_name``), ``<prefix>_atomtypes.itp`` and
    ``<prefix>.gro`` (nm) for ``#include`` next to an Amber force field of GROMACS; return their paths.

    The including topology must use ``[ defaults ]`` nbfunc 1 and comb-rule 2 (σ, ε), as GROMACS'
    ``amber*.ff`` do; gen-pairs, fudgeLJ and fudgeQQ do not matter: every 1-4 pair is ``[ pairs ]``
    function 2 with its own fudgeQQ (1/1.2), charges, σ and 0.5·ε (amber99sb-ildn's fudgeQQ is 0.8333).
    """
    _check(molecule, parameters)
    prefix = _strip_extension(path_prefix, _GROMACS_EXTENSIONS)
    itp_path, atomtypes_path, gro_path = prefix + ".itp", prefix + "_atomtypes.itp", prefix + ".gro"
    names = atom_names(molecule)
    type_of_atom, atomtype_lines = _gromacs_atomtypes(molecule, parameters)
    header = [f"; grappa_like parameters of {molecule.name}; SMILES: {molecule.smiles}",
              "; needs [ defaults ] nbfunc 1, comb-rule 2 (sigma, epsilon), as GROMACS' amber*.ff"]
    atomic_write_text(atomtypes_path, "\n".join(
        header + [f'; #include "{os.path.basename(atomtypes_path)}" right after the force field\'s forcefield.itp',
                  ""] + atomtype_lines + [""]))
    moleculetype = _gromacs_moleculetype(molecule, parameters, names, type_of_atom, residue_name, residue_name,
                                         pair_function=2)
    atomic_write_text(itp_path, "\n".join(
        header + [f'; #include "{os.path.basename(itp_path)}" after the other [ moleculetype ] blocks; '
                  f'add "{residue_name}  1" to [ molecules ]', ""] + moleculetype + [""]))
    atomic_write_text(gro_path, _gromacs_gro(molecule, names, residue_name))
    return [itp_path, atomtypes_path, gro_path]


def _gromacs_atomtypes(molecule, parameters: Parameters) -> tuple[list[str], list[str]]:
    """(atom type of each atom, ``[ atomtypes ]`` lines): one type per distinct (element, mass, σ, ε)."""
    tag = parameter_tag(molecule, parameters)
    type_of_atom, type_rows = [], {}
    for z, mass, sigma, epsilon in zip(molecule.atomic_numbers, _masses(molecule), parameters.sigma,
                                       parameters.epsilon):
        key = (int(z), mass, float(sigma), float(epsilon))
        if key not in type_rows:
            type_rows[key] = f"{tag}_{len(type_rows) + 1}"
        type_of_atom.append(type_rows[key])
    lines = ["[ atomtypes ]", "; name  at.num  mass  charge  ptype  sigma(nm)  epsilon(kJ/mol)"]
    for (z, mass, sigma, epsilon), type_name in type_rows.items():
        lines.append(f"  {type_name}  {z}  {_number(mass)}  0.000000  A  {_number(sigma)}  {_number(epsilon)}")
    return type_of_atom, lines


def _gromacs_moleculetype(molecule, parameters: Parameters, names, type_of_atom, molecule_type: str,
                          residue_name: str, pair_function: int) -> list[str]:
    """``[ moleculetype ]`` block; 1-4 pairs as function 1 (σ, 0.5·ε; fudgeQQ from [ defaults ]) or 2 (all explicit)."""
    interactions = parameters.interactions
    masses = _masses(molecule)
    lines = ["[ moleculetype ]", "; name  nrexcl", f"  {molecule_type}  3", "",
             "[ atoms ]", "; nr  type  resnr  residue  atom  cgnr  charge(e)  mass(u)"]
    for index, (name, type_name, charge, mass) in enumerate(zip(names, type_of_atom, parameters.charges, masses)):
        lines.append(f"  {index + 1}  {type_name}  1  {residue_name}  {name}  {index + 1}  "
                     f"{_number(charge)}  {_number(mass)}")

    if len(interactions.bonds):
        lines += ["", "[ bonds ]", "; ai  aj  funct  b0(nm)  kb(kJ/mol/nm^2)"]
        for (i, j), r0, k in zip(interactions.bonds, parameters.bond_r0, parameters.bond_k):
            lines.append(f"  {i + 1}  {j + 1}  1  {_number(r0)}  {_number(k)}")
    if len(interactions.pairs14):
        s, e, q = parameters.sigma, parameters.epsilon, parameters.charges
        if pair_function == 1:
            lines += ["", "[ pairs ]", "; ai  aj  funct  sigma(nm)  epsilon(kJ/mol), 1-4 scaling included"]
        else:
            lines += ["", "[ pairs ]", "; ai  aj  funct  fudgeQQ  qi(e)  qj(e)  sigma(nm)  epsilon(kJ/mol), "
                                       "1-4 scaling included"]
        for i, j in interactions.pairs14:
            lj = f"{_number(0.5 * (s[i] + s[j]))}  {_number(LJ_14_SCALE * np.sqrt(e[i] * e[j]))}"
            if pair_function == 1:
                lines.append(f"  {i + 1}  {j + 1}  1  {lj}")
            else:
                lines.append(f"  {i + 1}  {j + 1}  2  {_number(COULOMB_14_SCALE)}  {_number(q[i])}  {_number(q[j])}  {lj}")
    if len(interactions.angles):
        lines += ["", "[ angles ]", "; ai  aj  ak  funct  theta0(deg)  k(kJ/mol/rad^2)"]
        for (i, j, k), theta0, force_constant in zip(interactions.angles, parameters.angle_theta0, parameters.angle_k):
            lines.append(f"  {i + 1}  {j + 1}  {k + 1}  1  {_number(np.degrees(theta0))}  {_number(force_constant)}")
    for title, quadruples, signed_k, funct in (
        ("propers (function 9, one line per periodicity)", interactions.propers, parameters.proper_k, 9),
        ("impropers, centre third (function 4, one line per periodicity)", interactions.impropers,
         parameters.improper_k, 4),
    ):
        if not len(quadruples):
            continue
        lines += ["", "[ dihedrals ]", f"; {title}", "; ai  aj  ak  al  funct  phase(deg)  k(kJ/mol)  n"]
        for row, periodicity, phase, k in Parameters.torsion_terms(signed_k):
            a, b, c, d = (int(x) + 1 for x in quadruples[row])
            lines.append(f"  {a}  {b}  {c}  {d}  {funct}  {_number(np.degrees(phase))}  {_number(k)}  {periodicity}")
    return lines


def _gromacs_top(molecule, parameters: Parameters, names, residue_name: str) -> str:
    type_of_atom, atomtype_lines = _gromacs_atomtypes(molecule, parameters)
    lines = [
        f"; GROMACS topology of {molecule.name} written by grappa_like (self-contained: no include lines)",
        f"; SMILES: {molecule.smiles}",
        "",
        "[ defaults ]",
        "; nbfunc  comb-rule  gen-pairs  fudgeLJ  fudgeQQ",
        f"  1        2          yes        {_number(LJ_14_SCALE)}      {_number(COULOMB_14_SCALE)}",
        "",
    ] + atomtype_lines
    molecule_type = re.sub(r"[^A-Za-z0-9_+-]", "_", molecule.name)[:40] or residue_name
    lines += [""] + _gromacs_moleculetype(molecule, parameters, names, type_of_atom, molecule_type, residue_name,
                                          pair_function=1)
    lines += ["", "[ system ]", f"  {molecule.name}", "", "[ molecules ]", "; name  count",
              f"  {molecule_type}  1", ""]
    return "\n".join(lines)


def _gromacs_gro(molecule, names, residue_name: str) -> str:
    positions = _positions_nm(molecule)
    lines = [f"{molecule.name} (grappa_like)", f"{len(names):5d}"]
    for index, (name, xyz) in enumerate(zip(names, positions)):
        lines.append(f"{1:5d}{residue_name[:5]:<5s}{name[-5:]:>5s}{(index + 1) % 100000:5d}"
                     f"{xyz[0]:8.3f}{xyz[1]:8.3f}{xyz[2]:8.3f}")
    extent = float(np.ptp(positions, axis=0).max()) if len(positions) else 0.0
    edge = extent + 2 * GRO_BOX_PADDING_NM
    lines.append(f"{edge:10.5f}{edge:10.5f}{edge:10.5f}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# Amber
# ------------------------------------------------------------------------------------------------

def _import_parmed():
    try:
        import parmed
        import parmed.amber  # noqa: F401
        import parmed.openmm  # noqa: F401
    except ImportError:
        raise errors.MissingDependencyError(
            "the Amber export needs ParmEd: pip install parmed (or pip install \"grappa_like[dev]\")"
        ) from None
    return parmed


def to_amber(molecule, parameters: Parameters, path_prefix, residue_name: str = DEFAULT_RESIDUE_NAME) -> list[str]:
    """Write ``<prefix>.prmtop`` and ``<prefix>.inpcrd`` (Å) via ParmEd (SCEE 1.2, SCNB 2.0); return their paths."""
    _check(molecule, parameters)
    parmed = _import_parmed()
    prefix = _strip_extension(path_prefix, _AMBER_EXTENSIONS)
    prmtop_path, inpcrd_path = prefix + ".prmtop", prefix + ".inpcrd"

    system = to_openmm_system(parameters, molecule.atomic_numbers)
    positions = np.asarray(molecule.conformer_positions(), dtype=np.float64)  # Å
    structure = parmed.openmm.load_topology(openmm_topology(molecule, residue_name), system, xyz=positions)
    structure.title = molecule.name[:80]
    # Amber's own convention: every dihedral type says SCEE 1.2 / SCNB 2.0, and a dihedral's
    # "ignore end" flag says whether it carries its 1-4 pair. AmberParm checks the types against
    # our 1-4 exceptions and copies a type only where they disagree.
    for dihedral_type in structure.dihedral_types:
        dihedral_type.scee, dihedral_type.scnb = SCEE, SCNB
    # AmberParm directly: Structure.save would fall back to a CHAMBER file if Amber cannot express us.
    parm = parmed.amber.AmberParm.from_structure(structure)
    _check_amber_14(parm, parameters)
    # ParmEd stamps the current time into %VERSION; a fixed stamp keeps the output byte-identical
    parm.version = "%VERSION  VERSION_STAMP = V0001.000  DATE = 01/01/00  00:00:00"
    parm.set_version = lambda: None
    atomic_write(prmtop_path, lambda temporary: parm.write_parm(temporary))

    def write_inpcrd(temporary):
        restart = parmed.amber.Rst7(natom=len(positions), title=molecule.name[:80])
        restart.coordinates = positions
        restart.write(temporary)
    atomic_write(inpcrd_path, write_inpcrd)
    return [prmtop_path, inpcrd_path]


def _check_amber_14(parm, parameters: Parameters) -> None:
    """Every 1-4 pair carried by exactly one dihedral, with SCEE 1.2 / SCNB 2.0 where the term is not zero."""
    q, e = parameters.charges, parameters.epsilon
    carried = []
    for dihedral in parm.dihedrals:
        if dihedral.ignore_end:
            continue
        i, j = sorted((dihedral.atom1.idx, dihedral.atom4.idx))
        # ParmEd writes 1e10 (i.e. off) where the Coulomb or LJ part of a pair is zero anyway.
        bad_scee = q[i] * q[j] != 0 and abs(dihedral.type.scee - SCEE) > 1e-6
        bad_scnb = e[i] * e[j] != 0 and abs(dihedral.type.scnb - SCNB) > 1e-6
        if bad_scee or bad_scnb:
            raise errors.GrappaLikeError(
                f"Amber export: 1-4 pair {(i, j)} got SCEE {dihedral.type.scee} / SCNB {dihedral.type.scnb}")
        carried.append((i, j))
    pairs = [tuple(int(a) for a in pair) for pair in parameters.interactions.pairs14]
    # A pair with no charge product and no LJ is an exclusion for ParmEd: it may go uncarried.
    required = sorted(p for p in pairs if q[p[0]] * q[p[1]] != 0 or e[p[0]] * e[p[1]] != 0)
    if len(set(carried)) != len(carried) or not set(required) <= set(carried) <= set(pairs):
        raise errors.GrappaLikeError(
            f"Amber export: {len(carried)} dihedrals carry 1-4 pairs ({len(set(carried))} distinct) "
            f"but the molecule has {len(pairs)} 1-4 pairs"
        )


# ------------------------------------------------------------------------------------------------
# Amber ligand for tleap (mol2 + frcmod)
# ------------------------------------------------------------------------------------------------

AMBER_TYPE_LETTERS = "zy"   # first characters of no atom type in AmberTools' dat/leap (ff14SB, ff19SB, GAFF, ...)
_AMBER_TYPE_SECOND = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KJ_PER_KCAL = 4.184
_MOL2_BOND_ORDERS = {1.0: "1", 2.0: "2", 3.0: "3", 1.5: "ar"}


def amber_atom_types(molecule, type_letters: str = AMBER_TYPE_LETTERS) -> list[str]:
    """Two-character Amber atom types, one per atom: a letter of ``type_letters`` + one of 62 characters."""
    capacity = len(type_letters) * len(_AMBER_TYPE_SECOND)
    if molecule.n_atoms > capacity:
        raise errors.GrappaLikeError(
            f"{molecule.name}: {molecule.n_atoms} atoms need one Amber atom type each, but type_letters="
            f"{type_letters!r} gives {capacity}; pass more letters (e.g. 'zyxw')")
    return [type_letters[i // len(_AMBER_TYPE_SECOND)] + _AMBER_TYPE_SECOND[i % len(_AMBER_TYPE_SECOND)]
            for i in range(molecule.n_atoms)]


def to_amber_ligand(molecule, parameters: Parameters, path_prefix, residue_name: str = DEFAULT_RESIDUE_NAME,
                    type_letters: str = AMBER_TYPE_LETTERS) -> list[str]:
    """Write ``<prefix>.mol2`` (Å, charges in e) and ``<prefix>.frcmod`` (kcal/mol, Å, degrees) for tleap; return their paths.

    One two-character atom type per atom (tleap reads no longer ones), starting with a letter of
    ``type_letters``: ligands loaded in the same tleap session need different letters. tleap builds
    ONE improper per atom with three neighbours, our energy has three: run
    :func:`complete_amber_impropers` on the prmtop that tleap saves.
    """
    _check(molecule, parameters)
    prefix = _strip_extension(path_prefix, (".mol2", ".frcmod"))
    mol2_path, frcmod_path = prefix + ".mol2", prefix + ".frcmod"
    types = amber_atom_types(molecule, type_letters)
    atomic_write_text(mol2_path, _mol2(molecule, parameters, types, residue_name))
    atomic_write_text(frcmod_path, _frcmod(molecule, parameters, types))
    return [mol2_path, frcmod_path]


def _mol2(molecule, parameters: Parameters, types, residue_name: str) -> str:
    positions = np.asarray(molecule.conformer_positions(), dtype=np.float64)
    names = atom_names(molecule)
    bonds = list(molecule.rdkit_mol.GetBonds())
    lines = ["@<TRIPOS>MOLECULE", residue_name, f"{molecule.n_atoms} {len(bonds)} 1 0 0", "SMALL", "USER_CHARGES",
             f"grappa_like parameters of {molecule.name}", "@<TRIPOS>ATOM"]
    for index, (name, atom_type, xyz, charge) in enumerate(zip(names, types, positions, parameters.charges)):
        lines.append(f"{index + 1:7d} {name:<8s} {xyz[0]:12.6f} {xyz[1]:12.6f} {xyz[2]:12.6f} {atom_type:<4s} "
                     f"1 {residue_name} {_number(charge)}")
    lines.append("@<TRIPOS>BOND")
    for index, bond in enumerate(bonds):
        order = _MOL2_BOND_ORDERS.get(bond.GetBondTypeAsDouble(), "1")
        lines.append(f"{index + 1:6d} {bond.GetBeginAtomIdx() + 1:5d} {bond.GetEndAtomIdx() + 1:5d} {order}")
    lines += ["@<TRIPOS>SUBSTRUCTURE", f"     1 {residue_name}  1 TEMP  0 ****  ****    0 ROOT", ""]
    return "\n".join(lines)


def _frcmod(molecule, parameters: Parameters, types) -> str:
    """frcmod text: Amber's E = K (r - r0)² (no 1/2), kcal/mol, Å, degrees; R* = 2^(1/6) σ / 2."""
    interactions = parameters.interactions
    joined = lambda indices: "-".join(types[int(i)] for i in indices)  # noqa: E731
    lines = [f"grappa_like {parameter_tag(molecule, parameters)} {molecule.name}: after tleap, run "
             "grappa_like.export.complete_amber_impropers on the prmtop", "MASS"]
    lines += [f"{atom_type} {_number(mass)}" for atom_type, mass in zip(types, _masses(molecule))]
    lines += ["", "BOND"]
    for pair, r0, k in zip(interactions.bonds, parameters.bond_r0, parameters.bond_k):
        lines.append(f"{joined(pair)}  {_number(k / 2 / _KJ_PER_KCAL / 100)}  {_number(10 * r0)}")
    lines += ["", "ANGL"]
    for triple, theta0, k in zip(interactions.angles, parameters.angle_theta0, parameters.angle_k):
        lines.append(f"{joined(triple)}  {_number(k / 2 / _KJ_PER_KCAL)}  {_number(np.degrees(theta0))}")
    lines += ["", "DIHE"]
    with_term = {tuple(int(a) for a in quadruple) for quadruple in interactions.propers}
    terms = defaultdict(list)
    for row, periodicity, phase, k in Parameters.torsion_terms(parameters.proper_k):
        terms[row].append((periodicity, phase, k))
    for row, quadruple in enumerate(interactions.propers):
        for number, (periodicity, phase, k) in enumerate(terms[row]):
            last = number == len(terms[row]) - 1   # tleap: negative PN = more terms follow
            lines.append(f"{joined(quadruple)}   1  {_number(k / _KJ_PER_KCAL)}  {_number(np.degrees(phase))}  "
                         f"{periodicity if last else -periodicity}.")
    for quadruple in _chains(molecule):   # around a linear atom: a zero term, so tleap keeps the 1-4 pair
        if quadruple not in with_term:
            lines.append(f"{joined(quadruple)}   1  0.0  0.0  1.")
    lines += ["", "IMPROPER"]   # every improper (tleap stacks them on one per centre; see complete_amber_impropers)
    for row, periodicity, phase, k in Parameters.torsion_terms(parameters.improper_k):
        lines.append(f"{joined(interactions.impropers[row])}        {_number(k / _KJ_PER_KCAL)}  "
                     f"{_number(np.degrees(phase))}  {periodicity}.")
    lines += ["", "NONBON"]
    for atom_type, sigma, epsilon in zip(types, parameters.sigma, parameters.epsilon):
        lines.append(f"  {atom_type}  {_number(10 * sigma * 2 ** (1 / 6) / 2)}  {_number(epsilon / _KJ_PER_KCAL)}")
    return "\n".join(lines + ["", ""])


def _read_frcmod_impropers(frcmod_path) -> tuple[set[str], list[tuple[tuple[str, ...], float, float, int]]]:
    """(atom types of the MASS section, improper lines as (types, k kcal/mol, phase deg, periodicity))."""
    types, impropers, section = set(), [], None
    with open(frcmod_path) as handle:
        lines = handle.read().splitlines()[1:]
    for line in lines:
        if not line.strip():
            section = None
        elif section is None:
            section = line.strip()[:4].upper()
        elif section == "MASS":
            types.add(line[:2].strip())
        elif section == "IMPR":
            fields = line[11:].split()
            impropers.append((tuple(line[k:k + 2].strip() for k in (0, 3, 6, 9)), float(fields[0]),
                              float(fields[1]), int(abs(float(fields[2])))))
    return types, impropers


def complete_amber_impropers(prmtop_path, frcmod_path, output_path=None) -> str:
    """Give every residue typed by ``frcmod_path`` (a :func:`to_amber_ligand` file) exactly the frcmod's impropers.

    tleap builds one improper per atom with three neighbours and stacks every matching IMPROPER line
    on it; this replaces those by the frcmod's impropers in their own atom order (three per centre).
    Writes ``output_path`` (default: over ``prmtop_path``) and returns it.
    """
    parmed = _import_parmed()
    output_path = os.fspath(output_path or prmtop_path)
    ligand_types, impropers = _read_frcmod_impropers(frcmod_path)
    if not ligand_types:
        raise errors.GrappaLikeError(f"{frcmod_path}: no MASS section, not a grappa_like ligand frcmod")
    parm = parmed.load_file(os.fspath(prmtop_path))
    completed = 0
    for residue in parm.residues:
        by_type = {atom.type: atom for atom in residue.atoms}
        if not ligand_types & set(by_type):
            continue
        if set(by_type) != ligand_types or len(by_type) != len(residue.atoms):
            raise errors.GrappaLikeError(
                f"{prmtop_path}: residue {residue.name} {residue.number} has atom types {sorted(by_type)}, "
                f"not the {len(ligand_types)} distinct types of {frcmod_path}")
        members = set(residue.atoms)
        for dihedral in [d for d in parm.dihedrals if d.improper and {d.atom1, d.atom2, d.atom3, d.atom4} <= members]:
            dihedral.delete()
            parm.dihedrals.remove(dihedral)
        for quadruple, k, phase, periodicity in impropers:
            dihedral_type = parmed.DihedralType(k, periodicity, phase, scee=SCEE, scnb=SCNB)
            parm.dihedral_types.append(dihedral_type)
            atoms = [by_type[atom_type] for atom_type in quadruple]
            parm.dihedrals.append(parmed.Dihedral(*atoms, improper=True, ignore_end=True, type=dihedral_type))
        completed += 1
    if not completed:
        raise errors.GrappaLikeError(f"{prmtop_path}: no residue has the atom types of {frcmod_path}")
    parm.dihedral_types.claim()
    parm.remake_parm()
    atomic_write(output_path, lambda temporary: parm.write_parm(temporary))
    return output_path


# ------------------------------------------------------------------------------------------------
# OpenMM ffxml
# ------------------------------------------------------------------------------------------------

_SCRIPT_TEMPLATE = '''
# grappa_like {tag}: ForceField makes one improper per atom with three neighbours; this molecule
# has three. The first of each is an <Improper> entry above, this adds the other two to every
# residue typed by this template. (Runs inside ForceField.createSystem: sys, data, topology.)
import openmm as _gl_mm
_gl_terms = {terms!r}
_gl_torsions = [_f for _f in sys.getForces() if type(_f) is _gl_mm.PeriodicTorsionForce]
if _gl_torsions:
    _gl_force = _gl_torsions[0]
else:
    _gl_force = _gl_mm.PeriodicTorsionForce()
    sys.addForce(_gl_force)
for _gl_residue in topology.residues():
    _gl_index = dict((data.atomType.get(_gl_atom), _gl_atom.index) for _gl_atom in _gl_residue.atoms())
    if {first_type!r} not in _gl_index:
        continue
    for _gl_a, _gl_b, _gl_c, _gl_d, _gl_n, _gl_phase, _gl_k in _gl_terms:
        _gl_force.addTorsion(_gl_index[_gl_a], _gl_index[_gl_b], _gl_index[_gl_c], _gl_index[_gl_d],
                             _gl_n, _gl_phase, _gl_k)
'''


def to_ffxml(molecule, parameters: Parameters, path, residue_name: str | None = None) -> str:
    """Write an OpenMM ForceField XML (nm, kJ/mol, rad, e) with one residue template for ``molecule``; return the path."""
    _check(molecule, parameters)
    path = os.fspath(path)
    atomic_write_text(path, ffxml_string(molecule, parameters, residue_name))
    return path


def ffxml_string(molecule, parameters: Parameters, residue_name: str | None = None) -> str:
    """The ForceField XML text that :func:`to_ffxml` writes (see the module docstring for its layout)."""
    _check(molecule, parameters)
    interactions = parameters.interactions
    tag = parameter_tag(molecule, parameters)
    names = atom_names(molecule)
    types = [f"{tag}-{name}" for name in names]
    template_name = residue_name or f"GL-{tag}"
    masses = _masses(molecule)
    symbols = [atom.GetSymbol() for atom in molecule.rdkit_mol.GetAtoms()]

    def classes(indices) -> str:
        return " ".join(f"class{n + 1}={quoteattr(types[int(i)])}" for n, i in enumerate(indices))

    def torsion_terms(row_k) -> str:
        terms = []
        for n, kappa in enumerate(row_k, start=1):
            phase = 0.0 if kappa >= 0 else np.pi
            terms.append(f'periodicity{n}="{n}" phase{n}="{_number(phase)}" k{n}="{_number(abs(kappa))}"')
        return " ".join(terms)

    out = ["<ForceField>",
           f"  <!-- grappa_like parameters of {_xml_comment(molecule.name)}; SMILES {_xml_comment(molecule.smiles)} -->",
           "  <AtomTypes>"]
    for type_name, symbol, mass in zip(types, symbols, masses):
        out.append(f'    <Type name={quoteattr(type_name)} class={quoteattr(type_name)} '
                   f'element="{symbol}" mass="{_number(mass)}"/>')
    out += ["  </AtomTypes>", "  <Residues>", f"    <Residue name={quoteattr(template_name)}>"]
    for name, type_name, charge in zip(names, types, parameters.charges):
        out.append(f'      <Atom name={quoteattr(name)} type={quoteattr(type_name)} charge="{_number(charge)}"/>')
    for i, j in interactions.bonds:
        out.append(f'      <Bond atomName1={quoteattr(names[i])} atomName2={quoteattr(names[j])}/>')
    out += ["    </Residue>", "  </Residues>", "  <HarmonicBondForce>"]
    for pair, r0, k in zip(interactions.bonds, parameters.bond_r0, parameters.bond_k):
        out.append(f'    <Bond {classes(pair)} length="{_number(r0)}" k="{_number(k)}"/>')
    out += ["  </HarmonicBondForce>", "  <HarmonicAngleForce>"]
    for triple, theta0, k in zip(interactions.angles, parameters.angle_theta0, parameters.angle_k):
        out.append(f'    <Angle {classes(triple)} angle="{_number(theta0)}" k="{_number(k)}"/>')
    out += ["  </HarmonicAngleForce>", '  <PeriodicTorsionForce ordering="amber">']
    with_term = set()
    for quadruple, row_k in zip(interactions.propers, parameters.proper_k):
        out.append(f"    <Proper {classes(quadruple)} {torsion_terms(row_k)}/>")
        with_term.add(tuple(int(a) for a in quadruple))
    for quadruple in _chains(molecule):
        if quadruple not in with_term:  # around a linear atom: explicit zero, blocks wildcards
            out.append(f'    <Proper {classes(quadruple)} periodicity1="1" phase1="0.0" k1="0.0"/>')
    script_terms, seen_centres = [], set()
    for quadruple, row_k in zip(interactions.impropers, parameters.improper_k):
        a, b, c, d = (int(x) for x in quadruple)
        if c not in seen_centres:
            seen_centres.add(c)
            # ordering="amber", all four types distinct: ForceField adds (class2, class3, class1, class4).
            out.append(f"    <Improper {classes((c, a, b, d))} {torsion_terms(row_k)}/>")
        else:
            for n, kappa in enumerate(row_k, start=1):
                if kappa != 0:
                    script_terms.append((types[a], types[b], types[c], types[d], n,
                                         0.0 if kappa >= 0 else float(np.pi), abs(float(kappa))))
    out += ["  </PeriodicTorsionForce>",
            f'  <NonbondedForce coulomb14scale="{_number(COULOMB_14_SCALE)}" lj14scale="{_number(LJ_14_SCALE)}">',
            '    <UseAttributeFromResidue name="charge"/>']
    for type_name, sigma, epsilon in zip(types, parameters.sigma, parameters.epsilon):
        out.append(f'    <Atom type={quoteattr(type_name)} sigma="{_number(sigma)}" epsilon="{_number(epsilon)}"/>')
    out.append("  </NonbondedForce>")
    if script_terms:
        script = _SCRIPT_TEMPLATE.format(tag=tag, terms=script_terms, first_type=types[0])
        out += ["  <Script>", _xml_text(script), "  </Script>"]
    out.append("</ForceField>")
    return "\n".join(out) + "\n"


def _chains(molecule) -> list[tuple[int, int, int, int]]:
    """Every bonded chain i-j-k-l (i < l, i != l), as ForceField enumerates its propers."""
    mol = molecule.rdkit_mol
    neighbours = [[n.GetIdx() for n in atom.GetNeighbors()] for atom in mol.GetAtoms()]
    chains = set()
    for bond in mol.GetBonds():
        j, k = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        for i in neighbours[j]:
            for l in neighbours[k]:
                if i in (j, k) or l in (j, k) or i == l:
                    continue
                chains.add((i, j, k, l) if i < l else (l, k, j, i))
    return sorted(chains)


def _xml_comment(text: str) -> str:
    return str(text).replace("--", "- -")


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
