"""Command line: ``grappa-like parameterize | report | train | evaluate | benchmark | build-dataset``; one module per command."""

from __future__ import annotations

import argparse
import logging
import sys

from grappa_like import __version__
from grappa_like.cli import benchmark, build_dataset, evaluate, parameterize, report, train

COMMANDS = {"parameterize": parameterize, "report": report, "train": train, "evaluate": evaluate,
            "benchmark": benchmark, "build-dataset": build_dataset}


def main(argv=None) -> int:
    """Entry point of the ``grappa-like`` console script; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="grappa-like",
        description="grappa_like: a learned molecular-mechanics force field. Parameterize molecules with the "
                    "shipped model, write an HTML report of one, build a QM data set, train a model on QM data, "
                    "or evaluate one against QM and GAFF2.",
    )
    parser.add_argument("--version", action="version", version=f"grappa-like {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_parser(subparsers)
    args = parser.parse_args(argv)
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")  # errors reach the user as one line per record instead
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return COMMANDS[args.command].run(args)
    except ModuleNotFoundError as error:  # training, evaluation and benchmarks need torch
        if error.name not in ("torch", "torch_geometric"):
            raise
        logging.getLogger("grappa_like").error(
            f"error: grappa-like {args.command} needs {error.name}: pip install 'grappa_like[train]'")
        return 2


if __name__ == "__main__":
    sys.exit(main())
