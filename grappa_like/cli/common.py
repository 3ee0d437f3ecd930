"""Helpers shared by the CLI commands."""

from __future__ import annotations

import argparse
import logging


def whole_number_at_least(minimum: int):
    """argparse type: an int >= ``minimum``, with a one-line message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def load_model_or_report(path, log: logging.Logger):
    """The model at ``path`` (None: the shipped one), or None after logging one line naming the problem."""
    from grappa_like import errors
    from grappa_like.api import load_model

    try:
        return load_model(path)
    except errors.ModelFileError as error:
        log.error("error: " + " ".join(str(error).split()))
        return None


def collect_records(inputs: list[str], smiles: list[str], max_atoms: int):
    """List of (record name, input description, Molecule or error) for every record of every input."""
    from grappa_like import errors
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
