"""Training speed: seconds per epoch on each device, side by side on the same data and network.

The molecules of the given QM files are prepared once (RDKit, off the clock); then for each device
(default: cpu, and cuda when torch sees a GPU) the shipped network config is trained for one
warm-up epoch and --epochs timed epochs (Adam, batches of 16 molecules, the training loss of
``grappa-like train``); the table gives the median seconds per epoch, molecules/s and the ratio to
the first device. CPU runs use --threads torch threads.

Usage: OMP_NUM_THREADS=1 python scripts/training_speed_benchmark.py --data FILE [FILE ...]
       [--devices cpu cuda] [--epochs 3] [--threads 1] [--output FILE]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from grappa_like.data import read_data
from grappa_like.lj_types import read_gaff2_lj_table
from grappa_like.model import ForceFieldModel
from grappa_like.training import TrainingConfig, batch_loss, lj_tensors, optimizer_step, prepare
from harness import publish


def epoch_seconds(examples, lj_table, device: str, epochs: int, config: TrainingConfig) -> list[float]:
    """Wall seconds of each of ``epochs`` timed epochs (after one warm-up epoch) on ``device``."""
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    network = ForceFieldModel(config.model, lj_table.atomic_numbers).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    on_device = [example.to(device) for example in examples]
    tables = lj_tensors(lj_table, device)
    times = []
    for epoch in range(epochs + 1):
        order = list(range(len(on_device)))
        random.shuffle(order)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for first in range(0, len(order), config.batch_molecules):
            chunk = [on_device[i] for i in order[first:first + config.batch_molecules]]
            optimizer_step(network, optimizer, batch_loss(network, chunk, config, tables)[0])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if epoch > 0:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lj_table = read_gaff2_lj_table()
    examples = [prepare(record, lj_table, weight) for record, weight in read_data(args.data)]
    conformations = sum(example.positions.shape[0] for example in examples)
    config = TrainingConfig()
    lines = [f"torch {torch.__version__}; {len(examples)} molecules, {conformations} conformations; "
             f"shipped network config, batches of {config.batch_molecules}; CPU with {args.threads} thread(s)"
             + (f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""),
             f"median of {args.epochs} epochs after one warm-up epoch", "",
             "| device | s per epoch | molecules/s | speed-up vs first |", "|---|---|---|---|"]
    first = None
    for device in args.devices:
        seconds = statistics.median(epoch_seconds(examples, lj_table, device, args.epochs, config))
        first = first or seconds
        lines.append(f"| {device} | {seconds:.2f} | {len(examples) / seconds:.1f} | {first / seconds:.2f} |")
        print(lines[-1], flush=True)
    publish(lines, args.output)


if __name__ == "__main__":
    main()
