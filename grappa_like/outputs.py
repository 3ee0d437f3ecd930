"""Where and how a parameterized molecule is written: output formats, file extensions, output paths.

Shared by the command line and the library mode (both above this module; it knows neither).
Path rules, as a user expects them: an output ending in a path separator, or an existing folder,
is a folder; missing parent folders are created; a place that cannot be written is one
:class:`~grappa_like.errors.OutputPathError` naming it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

from grappa_like import errors
from grappa_like.fileio import atomic_write_text

EXTENSIONS = {"openmm": ".xml", "ffxml": ".ffxml", "gromacs": ".top", "amber": ".prmtop",
              "gromacs-itp": ".itp", "amber-ligand": ".frcmod"}  # the last two: ligands to combine with a protein


def is_folder_output(output: str, n_records: int) -> bool:
    """True when ``output`` names a folder: several records, a trailing separator, or an existing folder."""
    return n_records != 1 or output.endswith(("/", os.sep)) or os.path.isdir(output)


def make_folder(folder: str) -> str:
    """Create ``folder`` and its parents if missing; :class:`errors.OutputPathError` naming it if impossible."""
    try:
        os.makedirs(folder or ".", exist_ok=True)
    except FileExistsError:
        raise errors.OutputPathError(f"{folder}: cannot make this output folder (a file of that name exists)") from None
    except OSError as error:
        raise errors.OutputPathError(f"{folder}: cannot make this output folder ({error.strerror or error})") from None
    if not os.access(folder or ".", os.W_OK | os.X_OK):
        raise errors.OutputPathError(f"{folder}: output folder is not writable")
    return folder


def prepare_file(path: str) -> str:
    """Check that ``path`` can be written as a file (parent folders created); return it."""
    if os.path.isdir(path):
        raise errors.OutputPathError(f"{path}: is a folder, not a file")
    make_folder(os.path.dirname(path))
    return path


def write_result(result, output_format: str, path: str) -> None:
    """Write one parameterized molecule (a :class:`~grappa_like.api.Result`) in ``output_format`` to
    ``path``; each file is written atomically (gromacs/amber also write .gro/.inpcrd next to it)."""
    if output_format == "openmm":
        import openmm

        atomic_write_text(path, openmm.XmlSerializer.serialize(result.to_openmm()))
        return
    from grappa_like import export

    writer = {"ffxml": export.to_ffxml, "gromacs": export.to_gromacs, "amber": export.to_amber,
              "gromacs-itp": export.to_gromacs_itp, "amber-ligand": export.to_amber_ligand}[output_format]
    writer(result.molecule, result.parameters, path)


def one_line(text) -> str:
    """``text`` (or an error) on one line, at most 500 characters: how messages reach tables and logs."""
    return " ".join(str(text).split())[:500]


@dataclass
class RecordOutcome:
    """What parameterizing one record gives: its output files (name -> bytes, main file last) or its error."""

    files: dict[str, bytes] = field(default_factory=dict)
    error_class: str = ""
    message: str = ""
    ood_score: float | None = None  # kcal/mol/Å, see grappa_like.ood


def render_files(result, output_format: str, file_name: str) -> dict[str, bytes]:
    """Output files of one parameterized molecule as ``{file name: bytes}``, the main ``<file_name>.<ext>`` last."""
    main = file_name + EXTENSIONS[output_format]
    if output_format == "openmm":
        import openmm

        return {main: openmm.XmlSerializer.serialize(result.to_openmm()).encode("utf-8")}
    with tempfile.TemporaryDirectory() as folder:  # the writers of the other formats write files (two for some)
        write_result(result, output_format, os.path.join(folder, main))
        files = {}
        for name in sorted(os.listdir(folder), key=lambda name: name == main):
            with open(os.path.join(folder, name), "rb") as handle:
                files[name] = handle.read()
        return files


def parameterize_records(model, records, output_format: str, max_atoms: int, total_charge: int | None,
                         ood_score: bool = False) -> list[RecordOutcome]:
    """One :class:`RecordOutcome` per ``(file name, Molecule)`` record, in order; runs where it is called (a worker or the driver)."""
    from grappa_like.api import parameterize

    results = parameterize([molecule for _, molecule in records], model=model, progress=False, max_atoms=max_atoms,
                           batch_size=max(len(records), 1), total_charge=total_charge, ood_score=ood_score)
    outcomes = []
    for (file_name, _), result in zip(records, results):
        error = result.error
        if error is None:
            try:
                outcomes.append(RecordOutcome(files=render_files(result, output_format, file_name),
                                              ood_score=result.ood_score))
                continue
            except Exception as render_error:  # e.g. a System OpenMM refuses: this record fails, the run goes on
                error = render_error
        outcomes.append(RecordOutcome(error_class=type(error).__name__, message=one_line(error)))
    return outcomes
