"""Out-of-domain score: model files with an ensemble, the score itself, the API, the CLI warning and
summary, and the assemble script. Tiny random networks built here; no shipped model needed."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

import grappa_like
from grappa_like import model_file, ood
from grappa_like.api import Model
from grappa_like.cli import main
from grappa_like.model import ForceFieldModel
from grappa_like.molecule import from_smiles

TINY_CONFIG = {"width": 16, "n_layers": 1, "head_hidden": 16, "attention_heads": 2}
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_state_dict(lj_table, seed: int, base: dict | None = None, noise: float = 0.05) -> dict:
    """A tiny network's state dict: seeded random weights, or ``base`` plus seeded noise of std ``noise``.

    Floating-point weights are rounded to float16-representable values, so a member equal to the main
    network stays exactly equal after float16 storage.
    """
    generator = torch.Generator().manual_seed(seed)
    if base is None:
        torch.manual_seed(seed)
        base = ForceFieldModel(TINY_CONFIG, lj_table.atomic_numbers).state_dict()
    state = {}
    for name, tensor in base.items():
        if tensor.is_floating_point():
            tensor = tensor + noise * torch.randn(tensor.shape, generator=generator)
            tensor = tensor.half().float()
        state[name] = tensor.clone()
    return state


def tiny_payload(lj_table, members: list[dict] | None = None, threshold: float | None = None) -> dict:
    """Model-file payload of a tiny main network, optionally with ensemble members and a threshold."""
    main_state = tiny_state_dict(lj_table, seed=1)
    payload = {
        "config": dict(ForceFieldModel(TINY_CONFIG, lj_table.atomic_numbers).config),
        "state_dict": main_state,
        "lj_types": lj_table.to_dict(),
        "validation_molecules": ["ethanol", "acetamide"],
        "training_data": {"description": "none: random weights for tests", "label_preference": ["dft"]},
        "metrics": {"validation_force_rmse_kcal_per_mol_angstrom": 1.0},
    }
    if members is not None:
        payload["ensemble"] = members
        payload["ensemble_metadata"] = {"score": {"conformers": 2, "seed": 7}}
        if threshold is not None:
            payload["ensemble_metadata"]["ood_threshold"] = threshold
    return payload


@pytest.fixture(scope="module")
def main_state(lj_table):
    return tiny_state_dict(lj_table, seed=1)


def save_and_load(payload, path) -> Model:
    model_file.save(str(path), payload)
    return Model.from_payload(model_file.load(str(path)), str(path))


def test_round_trip_with_members(lj_table, main_state, tmp_path):
    members = [tiny_state_dict(lj_table, seed=10 + k, base=main_state, noise=0.01) for k in range(2)]
    for member in members:  # make one weight not float16-representable: storage must round it
        next(t for t in member.values() if t.is_floating_point()).view(-1)[0] += 1e-5
    path = tmp_path / "ensemble.npz"
    model_file.save(str(path), tiny_payload(lj_table, members, threshold=1.5))
    raw = model_file.read_payload(str(path))
    assert raw["format_version"] == model_file.FORMAT_VERSION == 3
    assert all(a.dtype == np.float16 for member in raw["ensemble"] for a in member.values() if a.dtype.kind == "f")
    assert all(a.dtype == np.float32 for a in raw["state_dict"].values() if a.dtype.kind == "f")
    loaded = model_file.load(str(path))
    for member, original in zip(loaded["ensemble"], members):
        for name, tensor in original.items():
            expected = (tensor.half().float() if tensor.is_floating_point() else tensor).numpy()
            assert member[name].dtype == expected.dtype and np.array_equal(member[name], expected), name
    for name, tensor in main_state.items():
        assert np.array_equal(loaded["state_dict"][name], tensor.numpy()), name
    model = Model.from_payload(loaded)
    assert len(model.members) == 2 and model.ood_threshold == 1.5
    assert model.ood_settings == {"conformers": 2, "seed": 7}
    assert "ensemble" not in model.metadata


def test_checksum_covers_members_and_their_metadata(lj_table, main_state, tmp_path):
    members = [tiny_state_dict(lj_table, seed=10, base=main_state)]
    path = tmp_path / "ensemble.npz"
    model_file.save(str(path), tiny_payload(lj_table, members, threshold=1.5))
    raw = model_file.read_payload(str(path))
    name = next(n for n, a in raw["ensemble"][0].items() if a.dtype.kind == "f")
    raw["ensemble"][0][name] = raw["ensemble"][0][name] + 1
    model_file.write_payload(str(tmp_path / "member.npz"), raw)
    raw = model_file.read_payload(str(path))
    raw["ensemble_metadata"]["ood_threshold"] = 99.0
    model_file.write_payload(str(tmp_path / "threshold.npz"), raw)
    for bad in ("member.npz", "threshold.npz"):
        with pytest.raises(grappa_like.errors.ModelFileError, match="checksum"):
            model_file.load(str(tmp_path / bad))


def test_members_do_not_change_the_main_networks_parameters(lj_table, main_state, tmp_path):
    plain = save_and_load(tiny_payload(lj_table), tmp_path / "plain.npz")
    members = [tiny_state_dict(lj_table, seed=10, base=main_state, noise=0.3)]
    with_ensemble = save_and_load(tiny_payload(lj_table, members), tmp_path / "ensemble.npz")
    (a,), (b,) = plain.predict([from_smiles("CC(=O)Nc1ccc(O)cc1")]), with_ensemble.predict([from_smiles("CC(=O)Nc1ccc(O)cc1")])
    for key in ("bond_k", "bond_r0", "angle_k", "proper_k", "improper_k", "charges", "sigma", "epsilon"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


def test_file_without_members_loads_and_gives_no_score(lj_table, tmp_path):
    path = tmp_path / "plain.npz"
    model_file.save(str(path), tiny_payload(lj_table))
    model = grappa_like.load_model(str(path))
    assert model.members == [] and model.ood_threshold is None
    assert grappa_like.ood_score("CCO", model) is None
    (result,) = grappa_like.parameterize(["CCO"], model=model, progress=False, ood_score=True)
    assert result.ok and result.ood_score is None


def test_shipped_model_file_holds_its_ensemble_and_threshold():
    model = grappa_like.load_model()
    assert len(model.members) == 1 and model.ood_threshold > 0
    stored = model_file.read_payload(model.path)
    assert {a.dtype for a in stored["state_dict"].values() if a.dtype.kind == "f"} == {np.dtype(np.float32)}
    stored = stored["ensemble"]
    assert {a.dtype for member in stored for a in member.values() if a.dtype.kind == "f"} \
        == {np.dtype(np.float16)}
    score = grappa_like.ood_score("CC(=O)Oc1ccccc1C(=O)O", model)
    assert 0 < score < model.ood_threshold   # aspirin is well inside the training distribution


def test_score_is_zero_when_members_equal_the_main_network(lj_table, main_state, tmp_path):
    model = save_and_load(tiny_payload(lj_table, [dict(main_state), dict(main_state)]), tmp_path / "same.npz")
    assert grappa_like.ood_score("CC(=O)Nc1ccc(O)cc1", model) == 0.0


def test_score_grows_with_the_members_perturbation(lj_table, main_state, tmp_path):
    scores = []
    for noise in (0.01, 0.05, 0.25):
        members = [tiny_state_dict(lj_table, seed=10 + k, base=main_state, noise=noise) for k in range(2)]
        model = save_and_load(tiny_payload(lj_table, members), tmp_path / f"noise{noise}.npz")
        scores.append(grappa_like.ood_score("CC(=O)Nc1ccc(O)cc1", model))
    assert 0.0 < scores[0] < scores[1] < scores[2]


def test_force_spread_is_the_rms_of_the_per_component_standard_deviation():
    forces = np.zeros((3, 2, 4, 3))
    forces[1] += 3.0
    forces[2] -= 3.0  # per component: values 0, 3, -3 -> population std sqrt(6)
    assert ood.force_spread(forces) == pytest.approx(np.sqrt(6.0))


def test_score_is_deterministic(lj_table, main_state, tmp_path):
    members = [tiny_state_dict(lj_table, seed=10 + k, base=main_state, noise=0.05) for k in range(2)]
    path = tmp_path / "ensemble.npz"
    first = save_and_load(tiny_payload(lj_table, members), path)
    second = Model.from_payload(model_file.load(str(path)))
    molecule = from_smiles("CC(C)Cc1ccc(cc1)C(C)C(=O)O")
    np.testing.assert_array_equal(ood.conformers(molecule, 2, 7), ood.conformers(molecule, 2, 7))
    scores = {grappa_like.ood_score(molecule, first), grappa_like.ood_score(molecule, first),
              grappa_like.ood_score(molecule, second)}
    assert len(scores) == 1 and scores.pop() > 0


def test_parameterize_computes_the_score_only_when_asked(lj_table, main_state, tmp_path):
    members = [tiny_state_dict(lj_table, seed=10, base=main_state)]
    model = save_and_load(tiny_payload(lj_table, members), tmp_path / "ensemble.npz")
    plain = grappa_like.parameterize(["CCO", "C1CC", "c1ccccc1"], model=model, progress=False)
    scored = grappa_like.parameterize(["CCO", "C1CC", "c1ccccc1"], model=model, progress=False, ood_score=True)
    assert [r.ood_score for r in plain] == [None, None, None]
    assert scored[0].ood_score > 0 and scored[2].ood_score > 0 and not scored[1].ok and scored[1].ood_score is None
    assert scored[0].ood_score == grappa_like.ood_score("CCO", model)


@pytest.fixture
def flagged_model_path(lj_table, main_state, tmp_path):
    """(path, {name: SMILES}) of a tiny model whose threshold lies between the scores of ethanol and
    paracetamol: the dict lists the molecule above the threshold first."""
    members = [tiny_state_dict(lj_table, seed=10 + k, base=main_state, noise=0.05) for k in range(2)]
    model = save_and_load(tiny_payload(lj_table, members), tmp_path / "draft.npz")
    molecules = {"ethanol": "CCO", "paracetamol": "CC(=O)Nc1ccc(O)cc1"}
    scores = {name: grappa_like.ood_score(smiles, model) for name, smiles in molecules.items()}
    high, low = sorted(scores, key=scores.get, reverse=True)
    assert scores[high] > scores[low]
    path = tmp_path / "flagged.npz"
    model_file.save(str(path), tiny_payload(lj_table, members, threshold=(scores[high] + scores[low]) / 2))
    return str(path), {high: molecules[high], low: molecules[low]}


def _smiles_file(folder, molecules: dict):
    path = folder / "in.smi"
    path.write_text("".join(f"{smiles} {name}\n" for name, smiles in molecules.items()))
    return path


def _assert_one_warning_naming(name: str, caplog) -> None:
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and name in warnings[0] and "out of domain" in warnings[0]


def test_cli_warns_above_the_threshold_and_writes_the_scores(flagged_model_path, tmp_path, caplog):
    path, molecules = flagged_model_path
    flagged, unflagged = molecules
    smi = _smiles_file(tmp_path, molecules)
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="grappa_like"):
        assert main(["parameterize", str(smi), "-o", str(out), "--model", path]) == 0
    _assert_one_warning_naming(flagged, caplog)
    lines = (out / "ood_scores.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["record", "file", "ood_score_kcal_per_mol_angstrom", "threshold", "above_threshold"]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    assert rows[flagged][4] == "yes" and rows[unflagged][4] == "no"
    assert float(rows[flagged][2]) > float(rows[flagged][3]) > float(rows[unflagged][2])


def test_cli_no_ood_score_skips_the_score(flagged_model_path, tmp_path, caplog):
    path, _ = flagged_model_path
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="grappa_like"):
        code = main(["parameterize", "--smiles", "CCO", "--smiles", "CC(=O)Nc1ccc(O)cc1", "-o", str(out),
                     "--model", path, "--no-ood-score"])
    assert code == 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert sorted(os.listdir(out)) == ["failures.tsv", "mol1.xml", "mol2.xml"]


def test_cli_single_molecule_warns(flagged_model_path, tmp_path, caplog):
    path, molecules = flagged_model_path
    smiles = next(iter(molecules.values()))
    with caplog.at_level("WARNING", logger="grappa_like"):
        assert main(["parameterize", "--smiles", smiles, "-o", str(tmp_path / "one.xml"), "--model", path]) == 0
    assert any("out of domain" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_assemble_script_sets_the_threshold_from_validation_molecules(lj_table, main_state, tmp_path):
    data = tmp_path / "train.h5"
    with h5py.File(data, "w") as handle:  # the two validation molecules plus one training molecule
        handle.attrs["layout"] = "grappa_like-qm-v1"
        for name, smiles in [("ethanol", "CCO"), ("acetamide", "CC(N)=O"), ("benzene", "c1ccccc1")]:
            molecule = from_smiles(smiles, name)
            group = handle.create_group(name)
            group.attrs.update(smiles=molecule.mapped_smiles(), name=name, subset="test", total_charge=0)
            group["atomic_numbers"] = molecule.atomic_numbers.astype(np.int8)
            group["conformations"] = molecule.conformer_positions()[None].astype(np.float32)
            group.create_dataset("energy/dft", data=np.zeros(1))
    main_path, member_path, out = tmp_path / "main.npz", tmp_path / "member.npz", tmp_path / "ensemble.npz"
    model_file.save(str(main_path), tiny_payload(lj_table))
    member = dict(tiny_payload(lj_table), state_dict=tiny_state_dict(lj_table, seed=10, base=main_state))
    model_file.save(str(member_path), member)
    command = [sys.executable, os.path.join(REPOSITORY, "scripts", "assemble_ensemble.py"), str(main_path),
               str(member_path), "-o", str(out), "--data", str(data), "--percentile", "50"]
    subprocess.run(command, check=True, capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    model = grappa_like.load_model(str(out))
    scores = [grappa_like.ood_score(smiles, model) for smiles in ("CCO", "CC(N)=O")]
    assert model.ood_threshold == pytest.approx(float(np.median(scores)), rel=1e-12)
    info = model.metadata["ensemble_metadata"]
    assert [m["file"] for m in info["members"]] == ["member.npz"]
    assert info["members"][0]["validation_force_rmse_kcal_per_mol_angstrom"] == 1.0
    assert info["validation_scores"]["molecules"] == 2
    for name, tensor in main_state.items():  # the main network is copied unchanged
        assert np.array_equal(model.network.weights[name], tensor.numpy())

    other = dict(tiny_payload(lj_table), validation_molecules=["benzene"])
    model_file.save(str(member_path), other)
    failed = subprocess.run(command[:-2], capture_output=True, text=True)
    assert failed.returncode != 0 and "validation molecules differ" in failed.stderr


def test_library_manifest_has_the_score_and_warns(flagged_model_path, tmp_path, caplog):
    path, molecules = flagged_model_path
    flagged, unflagged = molecules
    smi = _smiles_file(tmp_path, molecules)
    out = tmp_path / "library"
    with caplog.at_level("INFO", logger="grappa_like"):
        assert main(["parameterize", str(smi), "-o", str(out), "--model", path, "--library", "--ood-score"]) == 0
    _assert_one_warning_naming(flagged, caplog)
    assert any("1 above the OOD threshold" in r.getMessage() for r in caplog.records)
    lines = (out / "manifest.tsv").read_text().splitlines()
    assert lines[1].split("\t")[-1] == "ood_score"
    scores = {line.split("\t")[0]: float(line.split("\t")[-1]) for line in lines[2:]}
    model = grappa_like.load_model(path)
    assert scores[flagged] > model.ood_threshold > scores[unflagged]
    assert scores[flagged] == pytest.approx(grappa_like.ood_score(molecules[flagged], model), abs=1e-4)
