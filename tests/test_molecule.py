"""Molecule input: atom order == input order on every path, typed errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from grappa_like import errors, molecule

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
GLYCINE_ZWITTERION = "[NH3+]CC(=O)[O-]"


# ----------------------------------------------------------------------------- helpers


def elements(mol: Chem.Mol) -> list[str]:
    return [atom.GetSymbol() for atom in mol.GetAtoms()]


def bond_table(mol: Chem.Mol) -> dict:
    """{frozenset(i, j): bond order as float} of an RDKit Mol."""
    return {
        frozenset((b.GetBeginAtomIdx(), b.GetEndAtomIdx())): b.GetBondTypeAsDouble() for b in mol.GetBonds()
    }


def connectivity(mol: Chem.Mol) -> set:
    return set(bond_table(mol))


def embedded(smiles: str, seed: int = 11) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    return mol


def shuffled(mol: Chem.Mol, seed: int) -> Chem.Mol:
    """Copy of ``mol`` with its atoms (hydrogens included) in a random order."""
    order = np.random.default_rng(seed).permutation(mol.GetNumAtoms()).tolist()
    return Chem.RenumberAtoms(mol, order)


# ----------------------------------------------------------------------------- SMILES


def test_plain_smiles_keeps_heavy_atom_order_and_appends_hydrogens():
    mol = molecule.from_smiles("OCC(=O)N")
    assert elements(mol.rdkit_mol)[:5] == ["O", "C", "C", "O", "N"]
    assert set(elements(mol.rdkit_mol)[5:]) == {"H"}
    assert mol.n_atoms == 5 + 5
    assert mol.positions is None


def test_mapped_smiles_map_numbers_define_order_with_explicit_hydrogens():
    # Written in a scrambled order; map number k must become atom k-1.
    mol = molecule.from_smiles("[O:3]([H:9])[C:2]([H:7])([H:8])[C:1]([H:4])([H:5])[H:6]").rdkit_mol
    assert elements(mol) == ["C", "C", "O", "H", "H", "H", "H", "H", "H"]
    expected = {frozenset(pair) for pair in [(0, 1), (1, 2), (2, 8), (0, 3), (0, 4), (0, 5), (1, 6), (1, 7)]}
    assert connectivity(mol) == expected
    assert all(atom.GetAtomMapNum() == 0 for atom in mol.GetAtoms())


def test_mapped_smiles_heavy_atoms_only():
    mol = molecule.from_smiles("[OH:3][CH2:2][CH3:1]").rdkit_mol
    assert elements(mol)[:3] == ["C", "C", "O"]
    assert {frozenset((0, 1)), frozenset((1, 2))} <= connectivity(mol)


@pytest.mark.parametrize("smiles", [ASPIRIN, GLYCINE_ZWITTERION, "C1CC1C(=O)[O-]"])
def test_mapped_smiles_round_trip_keeps_order(smiles):
    original = molecule.from_smiles(smiles)
    # scramble the molecule first so that the order is not the canonical one
    scrambled = molecule.from_rdkit(shuffled(original.rdkit_mol, seed=3))
    again = molecule.from_smiles(scrambled.mapped_smiles())
    assert elements(again.rdkit_mol) == elements(scrambled.rdkit_mol)
    assert bond_table(again.rdkit_mol) == bond_table(scrambled.rdkit_mol)
    assert [a.GetFormalCharge() for a in again.rdkit_mol.GetAtoms()] == [
        a.GetFormalCharge() for a in scrambled.rdkit_mol.GetAtoms()
    ]


# ----------------------------------------------------------------------------- RDKit / SDF / MOL2


def test_from_rdkit_keeps_shuffled_order_and_coordinates():
    mol = shuffled(embedded(ASPIRIN), seed=5)
    result = molecule.from_rdkit(mol, name="aspirin")
    assert result.name == "aspirin"
    assert elements(result.rdkit_mol) == elements(mol)
    assert bond_table(result.rdkit_mol) == bond_table(mol)
    np.testing.assert_allclose(result.positions, mol.GetConformer().GetPositions())


def test_from_rdkit_adds_missing_hydrogens_after_heavy_atoms_with_coordinates():
    mol = embedded("CCO")
    heavy = Chem.RemoveHs(mol)
    result = molecule.from_rdkit(heavy)
    assert result.n_atoms == 9
    assert elements(result.rdkit_mol)[:3] == elements(heavy)
    np.testing.assert_allclose(result.positions[:3], heavy.GetConformer().GetPositions())
    # the added hydrogens got coordinates near their heavy atom
    for atom in result.rdkit_mol.GetAtoms():
        if atom.GetSymbol() == "H":
            (neighbour,) = atom.GetNeighbors()
            distance = np.linalg.norm(result.positions[atom.GetIdx()] - result.positions[neighbour.GetIdx()])
            assert 0.8 < distance < 1.3


def _write_sdf(path, mols):
    writer = Chem.SDWriter(str(path))
    for mol in mols:
        writer.write(mol)
    writer.close()


def test_multi_record_sdf_keeps_order_coordinates_and_names(tmp_path):
    inputs = []
    for index, smiles in enumerate([ASPIRIN, GLYCINE_ZWITTERION, "CCO"]):
        mol = shuffled(embedded(smiles, seed=index + 1), seed=index + 10)
        mol.SetProp("_Name", f"record-{index}")
        inputs.append(mol)
    path = tmp_path / "three.sdf"
    _write_sdf(path, inputs)

    records = list(molecule.read_file(str(path)))
    assert [name for name, _ in records] == ["record-0", "record-1", "record-2"]
    for (name, result), mol in zip(records, inputs):
        assert isinstance(result, molecule.Molecule), result
        assert result.name == name
        assert elements(result.rdkit_mol) == elements(mol)
        assert bond_table(result.rdkit_mol) == bond_table(mol)
        assert result.total_charge == Chem.GetFormalCharge(mol)
        # SDF stores 4 decimals
        np.testing.assert_allclose(result.positions, mol.GetConformer().GetPositions(), atol=1e-4)


def test_bad_sdf_records_yield_errors_and_reading_goes_on(tmp_path):
    good = [embedded(s, seed=2) for s in ("CCO", "CC(=O)[O-]", "c1ccccc1")]
    for index, mol in enumerate(good):
        mol.SetProp("_Name", f"good-{index}")
    silane = embedded("C[Si](C)(C)C", seed=2)
    silane.SetProp("_Name", "silane")

    def block(mol):
        return Chem.MolToMolBlock(mol) + "$$$$\n"

    garbage = "garbage\n  not a molfile\n\nthis is not a counts line\nM  END\n$$$$\n"
    text = block(good[0]) + garbage + block(silane) + block(good[1]) + block(good[2])
    path = tmp_path / "mixed.sdf"
    path.write_text(text)

    records = list(molecule.read_file(str(path)))
    assert len(records) == 5
    kinds = [type(result) for _, result in records]
    assert kinds[0] is molecule.Molecule
    assert isinstance(records[1][1], errors.UnparsableInputError)
    assert isinstance(records[2][1], errors.UnsupportedElementError)
    assert "silane" in str(records[2][1])
    assert kinds[3] is molecule.Molecule and kinds[4] is molecule.Molecule
    assert [records[i][0] for i in (0, 3, 4)] == ["good-0", "good-1", "good-2"]
    assert records[3][1].total_charge == -1
    assert elements(records[4][1].rdkit_mol) == elements(good[2])


ETHANOL_MOL2 = """@<TRIPOS>MOLECULE
ethanol_mol2
 9 8 1 0 0
