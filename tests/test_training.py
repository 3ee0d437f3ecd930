"""Training: a short run on a few molecules writes a loadable model, stores its split, and resumes."""

import datetime
import json
import os

import h5py
import numpy as np
import pytest
import torch

from grappa_like import errors, model_file
from grappa_like.api import Model
from grappa_like.data import (DEFAULT_LABEL_PREFERENCE, keep_same_molecules_together, read_records, split_by_molecule,
                              split_per_file)
from grappa_like.lj_types import find_gaff2_dat, read_gaff2_lj_table
from grappa_like.training import TrainingConfig, train

TRAIN_FILE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "train-v0.h5")
needs_data = pytest.mark.skipif(not os.path.exists(TRAIN_FILE), reason="shared/data/train-v0.h5 not present")


def _has_gaff2():
    try:
        find_gaff2_dat()
        return True
    except Exception:
        return False


@needs_data
def test_reader_converts_units_once():
    with h5py.File(TRAIN_FILE) as handle:
        mol_id = "capped_ALA"
        raw_positions = handle[mol_id]["conformations"][:]
        raw_energy = handle[mol_id]["energy"]["ani2x"][:]
        raw_forces = handle[mol_id]["forces"]["ani2x"][:]
    record = next(read_records(TRAIN_FILE, label_preference=("ani2x", "gfn2"), mol_ids=["capped_ALA"]))
    assert record.label == "ani2x"
    assert np.allclose(record.positions, raw_positions * 0.1)
    assert np.allclose(record.energies, raw_energy * 4.184)
    assert np.allclose(record.forces, raw_forces * 41.84, rtol=1e-6)


@needs_data
def test_label_falls_back_to_gfn2_for_charged_molecules():
    record = next(read_records(TRAIN_FILE, mol_ids=["capped_ARG"]))
    assert record.label == "gfn2"


def test_split_is_by_molecule_seeded_and_order_independent():
    ids = [f"m{i}" for i in range(50)]
    train_a, validation_a = split_by_molecule(ids, 0.2, seed=1)
    train_b, validation_b = split_by_molecule(list(reversed(ids)), 0.2, seed=1)
    assert validation_a == validation_b and train_a == train_b
    assert not set(train_a) & set(validation_a) and len(validation_a) == 10
    assert split_by_molecule(ids, 0.2, seed=2)[1] != validation_a


def test_same_molecule_under_two_ids_is_never_on_both_sides():
    identity = {"a": "CCO", "b": "CCO", "c": "CCN", "d": "c1ccccc1", "e": "CCC"}
    train_ids, validation_ids = keep_same_molecules_together(["b", "c", "d", "e"], ["a"], identity)
    assert validation_ids == ["a", "b"] and train_ids == ["c", "d", "e"]
    # an earlier model's validation molecules stay in validation; ids the data lacks are ignored
    train_ids, validation_ids = keep_same_molecules_together(["b", "c", "d", "e"], ["a"], identity, ["d", "zz"])
    assert validation_ids == ["a", "b", "d"] and train_ids == ["c", "e"]
    assert keep_same_molecules_together(["c", "d"], ["e"], identity) == (["c", "d"], ["e"])


@needs_data
@pytest.mark.skipif(not _has_gaff2(), reason="AmberTools' gaff2.dat not installed")
def test_validation_from_keeps_an_earlier_models_validation_molecules(tmp_path):
    small = {"width": 16, "n_layers": 1, "head_hidden": 16, "attention_heads": 2}
    first = str(tmp_path / "first.npz")
    train([TRAIN_FILE], first, read_gaff2_lj_table(),
          TrainingConfig(epochs=1, batch_molecules=4, validation_fraction=0.25, model=small),
          max_molecules=8, progress=False, log=lambda line: None)
    earlier = model_file.load(first)["validation_molecules"]
    second = str(tmp_path / "second.npz")
    train([TRAIN_FILE], second, read_gaff2_lj_table(),
          TrainingConfig(epochs=1, batch_molecules=4, validation_fraction=0.25, model=small, seed=7,
                         validation_from=first), max_molecules=8, progress=False, log=lambda line: None)
    assert set(earlier) <= set(model_file.load(second)["validation_molecules"])


