"""Force error of a model and of GAFF2 per kind of conformation (MMFF minima, MD at each temperature,
raw ETKDG conformers, torsion drives, labeler minima, normal-mode samples).

Issue 17 says the network's gap lies on geometries its training data rarely shows. This measures
it on files that record ``conformation_kinds`` (files of ``grappa-like build-dataset``): pooled
force-component RMSE (kcal/mol/Å) against the file's label, per kind, for the model and for GAFF2 +
AM1-BCC built from the charges and GAFF2 types stored in the file (parmchk2 + tleap, no AM1
calculation), and the RMS of the label forces, which says how far from a minimum the kind lies.
Energies are left out: they are mean-centred per molecule over all kinds together.

Use it only on molecules a model has not trained on (e.g. a new build, or a model's validation
split with ``--split-model``).

Usage: OMP_NUM_THREADS=1 python scripts/error_by_conformation_kind.py FILE [FILE ...] [--model PATH]
           [--split-model MODEL] [--labels ani2x,gfn2] [--no-gaff2] [--output FILE]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import publish  # noqa: E402

import grappa_like  # noqa: E402
from grappa_like.data import read_records  # noqa: E402
from grappa_like.units import KJ_PER_NM_TO_KCAL_PER_ANGSTROM  # noqa: E402

# kind names of grappa_like.dataset -> the row of the table
KIND_GROUPS = ((r"min$", "MMFF94 minima"), (r"md(\d+)$", "MD {0} K (MMFF94)"), (r"etkdg$", "ETKDG, unminimised"),
               (r"torsion:", "torsion drives (MMFF94-relaxed)"), (r"labeler_min$", "labeler minimum"),
               (r"nm(\d+)$", "normal modes {0} K (labeler)"))


def kind_group(kind: str) -> str:
    """The table row of a conformation kind, e.g. ``md500`` -> ``MD 500 K (MMFF94)``."""
    for pattern, name in KIND_GROUPS:
        match = re.match(pattern, kind)
        if match:
            return name.format(*match.groups())
    return kind


def _table_order(group: str) -> tuple:
    """Rows in the order of KIND_GROUPS, temperatures ascending, unknown kinds last."""
    for index, (_, name) in enumerate(KIND_GROUPS):
        head = name.split("{0}")[0]
        if group.startswith(head) and ("{0}" in name or group == name):
            numbers = re.findall(r"\d+", group)
            return index, int(numbers[0]) if numbers else 0, group
    return len(KIND_GROUPS), 0, group


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--model", default=None, help="model file (default: the shipped model)")
    parser.add_argument("--split-model", default=None,
                        help="only the molecules of this model file's validation split")
    parser.add_argument("--labels", default="ani2x,gfn2", help="label preference (default ani2x,gfn2)")
    parser.add_argument("--no-gaff2", action="store_true", help="leave GAFF2 out")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    from grappa_like import evaluation

    model = grappa_like.load_model(args.model)
    wanted = None
    if args.split_model:
        wanted = set(grappa_like.load_model(args.split_model).metadata.get("validation_molecules", []))
    labels = tuple(label.strip() for label in args.labels.split(",") if label.strip())
    squared = defaultdict(lambda: defaultdict(float))  # group -> method -> sum of squared errors
    counts, rows, molecules = defaultdict(int), defaultdict(int), defaultdict(set)
    skipped = []
    for path in args.files:
        for record in read_records(path, labels):
            if wanted is not None and record.mol_id not in wanted:
                continue
            kinds = str(record.attrs.get("conformation_kinds", "")).split(",")
            if record.forces is None or len(kinds) != len(record.positions):
                skipped.append(f"{record.mol_id} (no forces or no conformation kinds)")
                continue
            predictions = {"model": evaluation.parameters_energies_forces(
                model.predict([record.molecule])[0], record.positions)[1]}
            if not args.no_gaff2:
                try:
                    system = evaluation.gaff2_system_for_record(record)
                    predictions["gaff2"] = evaluation.openmm_energies_forces(system, record.positions)[1]
                except Exception as error:  # one molecule without GAFF2 is reported, not fatal
                    skipped.append(f"{record.mol_id} (GAFF2: {type(error).__name__})")
                    continue
            label = record.forces * KJ_PER_NM_TO_KCAL_PER_ANGSTROM
            per_row = {"label": (label ** 2).sum(axis=(1, 2))}  # sums of squares per conformation
            per_row.update({method: ((forces * KJ_PER_NM_TO_KCAL_PER_ANGSTROM - label) ** 2).sum(axis=(1, 2))
                            for method, forces in predictions.items()})
            for row, kind in enumerate(kinds):
                group = kind_group(kind)
                counts[group] += label[row].size
                rows[group] += 1
                molecules[group].add(record.mol_id)
                for method, sums in per_row.items():
                    squared[group][method] += float(sums[row])

    methods = ["model"] + ([] if args.no_gaff2 else ["gaff2"])
    lines = [f"Model: {model.path}; files: {', '.join(os.path.basename(f) for f in args.files[:4])}"
             + (f" and {len(args.files) - 4} more" if len(args.files) > 4 else "")
             + (f"; validation split of {args.split_model}" if args.split_model else ""), "",
             "| conformations | molecules | rows | label force RMS | " + " | ".join(f"{m} F RMSE" for m in methods)
             + (" | model / GAFF2 |" if "gaff2" in methods else " |"),
             "|---|---|---|---|" + "---|" * len(methods) + ("---|" if "gaff2" in methods else "")]
    total = defaultdict(float)
    for group in sorted(counts, key=_table_order):
        rmse = {method: math.sqrt(squared[group][method] / counts[group]) for method in ["label", *methods]}
        for method in ["label", *methods]:
            total[method] += squared[group][method]
        cells = [group, str(len(molecules[group])), str(rows[group]), f"{rmse['label']:.2f}"]
        cells += [f"{rmse[m]:.2f}" for m in methods]
        if "gaff2" in methods:
            cells.append(f"{rmse['model'] / rmse['gaff2']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    if counts:
        n = sum(counts.values())
        cells = ["all", str(len(set().union(*molecules.values()))), str(sum(rows.values())),
                 f"{math.sqrt(total['label'] / n):.2f}"]
        cells += [f"{math.sqrt(total[m] / n):.2f}" for m in methods]
        if "gaff2" in methods:
            cells.append(f"{math.sqrt(total['model'] / total['gaff2']):.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    if skipped:
        lines += ["", f"Left out: {len(skipped)}: " + "; ".join(skipped[:10])]
    publish(lines, args.output)


if __name__ == "__main__":
    main()
