"""Evaluation: metrics are exact on synthetic labels made from known parameters; file reader edge cases."""

import h5py
import numpy as np
import pytest

from grappa_like.data import read_records
from grappa_like.evaluation import (
    evaluate_records, markdown_table, openmm_energies_forces, parameters_energies_forces, pooled,
)
from grappa_like.molecule import from_smiles

KCAL_TO_KJ = 4.184


def _write_qm_file(path, molecules, perturb_energy=0.0, perturb_force=0.0, with_forces=True):
    """Write a grappa_like-qm-v1 file whose 'dft' labels are the given model's own energies/forces."""
    with h5py.File(path, "w") as handle:
        handle.attrs["layout"] = "grappa_like-qm-v1"
        for index, (name, molecule, parameters) in enumerate(molecules):
            rng = np.random.default_rng(index)
            base = molecule.conformer_positions()
            positions = base[None] + rng.normal(0, 0.03, size=(4, *base.shape))  # Å
            energies, forces = parameters_energies_forces(parameters, positions / 10.0)
            group = handle.create_group(name)
            group.attrs.update(smiles=molecule.mapped_smiles(), name=name, subset="synthetic",
                               total_charge=molecule.total_charge)
            group["atomic_numbers"] = molecule.atomic_numbers.astype(np.int8)
            group["conformations"] = positions.astype(np.float32)
            # kcal/mol: the model's own energy plus a constant (must vanish) plus a known perturbation
            energy_kcal = energies / KCAL_TO_KJ + 1000.0 + perturb_energy * np.array([1, -1, 1, -1])
            group.create_dataset("energy/dft", data=energy_kcal)
            if with_forces:
                group.create_dataset("forces/dft", data=(forces / 41.84 + perturb_force).astype(np.float32))


@pytest.fixture
def synthetic(random_model):
    molecules = []
    for name, smiles in [("ethanol", "CCO"), ("acetate", "CC(=O)[O-]")]:
        molecule = from_smiles(smiles, name)
        molecules.append((name, molecule, random_model.predict([molecule])[0]))
    return molecules


def test_model_on_its_own_labels_has_zero_error(tmp_path, synthetic, random_model):
    path = tmp_path / "own.h5"
    _write_qm_file(path, synthetic)
    result = evaluate_records(list(read_records(str(path), ("dft",))), random_model)
    summary = result["groups"]["synthetic/dft"]["grappa_like"]
    assert summary["molecules"] == 2 and summary["conformations"] == 8
    assert summary["energy_rmse"] < 1e-4
    assert summary["force_rmse"] < 1e-3


def test_known_perturbation_gives_known_rmse(tmp_path, synthetic, random_model):
    path = tmp_path / "perturbed.h5"
    _write_qm_file(path, synthetic, perturb_energy=0.5, perturb_force=0.25)
    result = evaluate_records(list(read_records(str(path), ("dft",))), random_model)
    summary = result["groups"]["synthetic/dft"]["grappa_like"]
    assert summary["energy_rmse"] == pytest.approx(0.5, abs=1e-4)   # ±0.5 kcal/mol, mean-centred
    assert summary["force_rmse"] == pytest.approx(0.25, abs=1e-3)   # every component +0.25


def test_energy_only_labels_are_read_and_reported(tmp_path, synthetic, random_model):
    path = tmp_path / "energies.h5"
    _write_qm_file(path, synthetic, with_forces=False)
    records = list(read_records(str(path), ("dft",)))
    assert all(record.forces is None for record in records)
    summary = evaluate_records(records, random_model)["groups"]["synthetic/dft"]["grappa_like"]
    assert summary["force_rmse"] is None and summary["energy_rmse"] < 1e-4
    assert "–" in markdown_table({"synthetic/dft": {"grappa_like": summary}}, ("grappa_like",))


def test_a_failing_baseline_is_reported_not_fatal(tmp_path, synthetic, random_model):
    path = tmp_path / "own.h5"
    _write_qm_file(path, synthetic)

    def broken(record):
        raise RuntimeError("no AmberTools here")

    result = evaluate_records(list(read_records(str(path), ("dft",))), random_model, {"broken": broken})
    assert [f["method"] for f in result["failures"]] == ["broken", "broken"]
    assert "broken" not in result["groups"]["synthetic/dft"]


def test_openmm_and_torch_evaluation_agree(synthetic):
    from grappa_like.writers import to_openmm_system

    _, molecule, parameters = synthetic[1]
    positions = molecule.conformer_positions()[None] / 10.0
    e_torch, f_torch = parameters_energies_forces(parameters, positions)
    e_mm, f_mm = openmm_energies_forces(to_openmm_system(parameters, molecule.atomic_numbers), positions)
    assert e_torch == pytest.approx(e_mm, rel=1e-6)
    assert np.abs(f_torch - f_mm).max() < 1e-5 * np.abs(f_mm).max()


def test_pooled_weights_groups_by_conformations():
    groups = {"a": {"m": {"molecules": 1, "conformations": 1, "energy_rmse": 1.0, "force_rmse": 2.0}},
              "b": {"m": {"molecules": 1, "conformations": 3, "energy_rmse": 3.0, "force_rmse": 2.0}}}
    summary = pooled(groups, "m")
    assert summary["energy_rmse"] == pytest.approx(np.sqrt((1 + 27) / 4))
    assert summary["force_rmse"] == pytest.approx(2.0)


def test_evaluate_split_model_takes_the_other_models_validation_molecules(tmp_path, synthetic, random_payload):
    import json

    from grappa_like import model_file
    from grappa_like.cli import main

    path = tmp_path / "own.h5"
    _write_qm_file(path, synthetic)
    evaluated, splitter = tmp_path / "evaluated.pt", tmp_path / "splitter.pt"
    model_file.save(str(evaluated), dict(random_payload, validation_molecules=["ethanol"]))
    model_file.save(str(splitter), dict(random_payload, validation_molecules=["acetate"]))
    counts = {}
    for name, extra in (("own", []), ("other", ["--split-model", str(splitter)])):
        prefix = tmp_path / name
        assert main(["evaluate", "--model", str(evaluated), "--data", f"{path}:dft", "--split", "validation",
                     "--baselines", "", "-o", str(prefix), *extra]) == 0
        result = json.loads((tmp_path / f"{name}.json").read_text())
        counts[name] = sorted({row["mol_id"] for row in _molecule_rows(result)}), result["split"]
    assert counts["own"] == (["ethanol"], "validation")
    assert counts["other"] == (["acetate"], "validation of splitter.pt")


def _molecule_rows(result):
    """Every per-molecule row of an evaluate JSON, whatever the nesting by group and method."""
    rows, stack = [], [result["per_molecule"]]
    while stack:
        item = stack.pop()
        if isinstance(item, dict) and "mol_id" in item:
            rows.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return rows
