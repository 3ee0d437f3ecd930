"""How much do the two teachers, ANI-2x and GFN2-xTB, disagree, per family (subset) of molecules?

For every molecule of the given grappa_like-qm-v1 files that carries both labels (by default only
the molecules of a model's validation split): force-component RMS difference, RMS difference of
energies mean-centred per molecule, and the same for the relative energies of the MMFF94 minima
(rows of kind ``min``, each label relative to its own lowest minimum), which is what conformer-
energy sets measure. It says where the choice of teacher matters, not which teacher is right.
``--model-errors`` adds the model's force and energy RMSE against each teacher on the same
molecules (:func:`grappa_like.evaluation.evaluate_records`), i.e. which teacher it follows.

Usage: python scripts/teacher_agreement.py ../shared/data/train-v0.h5 [--all] [--model PATH] [--model-errors]
           [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import publish  # noqa: E402

TEACHERS = ("ani2x", "gfn2")


def minima_energies(group, label: str) -> np.ndarray:
    """Energies (kcal/mol) of the rows of kind ``min``, relative to the lowest of them."""
    kinds = str(group.attrs.get("conformation_kinds", "")).split(",")
    rows = [row for row, kind in enumerate(kinds) if kind == "min"]
    energies = group["energy"][label][:][rows]
    return energies - energies.min() if len(rows) else energies


def rms(values) -> float:
    values = np.concatenate([np.ravel(v) for v in values])
    return float(np.sqrt(np.mean(np.square(values))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", help="grappa_like-qm-v1 files")
    parser.add_argument("--all", action="store_true", help="every molecule, not only a model's validation split")
    parser.add_argument("--model", default=None, help="model whose validation split is used (default: shipped)")
    parser.add_argument("--model-errors", action="store_true", help="also the model's RMSE against each teacher")
    parser.add_argument("--output", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    model, wanted = None, None
    if args.model_errors or not args.all:
        import grappa_like

        model = grappa_like.load_model(args.model)
    if not args.all:
        wanted = set(model.metadata["validation_molecules"])
    compared = defaultdict(list)  # path -> mol ids with both labels
    forces, energies, minima, counts = (defaultdict(list) for _ in range(4))
    for path in args.files:
        with h5py.File(path, "r") as handle:
            for mol_id, group in handle.items():
                if (wanted is not None and mol_id not in wanted) or not set(TEACHERS) <= set(group["energy"]):
                    continue
                subset = str(group.attrs.get("subset", ""))
                compared[path].append(mol_id)
                counts[subset].append(len(group["energy"]["gfn2"]))
                forces[subset].append(group["forces"]["ani2x"][:] - group["forces"]["gfn2"][:])
                centred = {label: group["energy"][label][:] - group["energy"][label][:].mean() for label in TEACHERS}
                energies[subset].append(centred["ani2x"] - centred["gfn2"])
                minima[subset].append(minima_energies(group, "ani2x") - minima_energies(group, "gfn2"))
    scope = "all molecules" if args.all else "validation split of the model"
    files = ", ".join(map(os.path.basename, args.files))
    lines = [f"ANI-2x vs GFN2-xTB per subset ({scope}; {files}); kcal/mol(/A)", "",
             "| subset | molecules | conformations | force RMS diff | centred energy RMS diff "
             "| minima rel. energy RMS diff |",
             "|---|---|---|---|---|---|"]
    for subset in sorted(counts):
        lines.append(f"| {subset} | {len(counts[subset])} | {sum(counts[subset])} | {rms(forces[subset]):.2f} | "
                     f"{rms(energies[subset]):.2f} | {rms(minima[subset]):.2f} |")
    if args.model_errors:
        lines += ["", model_error_table(model, compared)]
    publish(lines, args.output)
    return 0


def model_error_table(model, compared: dict) -> str:
    """Markdown table: the model's force / energy RMSE against each teacher, per subset, on the compared molecules."""
    from grappa_like.data import read_records
    from grappa_like.evaluation import evaluate_records, pooled

    summaries = {}  # "subset/label/path" -> {"grappa_like": summary}
    for label in TEACHERS:
        for path, mol_ids in compared.items():
            result = evaluate_records(list(read_records(path, (label,), mol_ids=mol_ids)), model)
            summaries.update({f"{group}/{path}": methods for group, methods in result["groups"].items()})
    rows = [f"Model {os.path.basename(model.path)} against each teacher (force RMSE kcal/mol/A / energy RMSE kcal/mol)",
            "", "| subset | " + " | ".join(f"vs {label}" for label in TEACHERS) + " |",
            "|---|" + "---|" * len(TEACHERS)]
    for subset in sorted({key.split("/")[0] for key in summaries}):
        cells = []
        for label in TEACHERS:
            prefix = f"{subset}/{label}/"
            summary = pooled(summaries, "grappa_like", key_filter=lambda key, prefix=prefix: key.startswith(prefix))
            cells.append(f"{summary['force_rmse']:.2f} / {summary['energy_rmse']:.2f}")
        rows.append(f"| {subset} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