SMALL
NO_CHARGES

@<TRIPOS>ATOM
      1 H1          0.1000    1.0000    0.9000 H         1 MOL       0.0000
      2 O1          0.0000    0.9500    0.0000 O.3       1 MOL       0.0000
      3 C1          0.0000   -0.4300    0.3000 C.3       1 MOL       0.0000
      4 H2         -0.9000   -0.8000   -0.2000 H         1 MOL       0.0000
      5 H3          0.8800   -0.8000   -0.2000 H         1 MOL       0.0000
      6 C2          0.0000   -0.6000    1.8200 C.3       1 MOL       0.0000
      7 H4          0.0000   -1.6500    2.1000 H         1 MOL       0.0000
      8 H5         -0.8900   -0.1300    2.2400 H         1 MOL       0.0000
      9 H6          0.8900   -0.1300    2.2400 H         1 MOL       0.0000
@<TRIPOS>BOND
     1     1     2    1
     2     2     3    1
     3     3     4    1
     4     3     5    1
     5     3     6    1
     6     6     7    1
     7     6     8    1
     8     6     9    1
"""


def test_mol2_keeps_order_and_coordinates(tmp_path):
    path = tmp_path / "ethanol.mol2"
    path.write_text(ETHANOL_MOL2)
    ((name, result),) = list(molecule.read_file(str(path)))
    assert isinstance(result, molecule.Molecule), result
    assert result.name == "ethanol_mol2"  # the MOL2 title
    assert name in ("ethanol_mol2", "ethanol")  # record name: title or file name
    assert elements(result.rdkit_mol) == ["H", "O", "C", "H", "H", "C", "H", "H", "H"]
    expected = {frozenset((a - 1, b - 1)) for a, b in
                [(1, 2), (2, 3), (3, 4), (3, 5), (3, 6), (6, 7), (6, 8), (6, 9)]}
    assert connectivity(result.rdkit_mol) == expected
    assert result.positions[0].tolist() == pytest.approx([0.1, 1.0, 0.9])
    assert result.positions[5].tolist() == pytest.approx([0.0, -0.6, 1.82])


def test_smi_file_names_and_errors(tmp_path):
    path = tmp_path / "list.smi"
    path.write_text("CCO ethanol\nC1CC broken\n\n# comment\nCC(=O)[O-] acetate\n")
    records = list(molecule.read_file(str(path)))
    assert [name for name, _ in records] == ["ethanol", "broken", "acetate"]
    assert isinstance(records[0][1], molecule.Molecule)
    assert isinstance(records[1][1], errors.UnparsableInputError)
    assert records[2][1].total_charge == -1


def test_read_file_missing_and_unknown_type(tmp_path):
    ((_, missing),) = list(molecule.read_file(str(tmp_path / "nothing.sdf")))
    assert isinstance(missing, errors.MoleculeInputError)
    unknown = tmp_path / "thing.xyz"
    unknown.write_text("1\n\nC 0 0 0\n")
    ((_, error),) = list(molecule.read_file(str(unknown)))
    assert isinstance(error, errors.MoleculeInputError)


# ----------------------------------------------------------------------------- PDB + SMILES, Topology


def _write_pdb(tmp_path, mol, name="mol.pdb"):
    path = tmp_path / name
    Chem.MolToPDBFile(mol, str(path))
    return str(path)


def _check_follows(result_mol, reference: Chem.Mol, positions: np.ndarray, result_positions):
    assert elements(result_mol) == elements(reference)
    assert connectivity(result_mol) == connectivity(reference)
    np.testing.assert_allclose(result_positions, positions, atol=2e-3)  # PDB: 3 decimals


def test_pdb_with_smiles_follows_pdb_order(tmp_path):
    mol = shuffled(embedded("CCO", seed=4), seed=8)
    path = _write_pdb(tmp_path, mol, "ethanol.pdb")
    result = molecule.from_pdb(path, "CCO")
    assert result.name == "ethanol"
    _check_follows(result.rdkit_mol, mol, mol.GetConformer().GetPositions(), result.positions)


@pytest.mark.parametrize("smiles", ["CC(=O)O", GLYCINE_ZWITTERION, ASPIRIN])
def test_pdb_bond_orders_and_charges_come_from_smiles(tmp_path, smiles):
    mol = shuffled(embedded(smiles, seed=6), seed=9)
    path = _write_pdb(tmp_path, mol)
    result = molecule.from_pdb(path, smiles)
    _check_follows(result.rdkit_mol, mol, mol.GetConformer().GetPositions(), result.positions)
    assert result.total_charge == Chem.GetFormalCharge(mol)
    # Same molecule as the SMILES (bond orders and charges), in the PDB's atom order.
    assert Chem.MolToSmiles(Chem.RemoveHs(result.rdkit_mol)) == Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
    # Per atom, the chemistry agrees with the shuffled original up to equivalent resonance forms
    # (a carboxylate's -1 may sit on either oxygen): valence minus formal charge is invariant.
    for atom, reference in zip(result.rdkit_mol.GetAtoms(), mol.GetAtoms()):
        assert atom.GetTotalValence() - atom.GetFormalCharge() == (
            reference.GetTotalValence() - reference.GetFormalCharge())
        assert atom.GetIsAromatic() == reference.GetIsAromatic()
        assert atom.GetTotalNumHs(includeNeighbors=True) == reference.GetTotalNumHs(includeNeighbors=True)


def test_pdb_acetic_acid_double_bond_on_the_oxygen_without_hydrogen(tmp_path):
    mol = shuffled(embedded("CC(=O)O", seed=1), seed=2)
    result = molecule.from_pdb(_write_pdb(tmp_path, mol), "CC(=O)O").rdkit_mol
    for bond in result.GetBonds():
        atoms = (bond.GetBeginAtom(), bond.GetEndAtom())
        if {a.GetSymbol() for a in atoms} == {"C", "O"}:
            oxygen = next(a for a in atoms if a.GetSymbol() == "O")
            has_h = any(n.GetSymbol() == "H" for n in oxygen.GetNeighbors())
            assert bond.GetBondType() == (Chem.BondType.SINGLE if has_h else Chem.BondType.DOUBLE)


def test_pdb_without_hydrogens_is_missing_hydrogens(tmp_path):
    heavy = Chem.RemoveHs(embedded("CCO"))
    path = _write_pdb(tmp_path, heavy, "noh.pdb")
    with pytest.raises(errors.MissingHydrogensError, match="noh"):
        molecule.from_pdb(path, "CCO")


def test_pdb_with_wrong_smiles_is_template_mismatch(tmp_path):
    path = _write_pdb(tmp_path, embedded("CCO"), "ethanol.pdb")
    with pytest.raises(errors.TemplateMismatchError):
        molecule.from_pdb(path, "COC")  # same formula, other connectivity
    with pytest.raises(errors.TemplateMismatchError):
        molecule.from_pdb(path, "CCCO")


def test_read_file_pdb_needs_smiles(tmp_path):
    path = _write_pdb(tmp_path, embedded("CCO"), "ethanol.pdb")
    ((_, error),) = list(molecule.read_file(path))
    assert isinstance(error, errors.UnparsableInputError)
    ((_, result),) = list(molecule.read_file(path, smiles="CCO"))
    assert isinstance(result, molecule.Molecule)


def _topology_of(mol: Chem.Mol):
    from openmm import app

    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    atoms = [
        topology.addAtom(f"{a.GetSymbol()}{a.GetIdx()}", app.Element.getByAtomicNumber(a.GetAtomicNum()), residue)
        for a in mol.GetAtoms()
    ]
    for bond in mol.GetBonds():
        topology.addBond(atoms[bond.GetBeginAtomIdx()], atoms[bond.GetEndAtomIdx()])
    return topology


def test_topology_with_smiles_template_follows_topology_order():
    from openmm import unit

    mol = shuffled(embedded(GLYCINE_ZWITTERION, seed=3), seed=4)
    positions_nm = mol.GetConformer().GetPositions() / 10.0
    result = molecule.from_topology(_topology_of(mol), GLYCINE_ZWITTERION,
                                    positions=positions_nm * unit.nanometer, name="gly")
    _check_follows(result.rdkit_mol, mol, positions_nm * 10.0, result.positions)
    assert result.name == "gly"
    assert result.total_charge == 0
    # N+ stays on the nitrogen; the -1 sits on one of the two (equivalent) carboxylate oxygens
    charges = {(a.GetSymbol(), a.GetFormalCharge()) for a in result.rdkit_mol.GetAtoms() if a.GetFormalCharge()}
    assert charges == {("N", 1), ("O", -1)}
    assert Chem.MolToSmiles(Chem.RemoveHs(result.rdkit_mol)) == Chem.MolToSmiles(Chem.MolFromSmiles(GLYCINE_ZWITTERION))


def test_topology_with_rdkit_template_and_no_positions():
    mol = shuffled(embedded(ASPIRIN, seed=3), seed=7)
    result = molecule.from_topology(_topology_of(mol), Chem.MolFromSmiles(ASPIRIN))
    assert result.positions is None
    assert elements(result.rdkit_mol) == elements(mol)
    assert connectivity(result.rdkit_mol) == connectivity(mol)


def test_topology_positions_without_units_are_nanometres():
    mol = shuffled(embedded("CCO", seed=2), seed=3)
    positions_nm = mol.GetConformer().GetPositions() / 10.0
    result = molecule.from_topology(_topology_of(mol), "CCO", positions=positions_nm)
    np.testing.assert_allclose(result.positions, positions_nm * 10.0)
    assert elements(result.rdkit_mol) == elements(mol)


def test_topology_with_wrong_template_is_template_mismatch():
    topology = _topology_of(embedded("CCO"))
    with pytest.raises(errors.TemplateMismatchError):
        molecule.from_topology(topology, "COC")
    with pytest.raises(errors.TemplateMismatchError):
        molecule.from_topology(topology, "CCN")


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("smiles", "error_class"),
    [
        ("C1CC", errors.UnparsableInputError),             # unclosed ring
        ("C(C)(C)(C)(C)C", errors.UnparsableInputError),   # pentavalent carbon
        ("not a smiles", errors.UnparsableInputError),
        ("", errors.UnparsableInputError),
        ("[Na+]", errors.UnsupportedElementError),
        ("C[Si](C)(C)C", errors.UnsupportedElementError),
        ("[CH3]", errors.RadicalError),
        ("CC[O]", errors.RadicalError),
        ("CCO.O", errors.DisconnectedMoleculeError),
        ("C[NH3+].[Cl-]", errors.DisconnectedMoleculeError),
    ],
)
def test_bad_smiles_raise_typed_errors(smiles, error_class):
    with pytest.raises(error_class) as info:
        molecule.from_smiles(smiles, name="record-7")
    assert isinstance(info.value, errors.MoleculeInputError)
    assert isinstance(info.value, ValueError)
    assert "record-7" in str(info.value)


def test_too_many_atoms():
    with pytest.raises(errors.MoleculeTooLargeError, match="32"):
        molecule.from_smiles("CCCCCCCCCC", max_atoms=10)  # 10 C + 22 H
    assert molecule.from_smiles("CCCCCCCCCC", max_atoms=32).n_atoms == 32


def test_rdkit_mol_with_radical_and_unsupported_element():
    with pytest.raises(errors.RadicalError):
        molecule.from_rdkit(Chem.MolFromSmiles("C[CH2]"))
    with pytest.raises(errors.UnsupportedElementError):
        molecule.from_rdkit(Chem.MolFromSmiles("B(O)(O)O"))
    with pytest.raises(errors.UnparsableInputError):
        molecule.from_rdkit(None)


def test_to_molecule_dispatch():
    mol = molecule.from_smiles("CCO")
    assert molecule.to_molecule(mol) is mol
    assert molecule.to_molecule("CCO").n_atoms == 9
    assert molecule.to_molecule(Chem.MolFromSmiles("CCO")).n_atoms == 9
    with pytest.raises(errors.MoleculeInputError):
        molecule.to_molecule(42)


def test_conformer_positions_are_reasonable_and_input_positions_win():
    mol = molecule.from_smiles("CC(=O)[O-]")
    positions = mol.conformer_positions()
    assert positions.shape == (7, 3)
    for bond in mol.rdkit_mol.GetBonds():
        distance = np.linalg.norm(positions[bond.GetBeginAtomIdx()] - positions[bond.GetEndAtomIdx()])
        assert 0.9 < distance < 1.7
    with_coordinates = molecule.from_rdkit(embedded("CCO"))
    np.testing.assert_array_equal(with_coordinates.conformer_positions(), with_coordinates.positions)
