"""``grappa-like parameterize``: molecules in, OpenMM System XML files out.

One molecule in: ``-o`` is a file (for gromacs/amber: the .top/.prmtop; .gro/.inpcrd are written
next to it). Several (several inputs, a multi-record SDF, repeated
``--smiles``): ``-o`` is a folder with one ``<name>.xml`` per molecule and ``failures.tsv``.
Exit codes: 0 all succeeded, 1 some records failed (the rest were written), 2 usage error or
nothing could be parameterized (e.g. the model file is missing or corrupt).
"""

from __future__ import annotations

import logging
import os
import re
import sys

from grappa_like import errors
from grappa_like.fileio import atomic_write_text

EXTENSIONS = {"openmm": ".xml", "ffxml": ".ffxml", "gromacs": ".top", "amber": ".prmtop"}
log = logging.getLogger("grappa_like.parameterize")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "parameterize", help="parameterize molecules with a grappa_like model",
        description="Parameterize molecules with a grappa_like model and write OpenMM Systems "
                    "(XmlSerializer XML; or --format ffxml|gromacs|amber). Inputs: SDF (one or many records), MOL2, PDB (needs --smiles "
                    "for bond orders), .smi files (SMILES and name per line), and SMILES via --smiles. "
                    "One molecule: OUT is a file; several: OUT is a folder with <name>.xml and "
                    "failures.tsv. Exit code 0: all written; 1: some records failed; 2: usage error or "
                    "nothing could be parameterized.")
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="molecule files (.sdf, .sdf.gz, .mol, .mol2, .pdb, .smi)")
    parser.add_argument("--smiles", action="append", default=[],
                        help="a SMILES to parameterize (repeatable); with a PDB input: the SMILES giving its bond orders")
    parser.add_argument("-o", "--output", required=True, help="output file (one molecule) or folder (several)")
    parser.add_argument("--format", choices=sorted(EXTENSIONS), default="openmm", help="output format (default openmm)")
    parser.add_argument("--model", default=None, help="model file (default: the shipped models/grappa-like-v1.pt)")
    parser.add_argument("--max-atoms", type=int, default=None, help="largest molecule accepted (default 1000 atoms)")


def collect_records(inputs: list[str], smiles: list[str], max_atoms: int):
    """List of (record name, input description, Molecule or error) for every record of every input."""
    from grappa_like.molecule import from_smiles, read_file

    pdb_inputs = [path for path in inputs if path.lower().endswith(".pdb")]
    if pdb_inputs and len(smiles) not in (1, len(pdb_inputs)):
        raise errors.MoleculeInputError(
            f"{len(pdb_inputs)} PDB inputs need one --smiles for all of them or one per PDB, got {len(smiles)}")
    records = []
    pdb_index = 0
    for path in inputs:
        template = None
        if path.lower().endswith(".pdb"):
            template = smiles[0] if len(smiles) == 1 else (smiles[pdb_index] if smiles else None)
            pdb_index += 1
        for name, item in read_file(path, smiles=template, max_atoms=max_atoms):
            records.append((name, path, item))
    if not pdb_inputs:
        for index, text in enumerate(smiles):
            name = f"mol{len(records) + 1}"
            try:
                records.append((name, text, from_smiles(text, name=name, max_atoms=max_atoms)))
            except errors.MoleculeInputError as error:
                records.append((name, text, error))
    return records


def unique_file_names(names: list[str]) -> list[str]:
    """File-system-safe, unique names; duplicates get a suffix _2, _3, ... in input order."""
    seen: dict[str, int] = {}
    result = []
    for name in names:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "mol"
        candidate = safe
        while candidate.lower() in seen:
            seen[safe.lower()] += 1
            candidate = f"{safe}_{seen[safe.lower()]}"
        seen.setdefault(safe.lower(), 1)
        seen.setdefault(candidate.lower(), 1)
        result.append(candidate)
    return result


def write_result(result, output_format: str, path: str) -> None:
    """Write one parameterized molecule in ``output_format`` to ``path`` (each file written atomically)."""
    if output_format == "openmm":
        import openmm

        atomic_write_text(path, openmm.XmlSerializer.serialize(result.to_openmm()))
        return
    from grappa_like import export

    writer = {"ffxml": export.to_ffxml, "gromacs": export.to_gromacs, "amber": export.to_amber}[output_format]
    writer(result.molecule, result.parameters, path)


def run(args) -> int:
    from grappa_like.api import load_model, parameterize
    from grappa_like.molecule import DEFAULT_MAX_ATOMS

    if not args.inputs and not args.smiles:
        log.error("error: give at least one INPUT file or --smiles")
        return 2
    try:
        records = collect_records(args.inputs, args.smiles, args.max_atoms or DEFAULT_MAX_ATOMS)
    except errors.MoleculeInputError as error:
        log.error(f"error: {error}")
        return 2
    try:
        model = load_model(args.model)
    except errors.ModelFileError as error:
        log.error(f"error: {error}")
        return 2

    good = [item for _, _, item in records if not isinstance(item, Exception)]
    results = iter(parameterize(good, model=model, progress=sys.stderr.isatty()))
    outcomes = []  # (record name, input, Result or error)
    for name, source, item in records:
        outcomes.append((name, source, item if isinstance(item, Exception) else next(results)))

    single = len(outcomes) == 1
    if not single:
        os.makedirs(args.output, exist_ok=True)
    file_names = unique_file_names([name for name, _, _ in outcomes])
    failures, written = [], 0
    for (name, source, outcome), file_name in zip(outcomes, file_names):
        error = outcome if isinstance(outcome, Exception) else outcome.error
        if error is None:
            try:
                path = args.output if single else os.path.join(args.output, file_name + EXTENSIONS[args.format])
                write_result(outcome, args.format, path)
                written += 1
                continue
            except Exception as write_error:  # e.g. an unwritable folder: report it as this record's failure
                error = write_error
        failures.append((name, source, type(error).__name__, str(error)))
        log.error(f"failed: {name}: {type(error).__name__}: {error}")
    if not single:
        lines = ["record\tinput\terror_class\tmessage"] + [
            "\t".join(field.replace("\t", " ").replace("\n", " ") for field in failure) for failure in failures]
        atomic_write_text(os.path.join(args.output, "failures.tsv"), "\n".join(lines) + "\n")
    log.info(f"{written} written, {len(failures)} failed -> {args.output}")
    if written == 0:
        return 2
    return 1 if failures else 0
