"""End-to-end tests of the ``grappa-like`` command line (run in-process through ``cli.main``)."""

import os

import numpy as np
import openmm
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

import grappa_like
from grappa_like.cli import main


def _load_system(path):
    with open(path) as handle:
        return openmm.XmlSerializer.deserialize(handle.read())


def _charges(system):
    nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    return np.array([nonbonded.getParticleParameters(i)[0]._value for i in range(system.getNumParticles())])


def test_single_smiles_writes_one_system(model_file_path, tmp_path):
    out = tmp_path / "aspirin.xml"
    code = main(["parameterize", "--smiles", "CC(=O)Oc1ccccc1C(=O)O", "-o", str(out), "--model", model_file_path])
    assert code == 0
    system = _load_system(out)
    assert system.getNumParticles() == 21
    kinds = sorted(type(f).__name__ for f in system.getForces())
    assert kinds == ["HarmonicAngleForce", "HarmonicBondForce", "NonbondedForce", "PeriodicTorsionForce"]
    assert abs(_charges(system).sum()) < 1e-6
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())


def test_multi_record_sdf_gives_one_file_per_record(model_file_path, tmp_path):
    sdf = tmp_path / "in.sdf"
    writer = Chem.SDWriter(str(sdf))
    for name, smiles in [("ethanol", "CCO"), ("acetate", "CC(=O)[O-]"), ("ethanol", "OCC")]:
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=1)
        mol.SetProp("_Name", name)
        writer.write(mol)
    writer.close()
    out = tmp_path / "out"
    code = main(["parameterize", str(sdf), "-o", str(out), "--model", model_file_path])
    assert code == 0
    assert sorted(os.listdir(out)) == ["acetate.xml", "ethanol.xml", "ethanol_2.xml", "failures.tsv"]
    assert _load_system(out / "acetate.xml").getNumParticles() == 7
    assert abs(_charges(_load_system(out / "acetate.xml")).sum() + 1.0) < 1e-6
    assert (out / "failures.tsv").read_text().splitlines() == ["record\tinput\terror_class\tmessage"]


def test_bad_record_does_not_stop_the_batch(model_file_path, tmp_path):
    out = tmp_path / "out"
    code = main(["parameterize", "--smiles", "CCO", "--smiles", "C1CC", "--smiles", "c1ccccc1",
                 "-o", str(out), "--model", model_file_path])
    assert code == 1
    assert sorted(os.listdir(out)) == ["failures.tsv", "mol1.xml", "mol3.xml"]
    failure = (out / "failures.tsv").read_text().splitlines()[1].split("\t")
    assert failure[0] == "mol2" and failure[2] == "UnparsableInputError"


def test_pdb_with_smiles_keeps_pdb_atom_order(model_file_path, tmp_path):
    mol = Chem.AddHs(Chem.MolFromSmiles("CC(=O)O"))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    order = list(np.random.default_rng(3).permutation(mol.GetNumAtoms()))
    shuffled = Chem.RenumberAtoms(mol, [int(i) for i in order])
    pdb = tmp_path / "acid.pdb"
    Chem.MolToPDBFile(shuffled, str(pdb))
    out = tmp_path / "acid.xml"
    code = main(["parameterize", str(pdb), "--smiles", "CC(=O)O", "-o", str(out), "--model", model_file_path])
    assert code == 0
    system = _load_system(out)
    masses = [system.getParticleMass(i)._value for i in range(system.getNumParticles())]
    expected = [a.GetMass() for a in shuffled.GetAtoms()]
    assert np.allclose(masses, expected, atol=0.01)
    bonds = next(f for f in system.getForces() if isinstance(f, openmm.HarmonicBondForce))
    pairs = {tuple(sorted(bonds.getBondParameters(i)[:2])) for i in range(bonds.getNumBonds())}
    assert pairs == {tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))) for b in shuffled.GetBonds()}


def test_missing_model_file_exits_2(tmp_path):
    code = main(["parameterize", "--smiles", "CCO", "-o", str(tmp_path / "x.xml"),
                 "--model", str(tmp_path / "missing.pt")])
    assert code == 2
    assert not (tmp_path / "x.xml").exists()


def test_no_input_is_a_usage_error(tmp_path):
    assert main(["parameterize", "-o", str(tmp_path / "x.xml")]) == 2


def test_help_of_every_command_exits_0(capsys):
    for command in ("parameterize", "train", "evaluate"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage" in capsys.readouterr().out


def test_version_has_one_source(capsys):
    """``grappa-like --version`` prints the installed distribution's version, which pyproject takes from
    ``grappa_like.__version__``: one place to change it."""
    import importlib.metadata

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"grappa-like {grappa_like.__version__}"
    assert importlib.metadata.version("grappa_like") == grappa_like.__version__
