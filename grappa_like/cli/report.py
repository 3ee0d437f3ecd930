"""``grappa-like report``: one molecule in, one self-contained HTML report out (see grappa_like/report.py).

Exit codes: 0 written; 2 usage error, unreadable input, or the report could not be made.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os

from grappa_like import errors
from grappa_like.cli.common import whole_number_at_least
from grappa_like.report import DEFAULT_MAX_SCANS, DEFAULT_MD_TIME_PS, DEFAULT_SCAN_POINTS

log = logging.getLogger("grappa_like.report")


def _time_ps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a time in ps, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value:g}")
    return value


def add_report_arguments(parser) -> None:
    """The options of the HTML report (shared by ``report`` and ``parameterize --report``)."""
    group = parser.add_argument_group("HTML report options")
    group.add_argument("--scan-points", type=whole_number_at_least(4), default=DEFAULT_SCAN_POINTS,
                       help=f"dihedral values per torsion scan (default {DEFAULT_SCAN_POINTS}, i.e. every "
                            f"{360 // DEFAULT_SCAN_POINTS}°)")
    group.add_argument("--max-scans", type=whole_number_at_least(0), default=DEFAULT_MAX_SCANS,
                       help=f"rotatable bonds scanned at most (default {DEFAULT_MAX_SCANS}; 0: no scans)")
    group.add_argument("--no-qm", action="store_true",
                       help="leave out the GFN2-xTB reference curves (tblite single points)")
    group.add_argument("--ani-dir", default=None, metavar="DIR",
                       help="folder of the NeuroChem ANI-2x files: adds ANI-2x reference curves")
    group.add_argument("--no-gaff2", action="store_true", help="leave out the GAFF2 + AM1-BCC curves (AmberTools)")
    group.add_argument("--md-time-ps", type=_time_ps, default=DEFAULT_MD_TIME_PS,
                       help=f"length of the MD check in ps (default {DEFAULT_MD_TIME_PS:g}; 0: no MD check)")


def report_options(args) -> dict:
    """Keyword arguments of :func:`grappa_like.report.write_report` from the parsed report options."""
    return {"scan_points": args.scan_points, "max_scans": args.max_scans, "qm": not args.no_qm,
            "ani_dir": args.ani_dir, "gaff2": not args.no_gaff2, "md_time_ps": args.md_time_ps}


def write_report_next_to(result, output_path: str, model, args) -> str:
    """``parameterize --report``: write the report of ``result`` as <output stem>.html; return its path."""
    from grappa_like.report import ReportError, write_report

    path = os.path.splitext(output_path)[0] + ".html"
    if os.path.abspath(path) == os.path.abspath(output_path):
        path = os.path.splitext(output_path)[0] + ".report.html"
    try:
        return write_report(result, path, model=model, **report_options(args))
    except Exception as error:  # the output itself is written: say so, and why the report is not
        message = " ".join(str(error).split())[:300]
        raise ReportError(f"{result.name}: {output_path} written, but not its HTML report "
                          f"({type(error).__name__}: {message})") from error


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="write an HTML report of the force field predicted for one molecule",
        description="Parameterize one molecule and write a self-contained HTML page (viewable offline): a "
                    "depiction coloured by the predicted charges, sortable tables of every parameter, relaxed "
                    "torsion scans of the rotatable bonds against GFN2-xTB (tblite), ANI-2x (--ani-dir) and "
                    "GAFF2 (AmberTools) when available, and a short MD check. Exit code 0: written; 2: usage "
                    "error or the report could not be made.")
    parser.add_argument("input", nargs="?", metavar="INPUT",
                        help="molecule file with one record (.sdf, .mol, .mol2, .pdb with --smiles, .smi)")
    parser.add_argument("--smiles", action="append", default=[],
                        help="the molecule as SMILES (or, with a PDB input, the SMILES giving its bond orders)")
    parser.add_argument("-o", "--output", required=True, help="the HTML file to write")
    parser.add_argument("--name", default=None,
                        help="name shown in the report (default: the record's title; mol1 for --smiles)")
    parser.add_argument("--model", default=None, help="model file (default: $GRAPPA_LIKE_MODEL, else the shipped model in models/)")
    add_report_arguments(parser)


def run(args) -> int:
    from grappa_like.api import parameterize
    from grappa_like.cli.common import load_model_or_report
    from grappa_like.cli.common import collect_records
    from grappa_like.outputs import prepare_file
    from grappa_like.molecule import DEFAULT_MAX_ATOMS
    from grappa_like.report import write_report

    inputs = [args.input] if args.input else []
    try:
        records = collect_records(inputs, args.smiles, DEFAULT_MAX_ATOMS)
    except errors.MoleculeInputError as error:
        log.error(f"error: {' '.join(str(error).split())}")
        return 2
    if len(records) != 1:
        log.error(f"error: a report is about one molecule; the input gave {len(records)} "
                  "(use parameterize --report for several)")
        return 2
    name, _, item = records[0]
    if isinstance(item, Exception):
        log.error(f"failed: {name}: {type(item).__name__}: {' '.join(str(item).split())}")
        return 2
    if args.name:
        item = dataclasses.replace(item, name=args.name)
    model = load_model_or_report(args.model, log)
    if model is None:
        return 2
    result = parameterize([item], model=model, progress=False, ood_score=True)[0]
    try:
        prepare_file(args.output)
        write_report(result, args.output, model=model, **report_options(args))
    except Exception as error:  # one line naming the molecule and the reason
        log.error(f"failed: {result.name}: {type(error).__name__}: {' '.join(str(error).split())[:500]}")
        return 2
    log.info(f"report of {result.name} -> {args.output}")
    return 0
