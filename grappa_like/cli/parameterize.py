"""``grappa-like parameterize``: molecules in, OpenMM System XML files out.

One molecule in: ``-o`` is a file (for gromacs/amber: the .top/.prmtop; .gro/.inpcrd are written
next to it), or, if ``-o`` is an existing folder or ends in ``/``, ``<name>.<ext>`` in it; missing
parent folders are created. Several (several inputs, a
multi-record SDF, repeated ``--smiles``): ``-o`` is a folder with one ``<name>.xml`` per molecule and
``failures.tsv`` (record, input, error class, message; UTF-8). File names are the record names made
safe (characters other than letters, digits, ``_ . -`` become ``_``; at most 100 characters); names
equal up to case get a suffix ``_2``, ``_3``, ... in input order.
Exit codes: 0 all succeeded, 1 some records failed (the rest were written), 2 usage error or
nothing could be parameterized (e.g. the model file is missing or corrupt).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from grappa_like import errors
from grappa_like.cli.common import collect_records, whole_number_at_least
from grappa_like.cli.report import add_report_arguments, write_report_next_to
from grappa_like.fileio import UniqueNamer, atomic_write, atomic_write_text
from grappa_like.outputs import EXTENSIONS, is_folder_output, make_folder, one_line as _one_line, prepare_file, write_result
log = logging.getLogger("grappa_like.parameterize")
POSITIVE_INT = whole_number_at_least(1)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "parameterize", help="parameterize molecules with a grappa_like model",
        description="Parameterize molecules with a grappa_like model and write OpenMM Systems "
                    "(XmlSerializer XML; or --format ffxml|gromacs|amber). Inputs: SDF (one or many records), MOL2, PDB (needs --smiles "
                    "for bond orders), .smi files (SMILES and name per line), and SMILES via --smiles. "
                    "One molecule: OUT is a file (or an existing folder); several: OUT is a folder with "
                    "<name>.xml and failures.tsv (record, input, error class, message). Duplicate names get "
                    "_2, _3, ...; characters unsafe in file names become _. Exit code 0: all written; 1: some "
                    "records failed; 2: usage error or nothing could be parameterized.")
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="molecule files (.sdf, .sdf.gz, .mol, .mol2, .pdb, .smi)")
    parser.add_argument("--smiles", action="append", default=[],
                        help="a SMILES to parameterize (repeatable); with a PDB input: the SMILES giving its bond orders")
    parser.add_argument("-o", "--output", required=True, help="output file (one molecule) or folder (several)")
    parser.add_argument("--format", choices=sorted(EXTENSIONS), default="openmm",
                        help="output format (default openmm); gromacs-itp: <name>.itp, <name>_atomtypes.itp and <name>.gro to "
                             "#include next to GROMACS' amber99sb-ildn.ff; amber-ligand: <name>.frcmod and <name>.mol2 "
                             "for tleap (see docs/exports.md)")
    parser.add_argument("--model", default=None, help="model file (default: $GRAPPA_LIKE_MODEL, else the shipped model in models/)")
    parser.add_argument("--max-atoms", type=POSITIVE_INT, default=None,
                        help="largest molecule accepted, hydrogens included (default 1000 atoms)")
    parser.add_argument("--forcefield", nargs="+", default=None, metavar="XML",
                        help="re-parameterize mode: build the System of the PDB input with these OpenMM force "
                             "fields (e.g. amber14-all.xml amber14/tip3p.xml), ligands given as SDF/MOL2 inputs "
                             "through grappa_like's template generator, then replace the bonded terms of every "
                             "molecule except water and ions by the model's; nonbonded terms stay the force field's")
    parser.add_argument("--constraints", choices=["none", "hbonds"], default="hbonds",
                        help="re-parameterize mode: constraints of the System (default hbonds)")
    parser.add_argument("--total-charge", type=int, default=None,
                        help="expected total charge (e) of every molecule; a record whose formal charges add up "
                             "to something else fails with ChargeMismatchError")
    parser.add_argument("--ood-score", action=argparse.BooleanOptionalAction, default=None,
                        help="out-of-domain score (model files with an ensemble only): spread of the ensemble's "
                             "MM forces on 3 conformers, kcal/mol/Å, ~0.1 s per molecule; a warning naming each "
                             "molecule above the model's threshold, and a column in OUT/ood_scores.tsv or the "
                             "library manifest (see docs/benchmarks.md). Default: on, except in library mode, "
                             "where it would cost ~10x the parameterization itself")
    parser.add_argument("--report", action="store_true",
                        help="also write an HTML report of each molecule next to its output (<output stem>.html; "
                             "see grappa-like report --help; adds torsion scans and a short MD per molecule)")
    parser.add_argument("--library", action="store_true",
                        help="library mode for one large .smi/.sdf/.sdf.gz: stream the records, write "
                             "OUT/<shard>/<name>.<ext> (shard: first 2 hex characters of sha256(name)) and "
                             "OUT/manifest.tsv as each record is done; rerunning the same command resumes "
                             "after a kill (see docs/library.md)")
    parser.add_argument("--batch-size", type=POSITIVE_INT, default=64,
                        help="library mode: records parameterized per batch (default 64; with Dask, one task each)")
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=POSITIVE_INT, default=None, metavar="K",
                         help="library mode on a Dask LocalCluster of K one-thread worker processes on this "
                              "machine (implies --library; default: everything in this process)")
    cluster.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                         help="library mode on an existing Dask cluster (dask scheduler / dask worker, or "
                              "dask-jobqueue); the workers need grappa_like installed, not this disk; implies --library")
    add_report_arguments(parser)


def unique_file_names(names: list[str]) -> list[str]:
    """File-system-safe, unique names; duplicates get a suffix _2, _3, ... in input order."""
    namer = UniqueNamer()
    return [namer(name) for name in names]


OOD_COLUMNS = ("record", "file", "ood_score_kcal_per_mol_angstrom", "threshold", "above_threshold")


def ood_score_row(name: str, file: str, score: float | None, threshold: float | None) -> tuple[str, ...]:
    """One ood_scores.tsv row; logs the score, and a warning naming the molecule above the threshold."""
    above = score is not None and threshold is not None and score > threshold
    if above:
        log.warning(f"warning: {name}: out of domain: OOD score {score:.2f} kcal/mol/Å is above the model's "
                    f"threshold {threshold:.2f} (the ensemble disagrees; expect larger force errors than usual)")
    elif score is None:
        log.info(f"{name}: no OOD score (no conformer could be embedded)")
    return (" ".join(name.split()), file, "" if score is None else f"{score:.4f}",
            "" if threshold is None else f"{threshold:.4f}", "yes" if above else "no")


def _write_utf8(path: str, lines: list[str]) -> None:
    with open(path, "x", encoding="utf-8", errors="replace", newline="\n") as handle:
        handle.write("\n".join(lines) + "\n")


def run_reparameterize(args, model) -> int:
    """Re-parameterize mode: one PDB (protein, complex, solvated or not) -> one System XML."""
    import openmm
    from openmm import app

    from grappa_like.openmm import TemplateGenerator, reparameterize_system

    structures = [path for path in args.inputs if path.lower().endswith(".pdb")]
    ligands = [path for path in args.inputs if not path.lower().endswith(".pdb")]
    if len(structures) != 1:
        log.error("error: re-parameterize mode (--forcefield) needs exactly one PDB input")
        return 2
    try:
        prepare_file(args.output)
    except errors.OutputPathError as error:
        log.error(f"error: {_one_line(error)}")
        return 2
    try:
        pdb = app.PDBFile(structures[0])
        forcefield = app.ForceField(*args.forcefield)
        if ligands or args.smiles:
            generator = TemplateGenerator(molecules=ligands + list(args.smiles), model=model)
            forcefield.registerTemplateGenerator(generator.generator)
        periodic = pdb.topology.getPeriodicBoxVectors() is not None
        system = forcefield.createSystem(
            pdb.topology, nonbondedMethod=app.PME if periodic else app.NoCutoff,
            constraints=app.HBonds if args.constraints == "hbonds" else None)
        system = reparameterize_system(system, pdb.topology, model=model)
        atomic_write_text(args.output, openmm.XmlSerializer.serialize(system))
    except Exception as error:  # one line naming the input and the reason
        log.error(f"failed: {structures[0]}: {type(error).__name__}: {_one_line(error)}")
        return 2
    log.info(f"re-parameterized {system.getNumParticles()} particles -> {args.output}")
    return 0


def run_library(args) -> int:
    """Library mode: one streamed input file -> sharded output folder with a resumable manifest."""
    from grappa_like.cli.common import load_model_or_report
    from grappa_like.library import parameterize_library

    if len(args.inputs) != 1 or args.smiles or not args.inputs[0].lower().endswith((".smi", ".sdf", ".sdf.gz")):
        log.error("error: --library needs exactly one .smi, .sdf or .sdf.gz input (and no --smiles)")
        return 2
    model = load_model_or_report(args.model, log)
    if model is None:
        return 2
    options = dict(model=model, output_format=args.format, batch_size=args.batch_size, progress=True,
                   max_atoms=args.max_atoms, total_charge=args.total_charge, log=log,
                   ood_score=bool(model.members) and bool(args.ood_score))
    try:
        if args.workers or args.scheduler:
            from grappa_like.cluster import connect

            with connect(workers=args.workers, scheduler=args.scheduler) as client:
                summary = parameterize_library(args.inputs[0], args.output, client=client, **options)
        else:
            summary = parameterize_library(args.inputs[0], args.output, **options)
    except (errors.GrappaLikeError, OSError, RuntimeError) as error:  # RuntimeError: a Dask task that failed
        log.error(f"error: {type(error).__name__}: {_one_line(error)}")
        return 2
    if summary["ok_total"] == 0:
        return 2
    return 1 if summary["failed_total"] else 0


def run(args) -> int:
    from grappa_like.api import parameterize
    from grappa_like.cli.common import load_model_or_report
    from grappa_like.molecule import DEFAULT_MAX_ATOMS

    if not args.inputs and not args.smiles:
        log.error("error: give at least one INPUT file or --smiles")
        return 2
    if args.report and (args.forcefield or args.library or args.workers or args.scheduler):
        log.error("error: --report writes one page per molecule file; it does not combine with --forcefield, "
                  "--library, --workers or --scheduler")
        return 2
    if args.forcefield:
        model = load_model_or_report(args.model, log)
        return 2 if model is None else run_reparameterize(args, model)
    if args.library or args.workers or args.scheduler:
        return run_library(args)
    try:
        records = collect_records(args.inputs, args.smiles, args.max_atoms or DEFAULT_MAX_ATOMS)
    except errors.MoleculeInputError as error:
        log.error(f"error: {_one_line(error)}")
        return 2
    model = load_model_or_report(args.model, log)
    if model is None:
        return 2

    good = [item for _, _, item in records if not isinstance(item, Exception)]
    score = bool(model.members) and args.ood_score is not False
    results = iter(parameterize(good, model=model, progress=sys.stderr.isatty(), total_charge=args.total_charge,
                                ood_score=score))
    outcomes = []  # (record name, input, Result or error)
    for name, source, item in records:
        outcomes.append((name, source, item if isinstance(item, Exception) else next(results)))

    single = not is_folder_output(args.output, len(outcomes))
    try:
        prepare_file(args.output) if single else make_folder(args.output)
    except errors.OutputPathError as error:
        log.error(f"error: {_one_line(error)}")
        return 2
    file_names = unique_file_names([name for name, _, _ in outcomes])
    failures, written, scores = [], 0, []
    for (name, source, outcome), file_name in zip(outcomes, file_names):
        error = outcome if isinstance(outcome, Exception) else outcome.error
        if error is None:
            try:
                path = args.output if single else os.path.join(args.output, file_name + EXTENSIONS[args.format])
                write_result(outcome, args.format, path)
                written += 1
                if args.report:
                    write_report_next_to(outcome, path, model, args)
                if score:
                    scores.append(ood_score_row(name, os.path.basename(path), outcome.ood_score, model.ood_threshold))
                continue
            except Exception as write_error:  # e.g. an unwritable folder: report it as this record's failure
                error = write_error
        failures.append((name, source, type(error).__name__, _one_line(error)))
        log.error(f"failed: {name}: {type(error).__name__}: {_one_line(error)}")
    if not single:
        lines = ["record\tinput\terror_class\tmessage"] + [
            "\t".join(" ".join(field.split()) for field in failure) for failure in failures]
        atomic_write(os.path.join(args.output, "failures.tsv"), lambda temporary: _write_utf8(temporary, lines))
        if score:
            lines = ["\t".join(OOD_COLUMNS)] + ["\t".join(row) for row in scores]
            atomic_write(os.path.join(args.output, "ood_scores.tsv"), lambda temporary: _write_utf8(temporary, lines))
    elif scores:
        log.info(f"{scores[0][0]}: OOD score {scores[0][2] or 'none'} kcal/mol/Å (threshold {scores[0][3] or 'none'})")
    log.info(f"{written} written, {len(failures)} failed -> {args.output}")
    if written == 0:
        return 2
    return 1 if failures else 0
