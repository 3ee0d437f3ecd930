"""Training on a GPU (``--device cuda``) and DDP over GPUs with NCCL.

The GPU tests run only where torch sees a CUDA GPU; on CPU-only machines (CI) the error path runs.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from grappa_like import errors, model_file
from grappa_like.cli import main
from grappa_like.lj_types import read_gaff2_lj_table
from grappa_like.training import TrainingConfig, train, training_device
from test_training import TRAIN_FILE, _has_gaff2

SMALL = {"width": 16, "n_layers": 1, "head_hidden": 16, "attention_heads": 2}

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
needs_data = pytest.mark.skipif(not (os.path.exists(TRAIN_FILE) and _has_gaff2()),
                                reason="shared/data/train-v0.h5 or AmberTools' gaff2.dat not present")


def _assert_same_history(ours, reference, rel):
    assert len(ours) == len(reference)
    for mine, theirs in zip(ours, reference):
        for group in ("train", "validation"):
            for key, value in theirs[group].items():
                assert mine[group][key] == pytest.approx(value, rel=rel, abs=1e-6), (group, key)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_clear_error(tmp_path, caplog):
    with pytest.raises(errors.TrainingSetupError, match="no CUDA GPU"):
        training_device("cuda")
    assert training_device("cpu") == torch.device("cpu")
    out = tmp_path / "m.pt"
    code = main(["train", "--data", TRAIN_FILE, "--out", str(out), "--device", "cuda", "--epochs", "1"])
    assert code == 2
    assert "no CUDA GPU" in caplog.text
    assert not out.exists()


@needs_gpu
@needs_data
def test_gpu_training_gives_the_cpu_loss_curve_and_a_cpu_model_file(tmp_path):
    config = TrainingConfig(epochs=2, batch_molecules=3, model=SMALL)
    histories = {}
    for device in ("cpu", "cuda"):
        state = train([TRAIN_FILE], str(tmp_path / f"{device}.pt"), read_gaff2_lj_table(), config, max_molecules=8,
                      progress=False, log=print, device=device)
        histories[device] = state["history"]
    print(json.dumps(histories))
    _assert_same_history(histories["cuda"], histories["cpu"], rel=1e-3)
    saved = model_file.load(str(tmp_path / "cuda.pt"))
    assert all(tensor.device.type == "cpu" for tensor in saved["state_dict"].values())


@needs_gpu
@needs_data
def test_nccl_ddp_on_gpus_gives_the_one_process_loss_curve(tmp_path):
    """``torchrun --nproc_per_node=N grappa-like train --device cuda`` (N = GPUs, at most 2) on NCCL."""
    n_processes = min(2, torch.cuda.device_count())
    reference = train([TRAIN_FILE], str(tmp_path / "one.pt"), read_gaff2_lj_table(),
                      TrainingConfig(epochs=2, batch_molecules=3, model=SMALL), max_molecules=8, progress=False,
                      log=lambda line: None)
    entry = tmp_path / "entry.py"
    entry.write_text("import sys\nfrom grappa_like.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "ddp.pt"
    process = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_processes}", str(entry),
         "train",
         "--data", TRAIN_FILE, "--out", str(out), "--epochs", "2", "--batch-molecules", "3", "--max-molecules", "8",
         "--model-config", json.dumps(SMALL), "--device", "cuda", "--no-progress"],
        env=dict(os.environ, OMP_NUM_THREADS="1", NCCL_DEBUG="INFO"), capture_output=True, text=True, timeout=600)
    print(process.stderr[-4000:])
    assert process.returncode == 0, process.stderr[-3000:]
    assert "NCCL" in process.stdout + process.stderr  # the process group is NCCL's
    history = torch.load(str(out) + ".ckpt", weights_only=False, map_location="cpu")["state"]["history"]
    print(json.dumps({"cpu": reference["history"], "nccl": history}))
    _assert_same_history(history, reference["history"], rel=1e-3)
