"""How much do the two teachers, ANI-2x and GFN2-xTB, disagree, per family (subset) of molecules?

For every molecule of the given grappa_like-qm-v1 files that carries both labels (by default only
the molecules of a model's validation split): force-component RMS difference, RMS difference of
energies mean-centred per molecule, and the same for the relative energies of the MMFF94 minima
(rows of kind ``min``, each label relative to its own lowest minimum), which is what conformer-
energy sets measure. It says where the choice of teacher matters, not which teacher is right.

Usage: python scripts/teacher_agreement.py ../shared/data/train-v0.h5 [--all] [--model PATH] [--output FILE]
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
    parser.add_argument("--output", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    wanted = None
    if not args.all:
        import grappa_like

        wanted = set(grappa_like.load_model(args.model).metadata["validation_molecules"])
    forces, energies, minima, counts = (defaultdict(list) for _ in range(4))
    for path in args.files:
        with h5py.File(path, "r") as handle:
            for mol_id, group in handle.items():
                if (wanted is not None and mol_id not in wanted) or not set(TEACHERS) <= set(group["energy"]):
                    continue
                subset = str(group.attrs.get("subset", ""))
                counts[subset].append(len(group["energy"]["gfn2"]))
                forces[subset].append(group["forces"]["ani2x"][:] - group["forces"]["gfn2"][:])
                centred = {label: group["energy"][label][:] - group["energy"][label][:].mean() for label in TEACHERS}
                energies[subset].append(centred["ani2x"] - centred["gfn2"])
                minima[subset].append(minima_energies(group, "ani2x") - minima_energies(group, "gfn2"))
    scope = "all molecules" if args.all else "validation split of the model"
    lines = [f"ANI-2x vs GFN2-xTB per subset ({scope}; {', '.join(map(os.path.basename, args.files))}); kcal/mol(/A)", "",
             "| subset | molecules | conformations | force RMS diff | centred energy RMS diff | minima rel. energy RMS diff |",
             "|---|---|---|---|---|---|"]
    for subset in sorted(counts):
        lines.append(f"| {subset} | {len(counts[subset])} | {sum(counts[subset])} | {rms(forces[subset]):.2f} | "
                     f"{rms(energies[subset]):.2f} | {rms(minima[subset]):.2f} |")
    publish(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