@needs_data
@pytest.mark.skipif(not _has_gaff2(), reason="AmberTools' gaff2.dat not installed")
def test_short_training_writes_model_and_resumes(tmp_path):
    out = str(tmp_path / "tiny.npz")
    config = TrainingConfig(epochs=2, batch_molecules=4, validation_fraction=0.25,
                            model={"width": 16, "n_layers": 1, "head_hidden": 16, "attention_heads": 2})
    logs = []
    state = train([TRAIN_FILE], out, read_gaff2_lj_table(), config, max_molecules=8, progress=False, log=logs.append)
    assert state["epoch"] == 2 and os.path.exists(out) and os.path.exists(out + ".ckpt")
    payload = model_file.load(out)
    assert len(payload["validation_molecules"]) == 2
    assert payload["training_data"]["label_preference"] == list(DEFAULT_LABEL_PREFERENCE)
    model = Model.from_payload(payload, out)
    assert np.isfinite(model.predict([read_records(TRAIN_FILE, mol_ids=["capped_ALA"]).__next__().molecule])[0].bond_k).all()

    config.epochs = 3
    state = train([TRAIN_FILE], out, read_gaff2_lj_table(), config, max_molecules=8, progress=False, log=logs.append)
    assert any("resumed" in line for line in logs)
    assert [entry["epoch"] for entry in state["history"]] == [1, 2, 3]


@needs_data
@pytest.mark.skipif(not _has_gaff2(), reason="AmberTools' gaff2.dat not installed")
def test_train_fraction_keeps_the_validation_split(tmp_path):
    small = {"width": 16, "n_layers": 1, "head_hidden": 16, "attention_heads": 2}
    logs = {}
    payloads = {}
    for fraction in (1.0, 0.5):
        out = str(tmp_path / f"f{fraction}.npz")
        config = TrainingConfig(epochs=1, batch_molecules=4, validation_fraction=0.25, train_fraction=fraction,
                                model=small)
        lines = []
        train([TRAIN_FILE], out, read_gaff2_lj_table(), config, max_molecules=12, progress=False, log=lines.append)
        logs[fraction], payloads[fraction] = lines[0], model_file.load(out)
    assert payloads[0.5]["validation_molecules"] == payloads[1.0]["validation_molecules"]
    assert logs[1.0].startswith("9 training") and logs[0.5].startswith("4 training")


def test_adding_a_file_leaves_the_split_of_the_others_unchanged():
    first = [f"a{i}" for i in range(40)]
    alone = split_per_file([first], 0.1, seed=3)
    assert alone == split_by_molecule(first, 0.1, seed=3)
    second = [f"b{i}" for i in range(30)] + first[:10]   # ten molecules met again in the second file
    train, validation = split_per_file([first, second], 0.1, seed=3)
    assert set(alone[1]) <= set(validation) and set(alone[0]) <= set(train)
    assert not set(train) & set(validation)
    assert len(set(validation) - set(alone[1])) == 3     # 10 % of the 30 new molecules


@needs_data
@pytest.mark.skipif(not _has_gaff2(), reason="AmberTools' gaff2.dat not installed")
def test_fine_tuning_starts_from_the_model_and_refuses_a_leaky_split(tmp_path):
    small = {"width": 16, "n_layers": 1, "head_hidden": 16, "attention_heads": 2}
    start = str(tmp_path / "start.npz")
    train([TRAIN_FILE], start, read_gaff2_lj_table(),
          TrainingConfig(epochs=1, batch_molecules=4, validation_fraction=0.25, model=small),
          max_molecules=8, progress=False, log=lambda line: None)
    tuned = str(tmp_path / "tuned.npz")
    config = TrainingConfig(epochs=1, batch_molecules=4, validation_fraction=0.25, model=small, init_from=start,
                            learning_rate=1e-12)
    train([TRAIN_FILE], tuned, read_gaff2_lj_table(), config, max_molecules=8, progress=False, log=lambda line: None)
    before, after = model_file.load(start)["state_dict"], model_file.load(tuned)["state_dict"]
    assert all(np.allclose(before[name], after[name], atol=1e-6) for name in before)

    leaky = TrainingConfig(epochs=1, batch_molecules=4, validation_fraction=0.5, model=small, init_from=start)
    with pytest.raises(errors.TrainingSetupError, match="trained on .* validation split"):
        train([TRAIN_FILE], str(tmp_path / "leaky.npz"), read_gaff2_lj_table(), leaky, max_molecules=8,
              progress=False, log=lambda line: None)


