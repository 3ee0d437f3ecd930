"""Per-conformation label force RMS: how distorted are training conformations next to the test sets?

For every conformation of every file, the RMS of its label's force components (kcal/mol/Å): near
zero at a minimum, growing with temperature and strain. Training files use their label preference
(``FILE[:LABELS]``, default grappa_like.data.DEFAULT_LABEL_PREFERENCE), benchmark files the
``dft`` label. Writes a histogram per file (one panel) and a table of percentiles; with
``--by-kind`` the training files' rows are also split by conformation kind (min, md, etkdg,
torsion, labeler_min/nm). Test sets are only looked at here, never used to choose a model.

Usage: python scripts/force_rms_histograms.py --train ../shared/data/train-v0.h5 new.h5 \
           --benchmarks ../shared/benchmarks/{rmd17,3bpa,acac}.h5 --png docs/figures/force_rms.png [--by-kind]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import publish  # noqa: E402

from grappa_like.data import DEFAULT_LABEL_PREFERENCE, parse_data_spec, read_records  # noqa: E402
from grappa_like.units import KJ_PER_NM_TO_KCAL_PER_ANGSTROM  # noqa: E402


def kind_family(kind: str) -> str:
    """``md300`` -> ``md``, ``torsion:1-2-3-4:90`` -> ``torsion``, ``nm450`` -> ``nm``."""
    return re.sub(r"[:\d].*$", "", kind) or kind


def force_rms(path: str, preference, by_kind: bool) -> dict[str, np.ndarray]:
    """{name: per-conformation force RMS (kcal/mol/Å)} of one file (and of each kind family if ``by_kind``)."""
    values = defaultdict(list)
    name = os.path.basename(path)
    for record in read_records(path, preference):
        if record.forces is None:
            continue
        rms = np.sqrt((record.forces ** 2).mean(axis=(1, 2))) * KJ_PER_NM_TO_KCAL_PER_ANGSTROM
        values[name].append(rms)
        kinds = record.attrs.get("conformation_kinds", "")
        if by_kind and kinds:
            for kind, value in zip(kinds.split(","), rms):
                values[f"{name} [{kind_family(kind)}]"].append([value])
    return {key: np.concatenate(parts) for key, parts in values.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", nargs="+", default=[], metavar="FILE[:LABELS]", help="training data files")
    parser.add_argument("--benchmarks", nargs="*", default=[], help="test-set files (label dft)")
    parser.add_argument("--by-kind", action="store_true", help="also split training rows by conformation kind")
    parser.add_argument("--png", default=None, help="write the histograms here")
    parser.add_argument("--output", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    series = {}
    for text in args.train:
        spec = parse_data_spec(text)
        series.update(force_rms(spec.path, spec.labels or DEFAULT_LABEL_PREFERENCE, args.by_kind))
    benchmark_names = []
    for path in args.benchmarks:
        found = force_rms(path, ("dft",), False)
        series.update(found)
        benchmark_names += list(found)
    lines = ["Per-conformation force RMS of the label (kcal/mol/Å)", "",
             "| file | conformations | p10 | p25 | median | p75 | p90 | p99 |", "|---|---|---|---|---|---|---|---|"]
    for name, values in series.items():
        p = np.percentile(values, [10, 25, 50, 75, 90, 99])
        lines.append(f"| {name}{' (test)' if name in benchmark_names else ''} | {len(values)} | "
                     + " | ".join(f"{v:.1f}" for v in p) + " |")
    publish(lines, args.output)
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        whole = [name for name in series if "[" not in name]
        bins = np.linspace(0.0, max(np.percentile(series[n], 99.5) for n in whole), 60)
        figure, axes = plt.subplots(len(whole), 1, figsize=(7, 1.6 * len(whole)), sharex=True)
        for axis, name in zip(np.atleast_1d(axes), whole):
            axis.hist(series[name], bins=bins, density=True,
                      color="tab:red" if name in benchmark_names else "tab:blue")
            axis.set_ylabel("density", fontsize=7)
            axis.set_title(f"{name}{' (test set, dft)' if name in benchmark_names else ''}: median "
                           f"{np.median(series[name]):.1f}", fontsize=8)
            axis.axvline(np.median(series[name]), color="black", lw=0.8)
        np.atleast_1d(axes)[-1].set_xlabel("per-conformation force RMS of the label (kcal/mol/Å)")
        figure.tight_layout()
        figure.savefig(args.png, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
