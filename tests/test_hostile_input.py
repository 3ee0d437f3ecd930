"""Hostile input: every bad record fails alone, with its exact error class and one line naming it.

All inputs are generated here (no committed files). Each case asserts the exact class, never a
parent class, so a raw RDKit / numpy / OS exception or a wrongly typed error fails the test.
Batch tests check that good neighbours of bad records are written and ``failures.tsv`` lists
exactly the bad ones. See docs/reliability.md.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem

import grappa_like
from grappa_like import errors, model_file, molecule
from grappa_like.cli import main

Unparsable = errors.UnparsableInputError
Unsupported = errors.UnsupportedElementError
Radical = errors.RadicalError
MissingH = errors.MissingHydrogensError
Mismatch = errors.TemplateMismatchError
Empty = errors.EmptyMoleculeError
TooLarge = errors.MoleculeTooLargeError
Disconnected = errors.DisconnectedMoleculeError
ChargeMismatch = errors.ChargeMismatchError


def assert_clean(error: Exception, expected_class: type, record: str | None = None) -> None:
    """Exactly ``expected_class``; a one-line message that names the record."""
    assert type(error) is expected_class, f"{type(error).__name__}: {error}"
    message = str(error)
    assert message and "\n" not in message and len(message) < 400, message
    if record is not None:
        assert record in message, message


def embedded(smiles: str, seed: int = 1, name: str | None = None, hydrogens: bool = True) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    if not hydrogens:
        mol = Chem.RemoveHs(mol)
    if name is not None:
        mol.SetProp("_Name", name)
    return mol


def sdf_record(smiles: str, name: str, hydrogens: bool = True) -> str:
    return Chem.MolToMolBlock(embedded(smiles, name=name, hydrogens=hydrogens)) + "$$$$\n"


def garbage(n_bytes: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes()


# ============================================================================ SMILES

SMILES_CASES = [
    # unparsable: syntax, valence, aromaticity, characters, map numbers
    ("", Unparsable),
    (" ", Unparsable),
    ("\t\n", Unparsable),
    ("C C", Unparsable),                       # whitespace inside: RDKit would read "C" and a name
    ("CCO ethanol", Unparsable),
    ("Xx", Unparsable),
    ("[Xx]", Unparsable),
    ("[Qq]C", Unparsable),
    ("C1CC", Unparsable),                      # unclosed ring
    ("C((C)", Unparsable),
    ("C)C", Unparsable),
    ("[13C", Unparsable),
    ("C%", Unparsable),
    (".", Unparsable),
    ("C..C", Unparsable),
    ("c1ccccc1.", Unparsable),
    ("c1cccc1", Unparsable),                   # cannot kekulize
    ("c1ccncc", Unparsable),
    ("C(C)(C)(C)(C)C", Unparsable),            # pentavalent carbon
    ("[CH5]", Unparsable),
    ("FC(F)(F)(F)F", Unparsable),
    ("O(C)(C)C", Unparsable),                  # trivalent neutral oxygen
    ("ClC(Cl)(Cl)(Cl)Cl", Unparsable),
    ("[NH4]", Unparsable),                     # neutral tetravalent N
    ("C[N](C)(C)C", Unparsable),
    ("café", Unparsable),                      # not ASCII
    ("CC\x00O", Unparsable),                   # control character
    ("not a smiles", Unparsable),
    ("[CH3:1][OH:1]", Unparsable),             # duplicate atom map numbers
    ("[CH3:1][OH:3]", Unparsable),             # map numbers with a gap
    # unsupported elements (the message lists the supported ones)
    ("[Na+]", Unsupported),
    ("[K+]", Unsupported),
    ("[Li+]", Unsupported),
    ("[Mg+2]", Unsupported),
    ("[Ca+2]", Unsupported),
    ("[Fe+2]", Unsupported),
    ("[Zn+2]", Unsupported),
    ("[Pt]", Unsupported),
    ("[U]", Unsupported),
    ("[He]", Unsupported),
    ("[Xe]", Unsupported),
    ("C[Si](C)(C)C", Unsupported),
    ("F[Si-2](F)(F)(F)(F)F", Unsupported),
    ("B(O)(O)O", Unsupported),
    ("C[Se]C", Unsupported),
    ("C[As](C)C", Unsupported),
    ("*C", Unsupported),                       # dummy atom
    ("CC(=O)[O-].[Na+]", Unsupported),         # salt: the element is reported first
    # radicals / open shells
    ("[CH3]", Radical),
    ("[O]", Radical),
    ("[N]=O", Radical),                        # nitric oxide
    ("O=[N+][O-]", Radical),                   # nitrogen dioxide
    ("[CH2]C", Radical),
    ("CC[O]", Radical),
    ("[OH]", Radical),
    ("[H]", Radical),
    ("[C]", Radical),
    ("C[C](C)C", Radical),
    ("[Cl]", Radical),
    ("[O][O]", Radical),                       # triplet O2
    ("[C-]", Radical),
    # several fragments
    ("CCO.O", Disconnected),
    ("C[NH3+].[Cl-]", Disconnected),
    ("[NH4+].[Cl-]", Disconnected),
    ("c1ccccc1.c1ccccc1", Disconnected),
    ("CC(=O)[O-].[NH4+]", Disconnected),
    # size limit (default 1000 atoms)
    ("C" * 400, TooLarge),                     # 1202 atoms with hydrogens
    ("C" * 5000, TooLarge),                    # rejected before hydrogens are added
    ("c1ccccc1" * 200, TooLarge),              # poly-phenylene, 1200 heavy atoms
]


@pytest.mark.parametrize(("smiles", "error_class"), SMILES_CASES, ids=[repr(s[:20]) for s, _ in SMILES_CASES])
def test_bad_smiles(smiles, error_class):
    with pytest.raises(errors.GrappaLikeError) as info:
        molecule.from_smiles(smiles, name="record-42")
    assert_clean(info.value, error_class, "record-42")
    if error_class is Unsupported:
        assert "supported: H C N O F P S Cl Br I" in str(info.value)


def test_smiles_name_defaults_to_a_short_form_of_the_smiles():
    with pytest.raises(TooLarge) as info:
        molecule.from_smiles("C" * 2000)
    assert len(str(info.value)) < 200  # the 2000-character SMILES is not echoed whole


@pytest.mark.parametrize("smiles", ["[NH4+]", "[Cl-]", "O", "CC#N", "C=[N+]=[N-]", "CCO\n", "  CCO  ", "[H][H]",
                                    "C[N+](=O)[O-]", "OP(=O)(O)O", "CS(=O)(=O)N"])
def test_acceptable_odd_smiles(smiles):
    assert molecule.from_smiles(smiles).n_atoms > 0


@pytest.mark.parametrize(("smiles", "max_atoms", "error_class"),
                         [("CCO", 8, TooLarge), ("CCO", 9, None), ("C" * 1200, 5000, None)])
def test_max_atoms_is_overridable(smiles, max_atoms, error_class):
    if error_class is None:
        assert molecule.from_smiles(smiles, max_atoms=max_atoms).n_atoms <= max_atoms
    else:
        with pytest.raises(error_class, match="limit of 8"):
            molecule.from_smiles(smiles, max_atoms=max_atoms)


# ============================================================================ files


def _write(path, data) -> str:
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode) as handle:
        handle.write(data)
    return str(path)


def _pentavalent_carbon_block() -> str:
    rw = Chem.RWMol()
    carbon = rw.AddAtom(Chem.Atom(6))
    for _ in range(5):
        rw.AddBond(carbon, rw.AddAtom(Chem.Atom(1)), Chem.BondType.SINGLE)
    mol = rw.GetMol()
    mol.UpdatePropertyCache(strict=False)
    mol.SetProp("_Name", "pentavalent")
    return Chem.MolToMolBlock(mol, kekulize=False) + "$$$$\n"


def _with_charge(block: str, atom: int, charge: int) -> str:
    return block.replace("M  END", f"M  CHG  1 {atom:3d} {charge:3d}\nM  END", 1)


def _pdb(mol: Chem.Mol) -> str:
    return Chem.MolToPDBBlock(mol)


ETHANOL_MOL2 = """@<TRIPOS>MOLECULE
ethanol
 9 8 1 0 0