@needs_data
@pytest.mark.skipif(not _has_gaff2(), reason="AmberTools' gaff2.dat not installed")
def test_two_process_ddp_matches_one_process(tmp_path):
    """``torchrun --nproc_per_node=2 grappa-like train`` gives the loss curve of one process (7 training molecules
    in batches of 3: shards of 2 and 1, and a last batch of 1 that leaves rank 1 without a molecule)."""
    import shutil
    import subprocess
    import sys

    small = {"width": 16, "n_layers": 1, "head_hidden": 16, "attention_heads": 2}
    reference = train([TRAIN_FILE], str(tmp_path / "one.npz"), read_gaff2_lj_table(),
                      TrainingConfig(epochs=2, batch_molecules=3, model=small), max_molecules=8, progress=False,
                      log=lambda line: None)
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    grappa_like = shutil.which("grappa-like", path=os.path.dirname(sys.executable))
    out = tmp_path / "two.npz"
    process = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", grappa_like, "train", "--data", TRAIN_FILE, "--out", str(out),
         "--epochs", "2", "--batch-molecules", "3", "--max-molecules", "8", "--model-config", json.dumps(small),
         "--no-progress"],
        env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stderr.count("epoch 1:") == 1  # only rank 0 logs
    history = torch.load(str(out) + ".ckpt", weights_only=False)["state"]["history"]
    assert len(history) == len(reference["history"]) == 2
    for ours, theirs in zip(history, reference["history"]):
        for key in theirs["train"]:
            assert ours["train"][key] == pytest.approx(theirs["train"][key], rel=1e-4, abs=1e-7), key
        for key in theirs["validation"]:
            assert ours["validation"][key] == pytest.approx(theirs["validation"][key], rel=1e-4), key
    assert model_file.load(str(out))["validation_molecules"] == model_file.load(str(tmp_path / "one.npz"))["validation_molecules"]


GRADIENT_MOLECULES = ["capped_ALA", "capped_ARG", "capped_ASH", "capped_ASN", "capped_ASP"]


def _gradient_setup():
    """The same network and five prepared molecules in every process."""
    from grappa_like.model import ForceFieldModel
    from grappa_like.training import lj_tensors, prepare

    lj_table = read_gaff2_lj_table()
    torch.manual_seed(7)
    network = ForceFieldModel({"width": 16, "n_layers": 1, "head_hidden": 16, "attention_heads": 2},
                              lj_table.atomic_numbers)
    examples = [prepare(record, lj_table) for record in read_records(TRAIN_FILE, mol_ids=GRADIENT_MOLECULES)]
    return network, examples, TrainingConfig(), lj_tensors(lj_table)


def _ddp_gradients(rank, world, init_file, out_path):
    """One rank: DDP gradients of shard_loss for a batch of 5 molecules and for a batch of 1 (rank 1 gets none)."""
    from grappa_like.training import shard_loss

    torch.set_num_threads(1)
    # a stuck collective raises after 2 minutes (mp.spawn then fails the test) instead of hanging the run
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                                         timeout=datetime.timedelta(seconds=120))
    try:
        network, examples, config, tables = _gradient_setup()
        forward = torch.nn.parallel.DistributedDataParallel(network, find_unused_parameters=True)
        results = []
        for chunk in (examples, examples[:1]):
            network.zero_grad()
            loss, parts = shard_loss(forward, chunk, config, tables, rank, world)
            loss.backward()
            results.append(({name: p.grad.clone() for name, p in network.named_parameters() if p.grad is not None},
                            parts))
        if rank == 0:
            torch.save(results, out_path)
    finally:
        torch.distributed.destroy_process_group()
    # Leave without deallocating the DDP wrapper: once the group is destroyed its reducer holds the last
    # reference to it, and that destructor joins gloo's thread while holding the GIL, which the thread
    # may need to free a finished work item (seen twice: a child stuck in ~ProcessGroupGloo joining pt_gloo_runloop).
    os._exit(0)


@needs_data
@pytest.mark.skipif(not _has_gaff2(), reason="AmberTools' gaff2.dat not installed")
def test_ddp_gradient_equals_one_process_gradient(tmp_path):
    """The DDP-averaged gradient of the shards is the one-process gradient of the whole batch (not half, not
    weighted by shard size), and the reported loss parts are the whole batch's."""
    from grappa_like.training import batch_loss

    out_path = tmp_path / "gradients.pt"
    torch.multiprocessing.spawn(_ddp_gradients, args=(2, str(tmp_path / "rendezvous"), str(out_path)), nprocs=2)
    distributed = torch.load(out_path, weights_only=False)
    network, examples, config, tables = _gradient_setup()
    for chunk, (gradients, parts) in zip((examples, examples[:1]), distributed):
        network.zero_grad()
        loss, reference_parts = batch_loss(network, chunk, config, tables)
        loss.backward()
        assert parts == pytest.approx(reference_parts, rel=1e-5, abs=1e-9)
        reference = {name: p.grad for name, p in network.named_parameters() if p.grad is not None}
        assert set(gradients) == set(reference)
        for name, gradient in reference.items():
            assert torch.allclose(gradients[name], gradient, rtol=1e-4, atol=1e-5), name


