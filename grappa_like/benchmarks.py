"""Benchmark suite over ``shared/benchmarks`` (test-only sets): errors vs DFT next to classical baselines.

Never train, tune or select a model on these sets; this module only reports. For every file the
model and the baselines are evaluated on exactly the same conformations (label ``dft``); the
overlap of benchmark molecules with the training data (canonical SMILES) is reported next to the
numbers. Outputs: ``benchmarks.md``, ``benchmarks.json``, a force parity plot per set and the
acetylacetone dihedral scan as a curve.
"""

from __future__ import annotations

import json
import os

import numpy as np
from rdkit import Chem

from grappa_like.data import read_records
from grappa_like.evaluation import (
    baseline_predictors, evaluate_records, markdown_table, parameters_energies_forces, pooled,
)
from grappa_like.units import KJ_TO_KCAL


# file -> baselines computed here (plus labels stored in the file)
BENCHMARK_SETS = {
    "rmd17.h5": ["gaff2"],
    "3bpa.h5": ["gaff2"],
    "acac.h5": ["gaff2"],
    "peptides-dft.h5": ["ff14sb", "label:amber99sbildn"],
    "druglike-dft.h5": ["gaff2"],
}


def canonical_smiles_of_file(path: str) -> set:
    """Canonical SMILES (no H, no atom maps) of every molecule of a QM file."""
    import h5py

    smiles = set()
    with h5py.File(path, "r") as handle:
        for group in handle.values():
            mol = Chem.MolFromSmiles(str(group.attrs["smiles"]))
            for atom in mol.GetAtoms():
                atom.SetAtomMapNum(0)
            smiles.add(Chem.MolToSmiles(Chem.RemoveHs(mol)))
    return smiles


def run_benchmarks(model, benchmark_dir: str, output_dir: str, training_files=(), cache_dir: str | None = None,
                   sets=None, progress: bool = False, log=print) -> dict:
    """Evaluate ``model`` and the baselines on each benchmark file; write Markdown, JSON and plots."""
    os.makedirs(output_dir, exist_ok=True)
    training_smiles = set().union(*(canonical_smiles_of_file(p) for p in training_files)) if training_files else set()
    results = {}
    sections = []
    for file_name, baseline_names in BENCHMARK_SETS.items():
        if sets and file_name.split(".")[0] not in sets:
            continue
        path = os.path.join(benchmark_dir, file_name)
        if not os.path.exists(path):
            log(f"skipping {file_name}: not found in {benchmark_dir}")
            continue
        records = list(read_records(path, ("dft",)))
        points: dict = {}
        baselines = baseline_predictors(baseline_names, cache_dir)
        result = evaluate_records(records, model, baselines, progress=progress, parity_points=points,
                                  on_error=lambda mol_id, method, error: log(f"{method} failed on {mol_id}: {error}"))
        overlap = sorted({r.name for r in records if r.molecule.smiles in training_smiles})
        result["overlap_with_training"] = overlap
        results[file_name] = result
        methods = ("grappa_like", *baselines)
        plot = os.path.join(output_dir, f"parity_{file_name.split('.')[0]}.png")
        parity_plot(points, methods, plot, title=file_name)
        sections.append(f"### {file_name}\n\n" + markdown_table(result["groups"], methods)
                        + per_molecule_table(result, methods)
                        + f"\nOverlap with training data (canonical SMILES): {', '.join(overlap) or 'none'}.  "
                        + f"Parity plot: `{os.path.basename(plot)}`\n")
        if any(r.mol_id == "acac_dihedral" for r in records):
            scan = next(r for r in records if r.mol_id == "acac_dihedral")
            curve = os.path.join(output_dir, "acac_dihedral_scan.png")
            result["dihedral_scan"] = dihedral_scan_plot(scan, model, baselines, curve)
            sections[-1] += f"Dihedral scan: `{os.path.basename(curve)}`\n"
    summary = summary_table(results)
    with open(os.path.join(output_dir, "benchmarks.md"), "w") as handle:
        handle.write(summary + "\n" + "\n".join(sections))
    with open(os.path.join(output_dir, "benchmarks.json"), "w") as handle:
        json.dump(results, handle, indent=1)
    return results