SMALL
NO_CHARGES

@<TRIPOS>ATOM
      1 C1          0.0000    0.0000    0.0000 C.3       1 MOL       0.0000
      2 C2          1.5200    0.0000    0.0000 C.3       1 MOL       0.0000
      3 O1          2.0000    1.3400    0.0000 O.3       1 MOL       0.0000
      4 H1         -0.3600   -1.0300    0.0000 H         1 MOL       0.0000
      5 H2         -0.3600    0.5100    0.8900 H         1 MOL       0.0000
      6 H3         -0.3600    0.5100   -0.8900 H         1 MOL       0.0000
      7 H4          1.8900   -0.5100    0.8900 H         1 MOL       0.0000
      8 H5          1.8900   -0.5100   -0.8900 H         1 MOL       0.0000
      9 H6          2.9600    1.3400    0.0000 H         1 MOL       0.0000
@<TRIPOS>BOND
     1     1     2    1
     2     2     3    1
     3     1     4    1
     4     1     5    1
     5     1     6    1
     6     2     7    1
     7     2     8    1
     8     3     9    1
"""

# name -> (file name, content builder, template SMILES for PDB or None, max_atoms, expected class of every record)
FILE_CASES = {
    "garbage-sdf": ("junk.sdf", lambda: garbage(3000, 1), None, None, Unparsable),
    "garbage-mol": ("junk.mol", lambda: garbage(500, 2), None, None, Unparsable),
    "garbage-sdf-gz": ("junk.sdf.gz", lambda: garbage(800, 3), None, None, Unparsable),
    "gzipped-garbage-sdf": ("junk2.sdf.gz", lambda: gzip.compress(garbage(800, 4)), None, None, Unparsable),
    "garbage-smi": ("junk.smi", lambda: garbage(3000, 5), None, None, Unparsable),
    "garbage-mol2": ("junk.mol2", lambda: garbage(2000, 6), None, None, Unparsable),
    "garbage-pdb": ("junk.pdb", lambda: garbage(2000, 7), "CCO", None, Unparsable),
    "text-mol2": ("text.mol2", lambda: "this is not\na mol2 file\n", None, None, Unparsable),
    "truncated-sdf": ("cut.sdf", lambda: sdf_record("CC(=O)Oc1ccccc1C(=O)O", "aspirin")[:600], None, None, Unparsable),
    "truncated-sdf-header": ("cut2.sdf", lambda: "aspirin\n  RDKit\n", None, None, Unparsable),
    "truncated-mol2": ("cut.mol2", lambda: ETHANOL_MOL2[:400], None, None, Unparsable),
    "mol2-unknown-atom-type": ("xx.mol2", lambda: ETHANOL_MOL2.replace("O.3 ", "Xx  "), None, None, Unparsable),
    "sdf-bad-atom-symbol": ("qq.sdf", lambda: sdf_record("CCO", "qq").replace(" O ", " Qq", 1), None, None,
                            Unparsable),
    "sdf-Xx-element": ("xx.sdf", lambda: sdf_record("CCO", "xx").replace(" O ", " Xx", 1), None, None, Unparsable),
    "sdf-pentavalent-carbon": ("c5.sdf", _pentavalent_carbon_block, None, None, Unparsable),
    "sdf-charge-on-saturated-carbon": ("chg.sdf", lambda: _with_charge(sdf_record("CCO", "chg"), 1, 1), None, None,
                                       Unparsable),
    "sdf-anionic-ether-oxygen": ("chg2.sdf", lambda: _with_charge(sdf_record("COC", "chg2"), 2, -1), None, None,
                                 Unparsable),
    "sdf-charge-plus-five": ("chg5.sdf", lambda: _with_charge(sdf_record("CCO", "chg5"), 1, 5), None, None,
                             Unparsable),
    "sdf-empty-record": ("zero.sdf", lambda: "zero\n  RDKit          3D\n\n  0  0  0  0  0  0  0  0  0  0999 V2000\n"
                                            "M  END\n$$$$\n", None, None, Empty),
    "sdf-empty-file": ("nothing.sdf", lambda: "", None, None, Empty),
    "sdf-blank-lines": ("blank.sdf", lambda: "\n\n   \n", None, None, Empty),
    "smi-empty-file": ("nothing.smi", lambda: "", None, None, Empty),
    "smi-header-and-comments-only": ("header.smi", lambda: "smiles name\n# nothing here\n", None, None, Empty),
    "mol2-empty-file": ("nothing.mol2", lambda: "", None, None, Empty),
    "sdf-sodium": ("na.sdf", lambda: sdf_record("[Na+]", "sodium"), None, None, Unsupported),
    "sdf-potassium": ("k.sdf", lambda: sdf_record("[K+]", "potassium"), None, None, Unsupported),
    "sdf-silicon": ("si.sdf", lambda: sdf_record("C[Si](C)(C)C", "silane"), None, None, Unsupported),
    "sdf-boron": ("b.sdf", lambda: sdf_record("OB(O)c1ccccc1", "boronic"), None, None, Unsupported),
    "sdf-selenium": ("se.sdf", lambda: sdf_record("C[Se]C", "selenide"), None, None, Unsupported),
    "sdf-radical": ("rad.sdf", lambda: sdf_record("[CH3]", "methyl"), None, None, Radical),
    "sdf-radical-no-h": ("rad2.sdf", lambda: sdf_record("C[CH2]", "ethyl", hydrogens=False), None, None, Radical),
    "sdf-salt": ("salt.sdf", lambda: sdf_record("CC(=O)[O-].[NH4+]", "salt"), None, None, Disconnected),
    "sdf-too-large": ("big.sdf", lambda: sdf_record("CC(=O)Oc1ccccc1C(=O)O", "aspirin"), None, 20, TooLarge),
    "pdb-without-hydrogens": ("noh.pdb", lambda: _pdb(embedded("CCO", hydrogens=False)), "CCO", None, MissingH),
    "pdb-one-hydrogen-missing": ("someh.pdb", lambda: _pdb(Chem.RWMol(embedded("CCO")).GetMol()).replace(
        "HETATM    9", "REMARK    9"), "CCO", None, MissingH),
    "pdb-other-connectivity": ("ether.pdb", lambda: _pdb(embedded("CCO")), "COC", None, Mismatch),
    "pdb-other-molecule": ("amine.pdb", lambda: _pdb(embedded("CCO")), "CCN", None, Mismatch),
    "pdb-larger-template": ("small.pdb", lambda: _pdb(embedded("CCO")), "CCCO", None, Mismatch),
    "pdb-bad-template": ("tpl.pdb", lambda: _pdb(embedded("CCO")), "C1CC", None, Unparsable),
    "pdb-empty-template": ("tpl2.pdb", lambda: _pdb(embedded("CCO")), "", None, Unparsable),
    "pdb-radical-template": ("tpl3.pdb", lambda: _pdb(embedded("CC")), "[CH2][CH2]", None, Mismatch),
    "pdb-empty-file": ("empty.pdb", lambda: "", "CCO", None, Unparsable),
    "pdb-only-remarks": ("remarks.pdb", lambda: "REMARK nothing\nEND\n", "CCO", None, Unparsable),
    "unknown-extension": ("mol.xyz", lambda: "3\n\nC 0 0 0\n", None, None, Unparsable),
    "no-extension": ("molecule", lambda: "CCO\n", None, None, Unparsable),
    "csv-extension": ("mols.csv", lambda: "smiles\nCCO\n", None, None, Unparsable),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_bad_file(case, tmp_path):
    file_name, content, template, max_atoms, error_class = FILE_CASES[case]
    path = _write(tmp_path / file_name, content())
    records = list(molecule.read_file(path, smiles=template, max_atoms=max_atoms or molecule.DEFAULT_MAX_ATOMS))
    assert records, case
    for name, result in records:
        assert name
        assert_clean(result, error_class)


def test_pdb_without_smiles(tmp_path):
    path = _write(tmp_path / "ethanol.pdb", _pdb(embedded("CCO")))
    ((name, error),) = list(molecule.read_file(path))
    assert_clean(error, Unparsable, "ethanol.pdb")


@pytest.mark.parametrize("kind", ["missing-file", "missing-folder", "folder", "folder-named-sdf", "folder-named-pdb"])
def test_paths_that_are_not_files(kind, tmp_path):
    paths = {
        "missing-file": tmp_path / "nothing.sdf",
        "missing-folder": tmp_path / "no" / "such" / "file.smi",
        "folder": tmp_path / "folder",
        "folder-named-sdf": tmp_path / "folder.sdf",  # RDKit's SDF reader would spin forever on it
        "folder-named-pdb": tmp_path / "folder.pdb",
    }
    path = paths[kind]
    if kind.startswith("folder"):
        path.mkdir()
    ((_, error),) = list(molecule.read_file(str(path), smiles="CCO"))
    assert_clean(error, Unparsable, str(path))


def test_sdf_with_3d_coordinates_and_no_hydrogens_gets_hydrogens_with_coordinates(tmp_path):
    heavy = embedded("CC(=O)[O-]", name="acetate", hydrogens=False)
    path = _write(tmp_path / "noh.sdf", Chem.MolToMolBlock(heavy))
    ((name, result),) = list(molecule.read_file(path))
    assert isinstance(result, molecule.Molecule) and name == "acetate"
    assert result.n_atoms == 7 and result.total_charge == -1
    np.testing.assert_allclose(result.positions[:4], heavy.GetConformer().GetPositions(), atol=1e-4)
    for atom in result.rdkit_mol.GetAtoms():
        if atom.GetAtomicNum() == 1:
            (neighbour,) = atom.GetNeighbors()
            distance = np.linalg.norm(result.positions[atom.GetIdx()] - result.positions[neighbour.GetIdx()])
            assert 0.9 < distance < 1.2


def test_sdf_whose_charge_lines_add_a_valid_charge_is_read(tmp_path):
    """An ``M  CHG`` line that makes chemical sense (alkoxide) is honoured, not second-guessed."""
    block = _with_charge(sdf_record("CCO", "ethoxide", hydrogens=False), 3, -1)
    ((_, result),) = list(molecule.read_file(_write(tmp_path / "ethoxide.sdf", block)))
    assert result.total_charge == -1 and result.n_atoms == 8


# ============================================================================ OpenMM Topology


def _topology(mol: Chem.Mol, without_element: int | None = None, extra_bonds=()):
    from openmm import app

    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    atoms = []
    for atom in mol.GetAtoms():
        element = None if atom.GetIdx() == without_element else app.Element.getByAtomicNumber(atom.GetAtomicNum())
        atoms.append(topology.addAtom(f"{atom.GetSymbol()}{atom.GetIdx()}", element, residue))
    for bond in mol.GetBonds():
        topology.addBond(atoms[bond.GetBeginAtomIdx()], atoms[bond.GetEndAtomIdx()])
    for i, j in extra_bonds:
        topology.addBond(atoms[i], atoms[j])
    return topology


def _empty_topology():
    from openmm import app

    return app.Topology()


TOPOLOGY_CASES = {
    "other-connectivity": (lambda: _topology(embedded("CCO")), "COC", None, Mismatch),
    "other-elements": (lambda: _topology(embedded("CCO")), "CCN", None, Mismatch),
    "unparsable-template": (lambda: _topology(embedded("CCO")), "C1CC", None, Unparsable),
    "template-none": (lambda: _topology(embedded("CCO")), None, None, Unparsable),
    "template-number": (lambda: _topology(embedded("CCO")), 42, None, Unparsable),
    "not-a-topology": (lambda: "CCO", "CCO", None, Mismatch),
    "no-hydrogens": (lambda: _topology(embedded("CCO", hydrogens=False)), "CCO", None, MissingH),
    "empty-topology": (_empty_topology, "CCO", None, Empty),
    "atom-without-element": (lambda: _topology(embedded("CCO"), without_element=2), "CCO", None, Mismatch),
    "atom-bonded-to-itself": (lambda: _topology(embedded("CCO"), extra_bonds=[(0, 0)]), "CCO", None, Mismatch),
    "positions-wrong-shape": (lambda: _topology(embedded("CCO")), "CCO", np.zeros((4, 3)), Mismatch),
    "positions-not-numbers": (lambda: _topology(embedded("CCO")), "CCO", [["a", "b", "c"]] * 9, Mismatch),
    "salt-template": (lambda: _topology(embedded("CC(=O)[O-].[NH4+]")), "CC(=O)[O-].[NH4+]", None, Disconnected),
}


@pytest.mark.parametrize("case", sorted(TOPOLOGY_CASES))
def test_bad_topology(case):
    build, template, positions, error_class = TOPOLOGY_CASES[case]
    with pytest.raises(errors.GrappaLikeError) as info:
        molecule.from_topology(build(), template, positions=positions, name="ligand-7")
    assert_clean(info.value, error_class, "ligand-7")


def test_topology_with_a_bond_listed_twice_is_accepted():
    mol = embedded("CCO")
    result = molecule.from_topology(_topology(mol, extra_bonds=[(0, 1)]), "CCO")
    assert result.n_atoms == 9 and result.rdkit_mol.GetNumBonds() == 8


# ============================================================================ Python API


@pytest.mark.parametrize(("item", "error_class"), [
    (None, errors.MoleculeInputError),
    (42, errors.MoleculeInputError),
    (3.5, errors.MoleculeInputError),
    (b"CCO", errors.MoleculeInputError),
    (object(), errors.MoleculeInputError),
    ({"smiles": "CCO"}, errors.MoleculeInputError),
])
def test_api_rejects_objects_that_are_not_molecules(item, error_class, random_model):
    results = grappa_like.parameterize([item, "CCO"], model=random_model, progress=False)
    assert len(results) == 2 and results[1].ok
    assert_clean(results[0].error, error_class)


@pytest.mark.parametrize(("smiles", "total_charge", "error_class"), [
    ("CC(=O)[O-]", 0, ChargeMismatch),
    ("[NH4+]", 0, ChargeMismatch),
    ("CCO", 1, ChargeMismatch),
    ("[NH3+]CC(=O)[O-]", -1, ChargeMismatch),
    ("CC(=O)[O-]", -1, None),
    ("[NH3+]CC(=O)[O-]", 0, None),
])
def test_api_checks_a_given_total_charge(smiles, total_charge, error_class, random_model):
    (result,) = grappa_like.parameterize([smiles], model=random_model, progress=False, total_charge=total_charge)
    if error_class is None:
        assert result.ok, result.error
        assert abs(result.parameters.charges.sum() - total_charge) < 1e-6
    else:
        assert_clean(result.error, error_class, smiles)
        assert f"{total_charge:+d}" in str(result.error)


def test_api_mixed_list_keeps_alignment_and_types(random_model):
    inputs = ["CCO", "", "[Na+]", Chem.MolFromSmiles("c1ccccc1"), None, "[CH3]", "C" * 400, "CCO.O", "CC(=O)[O-]"]
    results = grappa_like.parameterize(inputs, model=random_model, progress=False)
    expected = [None, Unparsable, Unsupported, None, errors.MoleculeInputError, Radical, TooLarge, Disconnected, None]
    assert len(results) == len(inputs)
    for result, error_class in zip(results, expected):
        if error_class is None:
            assert result.ok, result.error
        else:
            assert_clean(result.error, error_class)


def test_api_failed_results_are_named_after_their_input(random_model):
    named = Chem.MolFromSmiles("C[Si](C)(C)C")
    named.SetProp("_Name", "tetramethylsilane")
    results = grappa_like.parameterize(["C1CC", named, 42], model=random_model, progress=False)
    assert [r.name for r in results] == ["C1CC", "tetramethylsilane", "mol2"]


def test_python_api_prints_nothing(random_model, tmp_path, capfd):
    RDLogger.EnableLog("rdApp.*")  # the CLI tests switch RDKit's logging off process-wide
    capfd.readouterr()
    sdf = _write(tmp_path / "mixed.sdf", sdf_record("CCO", "ok") + garbage(300, 9).decode("latin-1") + "\n$$$$\n"
                 + sdf_record("CCO", "qq").replace(" O ", " Qq", 1) + _pentavalent_carbon_block())
    records = list(molecule.read_file(sdf))
    assert len(records) == 4
    bad_smiles = [s for s, _ in SMILES_CASES if len(s) < 100]
    results = grappa_like.parameterize(bad_smiles + ["CCO"], model=random_model, progress=False)
    assert sum(r.ok for r in results) == 1
    molecule.from_smiles("S(=O)(=O)(O)O").conformer_positions()  # UFF/MMFF typing chatter stays quiet
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)


# ============================================================================ model files


def _payload(path: str) -> dict:
    return model_file.read_payload(path)


def _save_raw(path, payload, recompute_checksum=True) -> str:
    payload = dict(payload)
    if recompute_checksum:
        payload["sha256"] = model_file.checksum(payload)
    model_file.write_payload(str(path), payload)
    return str(path)


def _truncated(source, target):
    data = open(source, "rb").read()
    return _write(target, data[: len(data) // 2])


MODEL_CASES = {
    "truncated": lambda src, dst: _truncated(src, dst),
    "random-bytes": lambda src, dst: _write(dst, garbage(5000, 11)),
    "empty-file": lambda src, dst: _write(dst, b""),
    "text-file": lambda src, dst: _write(dst, "not a model\n"),
    "wrong-version": lambda src, dst: _save_raw(dst, dict(_payload(src), format_version=99)),
    "future-version-string": lambda src, dst: _save_raw(dst, dict(_payload(src), format_version="2.0")),
    "not-a-model-dict": lambda src, dst: _save_raw(dst, {"state_dict": {}, "format_version": 3}),
    "other-npz": lambda src, dst: (np.savez(open(dst, "wb"), x=np.arange(3)), str(dst))[1],
    "tampered-tensor": lambda src, dst: _save_raw(dst, dict(_payload(src), state_dict={
        k: v + 1 for k, v in _payload(src)["state_dict"].items()}), recompute_checksum=False),
    "config-does-not-fit-weights": lambda src, dst: _save_raw(dst, dict(
        _payload(src), config=dict(_payload(src)["config"], width=64))),
    "missing-lj-table": lambda src, dst: _save_raw(dst, {k: v for k, v in _payload(src).items() if k != "lj_types"}),
    "missing": lambda src, dst: str(dst),
    "folder": lambda src, dst: (os.mkdir(dst), str(dst))[1],
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_bad_model_file(case, model_file_path, tmp_path):
    path = MODEL_CASES[case](model_file_path, tmp_path / f"{case}.npz")
    with pytest.raises(errors.GrappaLikeError) as info:
        grappa_like.load_model(path)
    assert type(info.value) is errors.ModelFileError
    assert path in str(info.value)


@pytest.mark.parametrize("case", ["truncated", "random-bytes", "wrong-version", "config-does-not-fit-weights"])
def test_bad_model_file_in_the_cli_exits_2_and_writes_nothing(case, model_file_path, tmp_path, caplog):
    path = MODEL_CASES[case](model_file_path, tmp_path / f"{case}.npz")
    out = tmp_path / "out"
    assert main(["parameterize", "--smiles", "CCO", "--smiles", "CCN", "-o", str(out), "--model", path]) == 2
    assert not out.exists()
    (message,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert path in message and "\n" not in message


# ============================================================================ CLI batches


def _cli(args, model_file_path) -> int:
    return main(["parameterize", *args, "--model", model_file_path])


def _failures(folder) -> list[tuple[str, str]]:
    lines = (folder / "failures.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "record\tinput\terror_class\tmessage"
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(row) == 4 for row in rows), rows
    return [(row[0], row[2]) for row in rows]


def _written(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name != "failures.tsv")


def test_sdf_batch_good_neighbours_survive(model_file_path, tmp_path):
    parts = [
        sdf_record("CCO", "good-1"),
        garbage(400, 21).decode("latin-1") + "\n$$$$\n",
        sdf_record("CC(=O)[O-]", "good-2"),
        sdf_record("C[Si](C)(C)C", "silane"),
        sdf_record("c1ccccc1", "good-3", hydrogens=False),              # hydrogens added
        sdf_record("[CH3]", "methyl"),
        "zero\n  RDKit          3D\n\n  0  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n$$$$\n",
        _with_charge(sdf_record("CCO", "bad-charge"), 1, 1),
        sdf_record("CCO", "qq").replace(" O ", " Qq", 1),
        sdf_record("CC(=O)[O-].[NH4+]", "salt"),
        sdf_record("[NH3+]CC(=O)[O-]", "good-4"),
        sdf_record("CC(=O)Oc1ccccc1C(=O)O", "good-5")[:500],                # truncated last record
    ]
    path = _write(tmp_path / "mixed.sdf", "".join(parts))
    out = tmp_path / "out"
    assert _cli([path, "-o", str(out)], model_file_path) == 1
    assert _written(out) == ["good-1.xml", "good-2.xml", "good-3.xml", "good-4.xml"]
    assert _failures(out) == [
        ("mixed:2", "UnparsableInputError"), ("silane", "UnsupportedElementError"), ("methyl", "RadicalError"),
        ("zero", "EmptyMoleculeError"), ("bad-charge", "UnparsableInputError"), ("mixed:9", "UnparsableInputError"),
        ("salt", "DisconnectedMoleculeError"), ("mixed:12", "UnparsableInputError"),
    ]


def test_smi_batch_good_neighbours_survive(model_file_path, tmp_path):
    lines = [b"SMILES Name", b"CCO ethanol", b"C1CC broken", b"# a comment", b"", b"[Na+] sodium",
             b"\xff\xfe\x00\x01 binary", b"c1ccccc1 benzene", b"[CH3] methyl", b"CCO.O wet", b"CC(=O)[O-] acetate",
             b"C(C)(C)(C)(C)C pentavalent", b"C" * 400 + b" huge"]
    path = _write(tmp_path / "list.smi", b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    assert _cli([path, "-o", str(out)], model_file_path) == 1
    assert _written(out) == ["acetate.xml", "benzene.xml", "ethanol.xml"]
    assert _failures(out) == [
        ("broken", "UnparsableInputError"), ("sodium", "UnsupportedElementError"), ("binary", "UnparsableInputError"),
        ("methyl", "RadicalError"), ("wet", "DisconnectedMoleculeError"), ("pentavalent", "UnparsableInputError"),
        ("huge", "MoleculeTooLargeError"),
    ]


def test_repeated_smiles_good_neighbours_survive(model_file_path, tmp_path):
    smiles = ["CCO", "", "Xx", "c1ccccc1", "[K+]", "[O]", "CC(=O)[O-].[Na+]", "CC#N", " ", "c1cccc1", "O"]
    out = tmp_path / "out"
    args = [arg for s in smiles for arg in ("--smiles", s)]
    assert _cli([*args, "-o", str(out)], model_file_path) == 1
    assert _written(out) == ["mol1.xml", "mol11.xml", "mol4.xml", "mol8.xml"]
    assert _failures(out) == [
        ("mol2", "UnparsableInputError"), ("mol3", "UnparsableInputError"), ("mol5", "UnsupportedElementError"),
        ("mol6", "RadicalError"), ("mol7", "UnsupportedElementError"), ("mol9", "UnparsableInputError"),
        ("mol10", "UnparsableInputError"),
    ]


def test_several_inputs_some_unreadable(model_file_path, tmp_path):
    good_sdf = _write(tmp_path / "good.sdf", sdf_record("CCO", "ethanol") + sdf_record("CCN", "ethylamine"))
    good_smi = _write(tmp_path / "good.smi", "c1ccccc1 benzene\n")
    folder = tmp_path / "folder.sdf"
    folder.mkdir()
    junk = _write(tmp_path / "junk.mol2", garbage(1000, 31))
    inputs = [good_sdf, str(tmp_path / "missing.sdf"), str(folder), _write(tmp_path / "x.xyz", "1\n\nC 0 0 0\n"),
              junk, _write(tmp_path / "empty.smi", ""), good_smi]
    out = tmp_path / "out"
    assert _cli([*inputs, "-o", str(out)], model_file_path) == 1
    assert _written(out) == ["benzene.xml", "ethanol.xml", "ethylamine.xml"]
    assert [error_class for _, error_class in _failures(out)] == [
        "UnparsableInputError", "UnparsableInputError", "UnparsableInputError", "UnparsableInputError",
        "EmptyMoleculeError"]


def test_nothing_parameterizable_exits_2_and_lists_every_failure(model_file_path, tmp_path):
    out = tmp_path / "out"
    assert _cli(["--smiles", "C1CC", "--smiles", "[Na+]", "--smiles", "[CH3]", "-o", str(out)], model_file_path) == 2
    assert _written(out) == []
    assert [c for _, c in _failures(out)] == ["UnparsableInputError", "UnsupportedElementError", "RadicalError"]


def test_single_bad_molecule_exits_2_and_writes_nothing(model_file_path, tmp_path):
    out = tmp_path / "one.xml"
    assert _cli(["--smiles", "[CH3]", "-o", str(out)], model_file_path) == 2
    assert list(tmp_path.iterdir()) == []


def test_max_atoms_option(model_file_path, tmp_path):
    out = tmp_path / "out"
    assert _cli(["--smiles", "CCO", "--smiles", "CC(=O)Oc1ccccc1C(=O)O", "--max-atoms", "20", "-o", str(out)],
                model_file_path) == 1
    assert _written(out) == ["mol1.xml"]
    assert _failures(out) == [("mol2", "MoleculeTooLargeError")]
    big = "C" * 400  # 1202 atoms: over the default limit, fine with --max-atoms 1500
    assert _cli(["--smiles", big, "-o", str(tmp_path / "big.xml")], model_file_path) == 2
    assert _cli(["--smiles", big, "--max-atoms", "1500", "-o", str(tmp_path / "big.xml")], model_file_path) == 0


@pytest.mark.parametrize("value", ["0", "-5", "ten"])
def test_max_atoms_must_be_a_positive_number(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["parameterize", "--smiles", "CCO", "--max-atoms", value, "-o", str(tmp_path / "x.xml")])
    assert info.value.code == 2
    assert "--max-atoms" in capsys.readouterr().err


def test_total_charge_option(model_file_path, tmp_path):
    out = tmp_path / "out"
    args = ["--smiles", "CC(=O)[O-]", "--smiles", "CCO", "--smiles", "[NH4+]", "--total-charge", "0", "-o", str(out)]
    assert _cli(args, model_file_path) == 1
    assert _written(out) == ["mol2.xml"]
    assert _failures(out) == [("mol1", "ChargeMismatchError"), ("mol3", "ChargeMismatchError")]


def test_output_folder_that_is_a_file_exits_2(model_file_path, tmp_path):
    target = _write(tmp_path / "taken", "x")
    assert _cli(["--smiles", "CCO", "--smiles", "CCN", "-o", target], model_file_path) == 2
    assert open(target).read() == "x"


def test_one_molecule_into_an_existing_folder(model_file_path, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    sdf = _write(tmp_path / "one.sdf", sdf_record("CCO", "ethanol"))
    assert _cli([sdf, "-o", str(folder)], model_file_path) == 0
    assert _written(folder) == ["ethanol.xml"]


NASTY_NAMES = ["Ethanol", "ethanol", "ETHANOL", "../../escaped", "a/b", "..", ".", "", "   ", "日本語", "x" * 300,
               "ethanol_2", "tab\there", "-rf", "failures", "$(rm -rf ~)", "con"]


def test_duplicate_and_unsafe_record_names(model_file_path, tmp_path):
    blocks = []
    for index, name in enumerate(NASTY_NAMES):
        block = sdf_record("CCO", "placeholder")
        blocks.append(name.replace("\n", " ") + block[len("placeholder"):])
    path = _write(tmp_path / "names.sdf", "".join(blocks))
    out = tmp_path / "deep" / "out"
    assert _cli([path, "-o", str(out)], model_file_path) == 0
    written = _written(out)
    assert len(written) == len(NASTY_NAMES)
    assert len({name.lower() for name in written}) == len(written)  # unique even on case-insensitive disks
    assert all(name.endswith(".xml") and len(name) <= 104 for name in written)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", name) for name in written)
    assert not any(name.startswith(".") for name in written)
    assert sorted(os.listdir(tmp_path)) == ["deep", "names.sdf"]  # nothing escaped the output folder
    assert {"Ethanol.xml", "ethanol_2.xml", "ETHANOL_3.xml", "escaped.xml", "a_b.xml", "failures.xml"} <= set(written)
    assert "ethanol_2_2.xml" in written  # the record really named ethanol_2 comes after the suffixed one


def test_unicode_record_names_reach_failures_tsv(model_file_path, tmp_path):
    path = _write(tmp_path / "unicode.smi", "CCO äthanol\nC1CC 日本\n[Na+] naïve-sodium\n")
    out = tmp_path / "out"
    assert _cli([path, "-o", str(out)], model_file_path) == 1
    assert _written(out) == ["thanol.xml"]
    assert _failures(out) == [("日本", "UnparsableInputError"), ("naïve-sodium", "UnsupportedElementError")]


def test_cli_stderr_has_one_line_per_failure_and_no_rdkit_chatter(model_file_path, tmp_path):
    sdf = _write(tmp_path / "mixed.sdf", sdf_record("CCO", "good") + sdf_record("CCO", "qq").replace(" O ", " Qq", 1)
                 + _pentavalent_carbon_block() + "garbage\n\n\nnot a counts line\nM  END\n$$$$\n")
    out = tmp_path / "out"
    command = [sys.executable, "-c", "import sys; from grappa_like.cli import main; sys.exit(main())",
               "parameterize", sdf, "--smiles", "C1CC", "--model", model_file_path, "-o", str(out)]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)
    assert completed.returncode == 1, completed.stderr
    assert completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 4 + 1, lines  # four failures, one summary
    assert all(line.startswith("failed: ") for line in lines[:4]), lines
    assert lines[4].startswith("1 written, 4 failed")


# ============================================================================ output paths


def _one_error_line(caplog) -> str:
    (message,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "\n" not in message
    return message


def _no_temporaries(folder) -> bool:
    return not [p for p in folder.rglob(".*.tmp")]


@pytest.mark.parametrize(("output", "extra", "expected"), [
    ("newdir/eth.xml", [], ["newdir/eth.xml"]),                            # missing parent: created
    ("a/b/c/eth.xml", [], ["a/b/c/eth.xml"]),                              # several levels
    ("newdir/", [], ["newdir/mol1.xml"]),                                  # trailing slash: a folder
    ("g/mol.top", ["--format", "gromacs"], ["g/mol.top", "g/mol.gro"]),    # both GROMACS files
    ("amb/", ["--format", "amber"], ["amb/mol1.prmtop", "amb/mol1.inpcrd"]),
])
def test_output_paths_one_molecule(output, extra, expected, model_file_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _cli(["--smiles", "CCO", "-o", output, *extra], model_file_path) == 0
    for path in expected:
        assert (tmp_path / path).is_file() and (tmp_path / path).stat().st_size > 0, path
    assert _no_temporaries(tmp_path)


def test_output_into_an_existing_folder(model_file_path, tmp_path):
    folder = tmp_path / "existing"
    folder.mkdir()
    assert _cli(["--smiles", "CCO", "-o", str(folder)], model_file_path) == 0
    assert (folder / "mol1.xml").is_file()


def test_several_molecules_into_a_new_nested_folder(model_file_path, tmp_path):
    out = tmp_path / "x" / "y"
    assert _cli(["--smiles", "CCO", "--smiles", "CCN", "-o", str(out)], model_file_path) == 0
    assert sorted(p.name for p in out.iterdir()) == ["failures.tsv", "mol1.xml", "mol2.xml"]  # no ensemble: no scores


@pytest.mark.parametrize("case", ["parent-is-a-file", "folder-is-a-file", "output-is-a-folder-file-name", "library"])
def test_unwritable_output_is_one_line_naming_it(case, model_file_path, tmp_path, caplog):
    blocker = tmp_path / "afile.txt"
    blocker.write_text("in the way\n")
    smi = tmp_path / "in.smi"
    smi.write_text("CCO ethanol\nCCN ethylamine\n")
    arguments = {
        "parent-is-a-file": ["--smiles", "CCO", "-o", str(blocker / "eth.xml")],
        "folder-is-a-file": ["--smiles", "CCO", "--smiles", "CCN", "-o", str(blocker)],
        "output-is-a-folder-file-name": ["--smiles", "CCO", "-o", str(blocker) + "/"],
        "library": [str(smi), "--library", "-o", str(blocker / "lib")],
    }[case]
    assert _cli(arguments, model_file_path) == 2
    message = _one_error_line(caplog)
    assert str(blocker) in message, message
    assert blocker.read_text() == "in the way\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile.txt", "in.smi"]


def test_output_path_errors_in_the_library_api(model_file_path, tmp_path):
    blocker = tmp_path / "afile.txt"
    blocker.write_text("x")
    smi = tmp_path / "in.smi"
    smi.write_text("CCO ethanol\n")
    with pytest.raises(errors.OutputPathError, match="afile.txt"):
        grappa_like.parameterize_library(str(smi), str(blocker / "out"), model=model_file_path, progress=False)