@needs_data
@pytest.mark.skipif(not _has_gaff2(), reason="AmberTools' gaff2.dat not installed")
def test_init_seed_changes_the_weights_not_the_split(tmp_path):
    small = {"width": 16, "n_layers": 1, "head_hidden": 16, "attention_heads": 2}
    payloads = []
    for init_seed in (1, 2):
        out = str(tmp_path / f"seed{init_seed}.npz")
        config = TrainingConfig(epochs=1, batch_molecules=4, validation_fraction=0.25, init_seed=init_seed, model=small)
        train([TRAIN_FILE], out, read_gaff2_lj_table(), config, max_molecules=8, progress=False, log=lambda line: None)
        payloads.append(model_file.load(out))
    assert payloads[0]["validation_molecules"] == payloads[1]["validation_molecules"]
    assert not all(np.array_equal(payloads[0]["state_dict"][name], payloads[1]["state_dict"][name])
                   for name in payloads[0]["state_dict"])


@needs_data
@pytest.mark.skipif(not _has_gaff2(), reason="AmberTools' gaff2.dat not installed")
def test_charges_learn_from_forces_only_when_asked():
    """Without --charges-follow-qm the charge head learns only from AM1-BCC; with it, also from the forces."""
    from dataclasses import replace

    from grappa_like.training import batch_loss

    network, examples, config, tables = _gradient_setup()
    gradients = {}
    for follow in (False, True):
        only_forces = replace(config, energy_weight=0.0, charge_weight=0.0, lj_weight=0.0, torsion_prior_weight=0.0,
                              charges_follow_qm=follow)
        network.zero_grad()
        loss, _ = batch_loss(network, examples, only_forces, tables)
        loss.backward()
        gradients[follow] = sum(int(torch.count_nonzero(p.grad)) for p in network.charge_head.parameters()
                                if p.grad is not None)
    assert gradients[False] == 0
    assert gradients[True] > 0  # (its last layer starts at zero, so only that layer has a gradient at first)


@needs_data
@pytest.mark.skipif(not _has_gaff2(), reason="AmberTools' gaff2.dat not installed")
def test_stopped_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    """2 epochs in one go vs 1 epoch, a stop, and ``--resume`` for the second: identical weights, best state, history."""
    import shutil

    from grappa_like.cli import main

    small = {"width": 16, "n_layers": 1, "head_hidden": 16, "attention_heads": 2}
    config = TrainingConfig(epochs=2, batch_molecules=3, model=small)
    straight = str(tmp_path / "straight.npz")
    train([TRAIN_FILE], straight, read_gaff2_lj_table(), config, max_molecules=8, progress=False, log=lambda line: None)

    first = str(tmp_path / "first.npz")
    logs = []
    state = train([TRAIN_FILE], first, read_gaff2_lj_table(), config, max_molecules=8, progress=False,
                  log=logs.append, stop_after_epochs=1)
    assert state["epoch"] == 1 and any("stopped after 1 epochs" in line for line in logs)
    saved = str(tmp_path / "after-epoch-1.ckpt")   # resume from a copy, into another --out, through the CLI
    shutil.copy(first + ".ckpt", saved)
    resumed = str(tmp_path / "resumed.npz")
    arguments = ["train", "--data", TRAIN_FILE, "--out", resumed, "--epochs", "2", "--batch-molecules", "3",
                 "--max-molecules", "8", "--model-config", json.dumps(small), "--no-progress"]
    assert main(arguments + ["--resume", saved]) == 0

    a, b = torch.load(straight + ".ckpt", weights_only=False), torch.load(resumed + ".ckpt", weights_only=False)
    assert a["state"]["epoch"] == b["state"]["epoch"] == 2
    for name, value in a["network"].items():
        assert torch.equal(value, b["network"][name]), name
    for name, value in a["state"]["best_state"].items():
        assert torch.equal(value, b["state"]["best_state"][name]), name
    assert a["state"]["history"] == b["state"]["history"]
    straight_weights, resumed_weights = model_file.load(straight)["state_dict"], model_file.load(resumed)["state_dict"]
    assert all(np.array_equal(straight_weights[name], resumed_weights[name]) for name in straight_weights)
    assert main(arguments + ["--resume", str(tmp_path / "missing.ckpt")]) == 2   # refused before reading data


def test_checkpoint_of_another_run_is_refused_naming_the_difference():
    from grappa_like.training import _check_same_run

    run = {"config": {"learning_rate": 5e-4, "seed": 1}, "files": [("a.h5", None, 1.0)], "validation_molecules": ["m1"]}
    _check_same_run("x.ckpt", run, run)
    _check_same_run("x.ckpt", None, run)   # format-1 checkpoints carry no identity
    other = {**run, "config": {"learning_rate": 1e-3, "seed": 1}, "validation_molecules": ["m2"]}
    with pytest.raises(errors.TrainingSetupError, match="config.learning_rate, validation_molecules differ"):
        _check_same_run("x.ckpt", other, run)
