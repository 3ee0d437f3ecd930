"""Selection rules of the training-molecule scripts (scripts/select_training_molecules.py and its v3 sibling):
held-out InChIKeys, overlap keys, benchmark tautomers, family tags, enumerated members, chunked output."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import h5py
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolTransforms

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _load(name):
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


@pytest.fixture(scope="module")
def v1():
    return _load("select_training_molecules")


@pytest.fixture(scope="module")
def v3():
    return _load("select_training_molecules_v3")


def _mapped(smiles):
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    for atom in mol.GetAtoms():
        atom.SetAtomMapNum(atom.GetIdx() + 1)
    return Chem.MolToSmiles(mol)


def _qm_file(path, molecules):
    with h5py.File(path, "w") as handle:
        for name, smiles in molecules.items():
            handle.create_group(name).attrs["smiles"] = _mapped(smiles)
    return path


IBUPROFEN = "CC(C)Cc1ccc([C@@H](C)C(=O)O)cc1"


def test_held_out_inchikey_blocks_exclude_stereoisomers_and_charged_forms(v1, tmp_path):
    key = Chem.MolToInchiKey(Chem.MolFromSmiles(IBUPROFEN))
    held_out = tmp_path / "held-out.txt"
    held_out.write_text(f"# comment line\n{key}\n\n")
    blocks = v1.held_out_blocks(held_out)
    assert blocks == {key[:14]}
    for smiles in (IBUPROFEN, "CC(C)Cc1ccc([C@H](C)C(=O)O)cc1", "CC(C)Cc1ccc(C(C)C(=O)[O-])cc1"):
        assert v1.is_held_out(Chem.MolFromSmiles(smiles), blocks), smiles
    assert not v1.is_held_out(Chem.MolFromSmiles("CC(C)Cc1ccc(CC(=O)O)cc1"), blocks)
    assert not v1.is_held_out(Chem.MolFromSmiles(IBUPROFEN), set())

    csv = tmp_path / "list.csv"
    csv.write_text(f"smiles\n{IBUPROFEN}\nCCCCc1ccccc1O\n")
    picked = [c["smiles"] for c in v1.read_candidates([csv], set(), blocks)]
    assert picked == ["CCCCc1ccccc1O"]   # neither ibuprofen nor its rule-made carboxylate


def test_overlap_keys_ignore_atom_maps_stereo_and_hydrogens(v1, tmp_path):
    path = _qm_file(tmp_path / "train.h5", {"ibu": IBUPROFEN})
    keys = v1.excluded_keys([path])
    assert v1.canonical_key(Chem.MolFromSmiles("CC(C)Cc1ccc(C(C)C(=O)O)cc1")) in keys


def test_exclusion_covers_known_molecules_benchmark_tautomers_and_held_out(v3, tmp_path):
    bench = _qm_file(tmp_path / "bench.h5", {"acac": "CC(O)=CC(C)=O", "malonaldehyde": "O=CCC=O"})
    known = v3.v1.excluded_keys([bench]) | v3.smi_keys([_smi(tmp_path / "v1.smi", ["c1ccccc1O phenol"])])
    held_out = {Chem.MolToInchiKey(Chem.MolFromSmiles("CCOC(C)=O"))[:14]}
    exclusion = v3.Exclusion(known, v3.benchmark_tautomer_keys([bench]), held_out)
    reasons = {smiles: exclusion.reason(Chem.MolFromSmiles(smiles)) for smiles in (
        "C/C(O)=C/C(C)=O", "CC(=O)CC(C)=O", "OC=CC=O", "Oc1ccccc1", "CCOC(C)=O", "CC(=O)CC(=O)CC", "CCO")}
    assert reasons == {"C/C(O)=C/C(C)=O": "known", "CC(=O)CC(C)=O": "benchmark_tautomer",
                       "OC=CC=O": "benchmark_tautomer", "Oc1ccccc1": "known", "CCOC(C)=O": "held_out",
                       "CC(=O)CC(=O)CC": None, "CCO": None}


def _smi(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("smiles, families", [
    ("C/C(O)=C/C(C)=O", ["enol", "intramolecular_hbond"]),        # acac enol
    ("CC(=O)CC(=O)c1ccccc1", ["enol"]),                            # beta-diketone (keto form)
    ("O=[N+]([O-])c1ccccc1O", ["intramolecular_hbond"]),           # 2-nitrophenol
    ("Nc1ccc(S(N)(=O)=O)cc1", ["sulfonamide"]),                    # sulfanilamide
    ("c1ccc(/N=N/c2ccccc2)cc1", ["azo_heteroaryl"]),               # azobenzene
    ("c1ccc(-c2ccccn2)cc1", ["azo_heteroaryl"]),                   # 2-phenylpyridine
    ("COP(=O)(OC)OC", ["phosphate"]),
    ("CCOP(=S)(OCC)Oc1ccc([N+](=O)[O-])cc1", ["phosphate"]),       # parathion
    ("c1ccc(-c2ccccc2)cc1", []),                                   # biphenyl: no heteroatom
    ("CCO", []),
])
def test_family_tags(v3, smiles, families):
    assert v3.families_of(Chem.MolFromSmiles(smiles)) == families


def test_enumerated_members_pass_the_rules_and_carry_their_family(v3):
    members = v3.enumerated_members()
    assert len(members) > 500 and {family for _, family in members} == set(v3.FAMILIES)
    for smiles, family in members:
        mol = v3.v1.clean(smiles)
        assert mol is not None, smiles
        assert family in v3.families_of(mol), smiles
    # the enols are the hydrogen-bonded Z isomers: O-H and C=O on the same side of the C=C
    enol = Chem.AddHs(Chem.MolFromSmiles(next(s for s, f in members if f == "enol" and s.startswith("O/"))))
    assert AllChem.EmbedMolecule(enol, randomSeed=7) == 0
    hydroxyl, carbon_a, carbon_b, carbonyl = enol.GetSubstructMatch(Chem.MolFromSmarts("[OH]C=CC=O"))[:4]
    dihedral = rdMolTransforms.GetDihedralDeg(enol.GetConformer(), hydroxyl, carbon_a, carbon_b, carbonyl)
    assert abs(dihedral) < 30


def test_selection_quotas_labels_and_chunks(v3, tmp_path):
    csv = tmp_path / "list.csv"
    csv.write_text("smiles\n" + "\n".join([
        "CC(=O)CC(=O)c1ccccc1", "Nc1ccc(S(N)(=O)=O)cc1", "COP(=O)(OC)OC", "c1ccc(-c2ccccn2)cc1",
        "CCCCCCO", "CCCCN", "OC(=O)CCc1ccccc1", "Brc1ccccc1", "CCOc1ccccc1", "CCCC(C)=O"]) + "\n")
    exclusion = v3.Exclusion(set(), {}, set())
    pool = v3.read_pool([csv], exclusion)
    assert any(c["source"] == "list+carboxylate" for c in pool) and any(c["source"] == "list+ammonium" for c in pool)
    chosen = v3.select(pool, [], total=9, family_quota={f: 1 for f in v3.FAMILIES},
                       quotas={"large": 0, "pbri": 1, "charged": 1}, seed=1)
    families = {f for c in chosen for f in c["families"]}
    assert {"enol", "sulfonamide", "phosphate", "azo_heteroaryl"} <= families
    assert len(chosen) == 9 and len({c["key"] for c in chosen}) == 9
    files = v3.write_lists(chosen, tmp_path / "out", chunk=2, seed=1)
    names = set()
    assert set(files) <= {"druglike-ani2x", "druglike-gfn2", "hbond-ani2x", "hbond-gfn2"}
    assert "hbond-ani2x" in files   # the diketone
    for stem, paths in files.items():
        label = stem.split("-")[1]
        for path in paths:
            lines = path.read_text().splitlines()
            assert 1 <= len(lines) <= 2
            for line in lines:
                smiles, name = line.split()
                mol = Chem.MolFromSmiles(smiles)
                assert v3.v1.needs_gfn2(mol) == (label == "gfn2"), line
                names.add(name)
    assert len(names) == 9
    assert len((tmp_path / "out" / "selection.tsv").read_text().splitlines()) == 10


def test_ionized_forms(v3):
    forms = {smiles: v3.ionized_form(Chem.MolFromSmiles(smiles)) for smiles in (
        "OC(=O)c1ccccc1", "COP(=O)(O)OC", "NC(=N)c1ccccc1", "CCN(CC)CC", "c1ccccc1")}
    assert {s: (None if f is None else (Chem.GetFormalCharge(f[0]), f[1])) for s, f in forms.items()} == {
        "OC(=O)c1ccccc1": (-1, "carboxylate"), "COP(=O)(O)OC": (-1, "phosphate_anion"),
        "NC(=N)c1ccccc1": (1, "amidinium"), "CCN(CC)CC": (1, "ammonium"), "c1ccccc1": None}


def test_feasible_stereo_replaces_an_impossible_first_stereoisomer(v3):
    """Norbornane's first enumerated stereoisomer has a trans-fused bridge that ETKDG cannot embed."""
    fixed, what = v3.feasible_stereo(Chem.MolFromSmiles("CC1CC2CCC1C2"))
    assert what == "stereo from 3D"
    assert v3._embeds(fixed, seed=1, timeout=2) is not None
    assert v3.v1.canonical_key(fixed) == v3.v1.canonical_key(Chem.MolFromSmiles("CC1CC2CCC1C2"))
    plain, what = v3.feasible_stereo(Chem.MolFromSmiles("CC(O)CC"))
    assert what == "as given" and Chem.MolToSmiles(plain) == "CCC(C)O"
