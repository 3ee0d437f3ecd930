"""Learning curve: validation and benchmark force RMSE of models trained on growing fractions of the data.

Each model (trained with ``grappa-like train --train-fraction F``, same seed and validation split)
is evaluated on its validation molecules and on the test-only benchmark sets (force-component
RMSE, kcal/mol/Å, pooled per set; no baselines needed). Writes a Markdown table and a PNG.
Usage: OMP_NUM_THREADS=1 python scripts/learning_curve.py runs/lc_0.25.pt runs/lc_0.5.pt models/grappa-like-v1.pt \
           --output-dir docs/figures
"""

from __future__ import annotations

import argparse
import os

import h5py

import grappa_like
from grappa_like.data import read_records
from grappa_like.evaluation import evaluate_records, pooled
from harness import publish

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
BENCHMARKS = ("rmd17", "3bpa", "peptides-dft")


def force_rmse(model, records) -> float:
    return pooled(evaluate_records(records, model)["groups"], "grappa_like")["force_rmse"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", default=os.path.join(SHARED, "data", "train-v0.h5"))
    parser.add_argument("--output-dir", default=".")
    args = parser.parse_args()
    benchmark_records = {name: list(read_records(os.path.join(SHARED, "benchmarks", f"{name}.h5"), ("dft",)))
                         for name in BENCHMARKS}
    rows = []
    for path in args.models:
        model = grappa_like.load_model(path)
        config = model.metadata["training_data"]["training_config"]
        validation = set(model.metadata["validation_molecules"])
        records = list(read_records(args.data, mol_ids=sorted(validation)))
        row = {"model": os.path.basename(path), "fraction": config.get("train_fraction", 1.0),
               "validation": force_rmse(model, records)}
        row.update({name: force_rmse(model, recs) for name, recs in benchmark_records.items()})
        rows.append(row)
    rows.sort(key=lambda r: r["fraction"])
    with h5py.File(args.data, "r") as handle:
        n_train = len(handle) - len(validation)  # every molecule of the file not in the validation split
    lines = ["| model | training fraction | training molecules | validation F | " + " | ".join(f"{b} F" for b in BENCHMARKS) + " |",
             "|---|---|---|---|" + "---|" * len(BENCHMARKS)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['fraction']:.2f} | {round(r['fraction'] * n_train)} | {r['validation']:.2f} | "
                     + " | ".join(f"{r[b]:.2f}" for b in BENCHMARKS) + " |")
    os.makedirs(args.output_dir, exist_ok=True)
    publish(lines, os.path.join(args.output_dir, "learning_curve.md"))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 4))
    sizes = [r["fraction"] * n_train for r in rows]
    for key in ("validation", *BENCHMARKS):
        axis.plot(sizes, [r[key] for r in rows], marker="o", label=key)
    axis.set(xscale="log", xlabel="training molecules", ylabel="force RMSE (kcal/mol/Å)",
             title="learning curve (train-v0 subsets)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(os.path.join(args.output_dir, "learning_curve.png"), dpi=110)


if __name__ == "__main__":
    main()