def summary_table(results: dict) -> str:
    """One line per benchmark file: force/energy RMSE of grappa_like and of the classical baseline, ratios."""
    lines = ["| set | molecules | conformations | baseline | grappa_like F | baseline F | F ratio | grappa_like E | baseline E | E ratio |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for file_name, result in results.items():
        ours = pooled(result["groups"], "grappa_like")
        for baseline in _methods(result) - {"grappa_like"}:
            theirs = pooled(result["groups"], baseline)
            lines.append("| " + " | ".join([
                file_name, str(ours["molecules"]), str(ours["conformations"]), baseline,
                _fmt(ours["force_rmse"]), _fmt(theirs["force_rmse"]), _ratio(ours["force_rmse"], theirs["force_rmse"]),
                _fmt(ours["energy_rmse"]), _fmt(theirs["energy_rmse"]), _ratio(ours["energy_rmse"], theirs["energy_rmse"]),
            ]) + " |")
    return "\n".join(lines) + "\n"


def per_molecule_table(result: dict, methods, max_molecules: int = 30) -> str:
    """Per-molecule force/energy RMSE of each method, for sets of a few named molecules ('' otherwise)."""
    rows = {}
    for group_results in result["per_molecule"].values():
        for method, entries in group_results.items():
            for entry in entries:
                rows.setdefault(entry["mol_id"], {})[method] = entry
    if not 1 < len(rows) <= max_molecules:
        return ""
    methods = [m for m in methods if any(m in r for r in rows.values())]
    lines = ["", "| molecule | " + " | ".join(f"{m} F | {m} E" for m in methods) + " |",
             "|---|" + "---|---|" * len(methods)]
    for mol_id, entries in rows.items():
        cells = []
        for method in methods:
            entry = entries.get(method)
            cells += [_fmt(entry and entry["force_rmse"]), _fmt(entry and entry["energy_rmse"])]
        lines.append(f"| {mol_id} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _methods(result: dict) -> set:
    return {method for methods in result["groups"].values() for method in methods}


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def _ratio(a, b) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}"


def parity_plot(points: dict, methods, path: str, title: str, max_points: int = 20000) -> None:
    """Force-component parity plot (QM vs predicted, kcal/mol/Å), one panel per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in methods if any(key[1] == m for key in points)]
    if not methods:
        return
    figure, axes = plt.subplots(1, len(methods), figsize=(4 * len(methods), 4), squeeze=False)
    rng = np.random.default_rng(0)
    for axis, method in zip(axes[0], methods):
        reference = np.concatenate([np.concatenate(v[0]) for k, v in points.items() if k[1] == method])
        predicted = np.concatenate([np.concatenate(v[1]) for k, v in points.items() if k[1] == method])
        if len(reference) > max_points:
            keep = rng.choice(len(reference), max_points, replace=False)
            reference, predicted = reference[keep], predicted[keep]
        limit = float(np.percentile(np.abs(reference), 99.9)) * 1.1
        axis.scatter(reference, predicted, s=2, alpha=0.3)
        axis.plot([-limit, limit], [-limit, limit], color="black", linewidth=0.8)
        rmse = float(np.sqrt(np.mean((reference - predicted) ** 2)))
        axis.set(xlim=(-limit, limit), ylim=(-limit, limit), xlabel="QM force component (kcal/mol/Å)",
                 ylabel="predicted (kcal/mol/Å)", title=f"{method}: RMSE {rmse:.2f}")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def dihedral_scan_plot(record, model, baselines: dict, path: str) -> dict:
    """Energy along a dihedral scan (relative to each method's minimum, kcal/mol) vs DFT; returns the curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    angles = np.array([float(x) for x in record.attrs["dihedral_angle_deg"].strip("[]").split()])
    order = np.argsort(angles)
    curves = {"dft": record.energies}
    parameters = model.predict([record.molecule])[0]
    curves["grappa_like"] = parameters_energies_forces(parameters, record.positions)[0]
    for name, predictor in baselines.items():
        try:
            curves[name] = predictor(record)[0]
        except Exception:
            continue
    figure, axis = plt.subplots(figsize=(6, 4))
    result = {"angles_deg": angles[order].tolist()}
    for name, energies in curves.items():
        relative = (np.asarray(energies) - np.min(energies)) * KJ_TO_KCAL
        axis.plot(angles[order], relative[order], marker="o", markersize=3, label=name)
        result[name] = relative[order].tolist()
    axis.set(xlabel="dihedral angle (degrees)", ylabel="energy above minimum (kcal/mol)",
             title="acetylacetone dihedral scan (DFT: PBE-D3/def2-SVP)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return result
