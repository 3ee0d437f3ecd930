"""``grappa-like evaluate``: energy/force errors of a model and of GAFF2 + AM1-BCC on QM files."""

from __future__ import annotations

import json
import logging
import os
import sys

log = logging.getLogger("grappa_like.evaluate")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="errors of a model (and of GAFF2 + AM1-BCC) against QM data",
        description="Energy RMSE (mean-centred per molecule, kcal/mol) and force-component RMSE (kcal/mol/Å) "
                    "of a model on QM HDF5 files, per subset and label, next to GAFF2 + AM1-BCC (AmberTools) "
                    "computed on exactly the same conformations. Writes a Markdown table, a JSON file and a force parity plot (PNG).")
    parser.add_argument("--model", default=None, help="model file (default: the shipped model)")
    parser.add_argument("--data", nargs="+", required=True, metavar="FILE[:LABELS[:WEIGHT]]",
                        help="QM data files (grappa_like-qm-v1 HDF5, SPICE HDF5, Grappa npz), each optionally with "
                             "its own label preference, e.g. spice.h5:dft (a weight is accepted and ignored here)")
    parser.add_argument("--split", choices=["validation", "all"], default="all",
                        help="'validation': only the molecules stored as the model's validation split")
    parser.add_argument("--split-model", default=None, metavar="MODEL",
                        help="with --split validation: take the validation molecules from this model file instead "
                             "(to compare two models on the same molecules)")
    parser.add_argument("--labels", default="ani2x,gfn2,dft",
                        help="label preference for files given without their own (default ani2x,gfn2,dft)")
    parser.add_argument("--baselines", default="gaff2",
                        help="comma-separated: gaff2 (GAFF2 + AM1-BCC via AmberTools), ff14sb (amber14-all.xml, "
                             "needs a pdb attribute), label:<name> (a label stored in the file); '' for none")
    parser.add_argument("--cache-dir", default=None, help="cache for AmberTools results (full AM1-BCC route)")
    parser.add_argument("-o", "--output", required=True, help="output prefix: writes PREFIX.md, PREFIX.json and PREFIX_parity.png")


def run(args) -> int:
    from grappa_like import errors
    from grappa_like.cli.common import load_model_or_report
    from grappa_like.data import parse_data_spec, read_data
    from grappa_like.benchmarks import parity_plot
    from grappa_like.evaluation import baseline_predictors, evaluate_records, markdown_table

    model = load_model_or_report(args.model, log)
    if model is None:
        return 2
    wanted = None
    if args.split == "validation":
        split_model = load_model_or_report(args.split_model, log) if args.split_model else model
        if split_model is None:
            return 2
        wanted = set(split_model.metadata.get("validation_molecules", []))
    try:
        specs = [parse_data_spec(text) for text in args.data]
        records = [r for r, _ in read_data(specs, tuple(args.labels.split(",")))
                   if wanted is None or r.mol_id in wanted]
    except (ValueError, errors.DataFileError) as error:
        log.error(f"error: {error}")
        return 2
    if not records:
        log.error("error: no molecules to evaluate")
        return 2
    baselines = baseline_predictors([name for name in args.baselines.split(",") if name], args.cache_dir)
    points: dict = {}
    results = evaluate_records(records, model, baselines, progress=sys.stderr.isatty(), parity_points=points,
                               on_error=lambda mol_id, method, error: log.warning(f"{method} failed on {mol_id}: {error}"))
    results["model"] = {"path": os.path.abspath(model.path or ""), "sha256": model.checksum}
    results["data"] = [os.path.abspath(spec.path) for spec in specs]
    results["split"] = args.split if not args.split_model else f"validation of {os.path.basename(args.split_model)}"
    table = markdown_table(results["groups"], ("grappa_like", *baselines))
    lines = [table, f"Charge RMSE vs AM1-BCC: {_fmt(results['charges']['rmse_vs_am1bcc'])} e "
             f"({results['charges']['atoms']} atoms); LJ-type accuracy vs GAFF2: "
             f"{_fmt(results['lj_types']['accuracy_vs_gaff2'])} ({results['lj_types']['atoms']} atoms)\n"]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output + ".md", "w") as handle:
        handle.write("\n".join(lines))
    with open(args.output + ".json", "w") as handle:
        json.dump(results, handle, indent=1)
    parity_plot(points, ("grappa_like", *baselines), args.output + "_parity.png",
                title=", ".join(os.path.basename(spec.path) for spec in specs))
    print("\n".join(lines))
    return 1 if results["failures"] else 0


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"
