"""``grappa-like benchmark``: accuracy on the test-only benchmark sets, next to classical force fields."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("grappa_like.benchmark")
DEFAULT_BENCHMARK_DIR = os.path.join("..", "shared", "benchmarks")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "benchmark", help="errors on the benchmark sets vs GAFF2 + AM1-BCC and ff14SB",
        description="Evaluate a model on the test-only benchmark sets (rmd17, 3bpa, acac, peptides-dft, "
                    "druglike-dft) against their DFT labels, next to GAFF2 + AM1-BCC (AmberTools, full "
                    "antechamber route, cached) and, for peptides, Amber ff14SB and the stored Amber99SB-ILDN. "
                    "Writes benchmarks.md, benchmarks.json, parity plots and the acac dihedral-scan curve. "
                    "These sets are for reporting only: never train or tune on them.")
    parser.add_argument("--model", default=None, help="model file (default: the shipped model)")
    parser.add_argument("--benchmarks", default=DEFAULT_BENCHMARK_DIR, help="folder of the benchmark HDF5 files")
    parser.add_argument("--sets", default=None, help="comma-separated subset of: rmd17,3bpa,acac,peptides-dft,druglike-dft")
    parser.add_argument("--training-data", nargs="*", default=[os.path.join("..", "shared", "data", "train-v0.h5")],
                        help="training files, to report overlap by canonical SMILES")
    parser.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "grappa_like", "amber"),
                        help="cache for AmberTools results (AM1-BCC is slow)")
    parser.add_argument("-o", "--output", required=True, help="output folder")


def run(args) -> int:
    from grappa_like.cli.common import load_model_or_report
    from grappa_like.benchmarks import run_benchmarks

    model = load_model_or_report(args.model, log)
    if model is None:
        return 2
    training = [p for p in args.training_data if os.path.exists(p)]
    results = run_benchmarks(model, args.benchmarks, args.output, training, args.cache_dir,
                             sets=args.sets.split(",") if args.sets else None,
                             progress=sys.stderr.isatty(), log=log.warning)
    if not results:
        log.error(f"error: no benchmark files found in {args.benchmarks}")
        return 2
    with open(os.path.join(args.output, "benchmarks.md")) as handle:
        print(handle.read())
    return 0
