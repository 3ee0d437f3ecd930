"""Does the out-of-domain score rank molecules by their actual force error?

For every molecule (group) of each test-only benchmark set in ../shared/benchmarks and of the
model's validation molecules in the training data: its OOD score (grappa_like.ood, the production
score on seeded ETKDG conformers), the same ensemble spread on the molecule's own QM conformations
(a diagnostic: it separates the score from the choice of conformers), and the main network's
force-component RMSE against the reference forces (kcal/mol/Å). Then the Spearman rank
correlation per set, over the benchmark sets pooled, and over everything. Nothing is fitted or
tuned on the benchmarks. Writes a Markdown table, a JSON file with every molecule, and a log-log
scatter plot.

Usage: OMP_NUM_THREADS=1 python scripts/ood_benchmark.py runs/grappa-like-v1-ensemble.pt \
           --output-dir docs/figures
"""

from __future__ import annotations

import argparse
import json
import os
import time

import h5py
import numpy as np
from scipy.stats import spearmanr

import grappa_like
from grappa_like import ood
from grappa_like.data import DEFAULT_LABEL_PREFERENCE, read_records
from grappa_like.evaluation import evaluate_records
from harness import publish

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
BENCHMARKS = ("rmd17", "3bpa", "acac", "peptides-dft", "druglike-dft")


def score_records(records, model, set_name: str) -> list[dict]:
    """One row per record with forces: set, mol_id, OOD score, spread on the QM conformations, force RMSE."""
    records = [record for record in records if record.forces is not None]
    errors = {row["mol_id"]: row["force_rmse"]
              for methods in evaluate_records(records, model)["per_molecule"].values()
              for row in methods["grappa_like"]}
    rows = []
    for record in records:
        start = time.perf_counter()
        parameters = model.predict([record.molecule])[0]
        middle = time.perf_counter()
        score = ood.ensemble_force_spread(record.molecule, model, parameters=parameters)
        end = time.perf_counter()
        rows.append({"set": set_name, "mol_id": record.mol_id, "atoms": record.molecule.n_atoms,
                     "conformations": len(record.positions), "ood_score": score,
                     "spread_on_qm_conformations": ood.ensemble_force_spread(record.molecule, model, positions_nm=record.positions),
                     "force_rmse": errors[record.mol_id], "predict_seconds": middle - start,
                     "score_seconds": end - middle})
    return rows


def spearman(rows: list[dict], key: str = "ood_score") -> tuple[float, float]:
    """Spearman rank correlation (rho, p) of ``key`` against the force RMSE; nan below 3 molecules or
    when ``key`` is the same for all (e.g. the atom count of one molecule's tautomers)."""
    if len(rows) < 3 or len({r[key] for r in rows}) < 2:
        return float("nan"), float("nan")
    result = spearmanr([r[key] for r in rows], [r["force_rmse"] for r in rows])
    return float(result.statistic), float(result.pvalue)


def table(rows: list[dict], threshold: float) -> list[str]:
    """Markdown table: per set and pooled, molecules, Spearman of both scores, share above the threshold."""
    sets = {name: [r for r in rows if r["set"] == name] for name in dict.fromkeys(r["set"] for r in rows)}
    sets["benchmarks pooled"] = [r for r in rows if r["set"] != "validation"]
    sets["all pooled"] = rows
    lines = ["| set | molecules | median force RMSE | median OOD score | Spearman ρ (p), OOD score | "
             "Spearman ρ, spread on QM conformations | Spearman ρ, atom count (baseline) | above threshold |",
             "|---|---|---|---|---|---|---|---|"]
    for name, subset in sets.items():
        rho, p = spearman(subset)
        rho_qm, _ = spearman(subset, "spread_on_qm_conformations")
        rho_atoms, _ = spearman(subset, "atoms")
        above = sum(r["ood_score"] > threshold for r in subset)
        cell = "–" if np.isnan(rho) else f"{rho:.2f} ({p:.2g})"
        cell_qm = "–" if np.isnan(rho_qm) else f"{rho_qm:.2f}"
        cell_atoms = "–" if np.isnan(rho_atoms) else f"{rho_atoms:.2f}"
        lines.append(f"| {name} | {len(subset)} | {np.median([r['force_rmse'] for r in subset]):.2f} | "
                     f"{np.median([r['ood_score'] for r in subset]):.2f} | {cell} | {cell_qm} | {cell_atoms} | {above} |")
    return lines


def plot(rows: list[dict], threshold: float, path: str) -> None:
    """Log-log scatter of force RMSE against OOD score, one colour per set, threshold as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.8))
    for index, name in enumerate(dict.fromkeys(r["set"] for r in rows)):
        subset = [r for r in rows if r["set"] == name]
        rho, _ = spearman(subset)
        label = f"{name} (n={len(subset)}" + ("" if np.isnan(rho) else f", ρ={rho:.2f}") + ")"
        axis.scatter([r["ood_score"] for r in subset], [r["force_rmse"] for r in subset], s=14 if name == "validation" else 30,
                     alpha=0.5 if name == "validation" else 0.9, marker="o" if name == "validation" else "os^Dv"[index % 5],
                     label=label)
    axis.axvline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold:.2f}")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("OOD score: ensemble force spread on ETKDG conformers (kcal/mol/Å)")
    axis.set_ylabel("force RMSE of the main network vs QM (kcal/mol/Å)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=130)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model file with an ensemble (scripts/assemble_ensemble.py)")
    parser.add_argument("--data", default=os.path.join(SHARED, "data", "train-v0.h5"),
                        help="training data file holding the model's validation molecules")
    parser.add_argument("--output-dir", default="docs/figures")
    args = parser.parse_args()
    model = grappa_like.load_model(args.model)
    if not model.members:
        raise SystemExit(f"{args.model}: no ensemble; assemble one with scripts/assemble_ensemble.py")
    start = time.perf_counter()
    rows = []
    for name in BENCHMARKS:
        rows += score_records(read_records(os.path.join(SHARED, "benchmarks", f"{name}.h5"), ("dft",)), model, name)
    validation = set(model.metadata["validation_molecules"])
    preference = tuple(model.metadata["training_data"].get("label_preference", DEFAULT_LABEL_PREFERENCE))
    with h5py.File(args.data, "r") as handle:
        present = sorted(validation.intersection(handle.keys()))
    rows += score_records(read_records(args.data, preference, mol_ids=present), model, "validation")
    seconds = time.perf_counter() - start

    threshold = model.ood_threshold
    lines = table(rows, threshold)
    cost = [r["score_seconds"] for r in rows]
    predict = [r["predict_seconds"] for r in rows]
    lines += ["", f"Model {os.path.basename(args.model)} (main + {len(model.members)} members), threshold "
              f"{threshold:.3f} kcal/mol/Å. Cost of the score on top of the main network's parameters: median "
              f"{np.median(cost) * 1000:.0f} ms/molecule (max {max(cost) * 1000:.0f} ms; the parameters alone: median "
              f"{np.median(predict) * 1000:.0f} ms); whole run {seconds:.0f} s, one thread."]
    os.makedirs(args.output_dir, exist_ok=True)
    publish(lines, os.path.join(args.output_dir, "ood_benchmark.md"))
    with open(os.path.join(args.output_dir, "ood_benchmark.json"), "w") as handle:
        json.dump({"model": os.path.basename(args.model), "model_sha256": model.checksum, "threshold": threshold,
                   "molecules": rows}, handle, indent=1)
    plot(rows, threshold, os.path.join(args.output_dir, "ood_benchmark.png"))


if __name__ == "__main__":
    main()
