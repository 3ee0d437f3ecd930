"""Library-scale parameterization: stream a large .smi / .sdf / .sdf.gz, write results as they are done, resume.

``parameterize_library(path, out_dir)`` reads the input record by record (never the whole file),
parameterizes the records in batches, and writes each result atomically (temporary name, fsync,
rename) to ``out_dir/<shard>/<name>.<ext>``, where ``<shard>`` is the first two hex characters of
sha256(``<name>``), so no folder holds more than ~1/256 of the library.

``out_dir/manifest.tsv`` gets one line per record (appended and fsynced after the record's file
is in place)::

    record  position  file  status  error_class  message

``position`` is the 0-based index of the record in the input stream, ``file`` the output path
relative to ``out_dir`` (empty for a failure), ``status`` ``ok`` or ``failed``. Its first line is a
``#`` comment naming the input, format and model checksum; the second line is the column header.

Rerunning the same call after a crash or a kill resumes: records whose manifest line says ``ok``
(and whose file exists) or ``failed`` are skipped (``retry_failed=True`` retries the failures);
a file that is in place without a manifest line (killed between rename and manifest write) is
adopted, never rewritten; a partial last manifest line is cut off; stale temporary files are
removed. File names are the record names made unique in input order (as in the multi-record
mode of the CLI), so they are the same on every run.

With a Dask ``client`` the batches run on the cluster's workers (:mod:`grappa_like.cluster`); the
workers send the output files back as bytes and only this process (the driver) writes files and
the manifest, so the workers need no access to ``out_dir`` and the resume rules above hold as they are.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time

from grappa_like import errors
from grappa_like.fileio import UniqueNamer
from grappa_like.outputs import RecordOutcome, one_line as _clean, parameterize_records

MANIFEST = "manifest.tsv"
MANIFEST_VERSION = "grappa_like-library-manifest-v2"
COLUMNS = ("record", "position", "file", "status", "error_class", "message", "ood_score")
_TEMPORARY = re.compile(r"^\..*\.\d+-[0-9a-f]{8}\.tmp$")


class ManifestMismatchError(errors.GrappaLikeError, ValueError):
    """The output folder holds a manifest written for another input, format or model."""


def shard_of(name: str) -> str:
    """Shard folder of an output name: the first two hex characters of its sha256."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:2]


def _fsync_path(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_durable(path: str, content: bytes) -> None:
    """Write ``content`` to ``path`` atomically and durably (temporary file, fsync, rename); fsync the folder after."""
    from grappa_like.fileio import atomic_write

    def write(temporary):
        with open(temporary, "xb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    atomic_write(path, write)


class Manifest:
    """The append-only manifest: read (repairing a partial last line), then append fsynced lines."""

    def __init__(self, out_dir: str, header: str):
        self.path = os.path.join(out_dir, MANIFEST)
        self.entries: dict[int, dict] = {}  # position -> last line for it
        if os.path.exists(self.path):
            self._read(header)
        else:
            with open(self.path, "x", encoding="utf-8", newline="\n") as handle:
                handle.write(header + "\n" + "\t".join(COLUMNS) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            _fsync_path(out_dir)
        self._handle = open(self.path, "a", encoding="utf-8", newline="\n")

    def _read(self, header: str) -> None:
        with open(self.path, "rb") as handle:
            data = handle.read()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):  # killed in the middle of a line: cut it off
            with open(self.path, "r+b") as handle:
                handle.truncate(complete)
                handle.flush()
                os.fsync(handle.fileno())
        lines = data[:complete].decode("utf-8", errors="replace").split("\n")
        if lines and lines[0].startswith("#") and lines[0] != header:
            raise ManifestMismatchError(
                f"{self.path} was written for another run ({lines[0][2:]}); this run is ({header[2:]}). "
                "Use a new output folder.")
        for line in lines:
            fields = line.split("\t")
            if line.startswith("#") or len(fields) != len(COLUMNS) or fields[0] == "record":
                continue
            try:
                position = int(fields[1])
            except ValueError:
                continue
            self.entries[position] = dict(zip(COLUMNS, fields))

    def append(self, record: str, position: int, file: str, status: str, error_class: str = "",
               message: str = "", ood_score: float | None = None) -> None:
        score = "" if ood_score is None else f"{ood_score:.4f}"
        fields = (_clean(record), str(position), file, status, error_class, _clean(message), score)
        self._handle.write("\t".join(fields) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.entries[position] = dict(zip(COLUMNS, fields))

    def close(self) -> None:
        self._handle.close()


def _remove_stale_temporaries(out_dir: str) -> int:
    """Remove the temporary files a killed run left in the shard folders; return how many."""
    removed = 0
    for shard in os.listdir(out_dir):
        folder = os.path.join(out_dir, shard)
        if len(shard) != 2 or not os.path.isdir(folder):
            continue
        with os.scandir(folder) as entries:
            for entry in entries:
                if _TEMPORARY.match(entry.name):
                    os.remove(entry.path)
                    removed += 1
    return removed


def _report(log, line: str, warning: bool = False) -> None:
    """A line to ``log`` (warning or info), or to stderr without a logger."""
    if log is None:
        print(line, file=sys.stderr)
    elif warning:
        log.warning(line)
    else:
        log.info(line)


def parameterize_library(path, out_dir, model=None, output_format: str = "openmm", batch_size: int = 64,
                         progress: bool = True, max_atoms: int | None = None, total_charge: int | None = None,
                         retry_failed: bool = False, log=None, client=None, window: int | None = None,
                         ood_score: bool = False) -> dict:
    """Parameterize every record of a large .smi / .sdf / .sdf.gz into a sharded, resumable output folder.

    ``client``: a ``dask.distributed.Client``; batches of ``batch_size`` records then run on its
    workers (the model is sent once per worker; see :mod:`grappa_like.cluster`), at most ``window``
    batches at a time (default: 4 per worker thread, at least 8). The files and the manifest are
    the same as those of the in-process run (``client=None``), byte for byte.

    ``ood_score``: write each record's out-of-domain score (kcal/mol/Å; needs a model with an
    ensemble, ~0.1 s per molecule) into the manifest's ``ood_score`` column, with a warning naming
    each record above the model's threshold; ``above_threshold`` in the summary counts them.

    Returns a summary dict: ``done`` (written by this run), ``failed`` (failed in this run),
    ``skipped`` (already finished by an earlier run), ``adopted`` (files found in place without a
    manifest line), ``ok_total`` / ``failed_total`` (over all runs), ``records``, ``seconds`` and
    ``rate`` (records written per second by this run). A summary line is printed to stderr (or
    given to ``log.info``). Raises :class:`ManifestMismatchError` if ``out_dir`` belongs to
    another input / format / model, and :class:`grappa_like.errors.ModelFileError` for a bad model.
    """
    from grappa_like.api import Model, load_model
    from grappa_like.outputs import EXTENSIONS, make_folder
    from grappa_like.molecule import DEFAULT_MAX_ATOMS, read_file

    if output_format not in EXTENSIONS:
        raise ValueError(f"unknown output format {output_format!r} (use {', '.join(sorted(EXTENSIONS))})")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not isinstance(model, Model):
        model = load_model(model)
    path, out_dir = str(path), str(out_dir)
    max_atoms = max_atoms or DEFAULT_MAX_ATOMS
    extension = EXTENSIONS[output_format]
    make_folder(out_dir)
    header = (f"# {MANIFEST_VERSION} input={os.path.basename(path)} format={output_format} "
              f"model_sha256={model.checksum or 'unknown'}")
    manifest = Manifest(out_dir, header)
    _remove_stale_temporaries(out_dir)

    from tqdm.auto import tqdm

    bar = tqdm(desc="library", unit="mol", disable=not (progress and sys.stderr.isatty()))
    counts = {"done": 0, "failed": 0, "skipped": 0, "adopted": 0, "above_threshold": 0}
    threshold = model.ood_threshold
    start = time.perf_counter()
    made_shards: set[str] = set()
    n_records = 0

    def batches():
        """Lists of (position, record, file name, Molecule or parse error) still to do, read lazily."""
        nonlocal n_records
        namer = UniqueNamer()
        pending = []
        for position, (record, item) in enumerate(read_file(path, max_atoms=max_atoms)):
            n_records += 1
            file_name = namer(record)
            previous = manifest.entries.get(position)
            if previous is not None:
                if previous["status"] == "ok" and os.path.exists(os.path.join(out_dir, previous["file"])):
                    counts["skipped"] += 1
                    bar.update(1)
                    continue
                if previous["status"] == "failed" and not retry_failed:
                    counts["skipped"] += 1
                    bar.update(1)
                    continue
            elif not isinstance(item, Exception):
                shard = shard_of(file_name)
                if os.path.exists(os.path.join(out_dir, shard, file_name + extension)):
                    # written by a run killed before its manifest line: keep the file, add the line
                    manifest.append(record, position, f"{shard}/{file_name}{extension}", "ok")
                    counts["adopted"] += 1
                    bar.update(1)
                    continue
            pending.append((position, record, file_name, item))
            if len(pending) >= batch_size:
                yield pending
                pending = []
        if pending:
            yield pending

    def commit(pending, outcomes) -> None:
        """Write the files of a batch (input order), each followed by its manifest line."""
        outcomes = iter(outcomes)
        for position, record, file_name, item in pending:
            if isinstance(item, Exception):
                outcome = RecordOutcome(error_class=type(item).__name__, message=_clean(item))
            else:
                outcome = next(outcomes)
            relative = ""
            if outcome.files:
                shard = shard_of(file_name)
                relative = f"{shard}/{file_name}{extension}"
                try:
                    if shard not in made_shards:
                        os.makedirs(os.path.join(out_dir, shard), exist_ok=True)
                        made_shards.add(shard)
                    for name, content in outcome.files.items():  # the main file last: its presence means done
                        _write_durable(os.path.join(out_dir, shard, name), content)
                    _fsync_path(os.path.join(out_dir, shard))
                except Exception as write_error:  # e.g. a full disk: this record fails, the run goes on
                    outcome = RecordOutcome(error_class=type(write_error).__name__, message=_clean(write_error))
            if not outcome.error_class:
                manifest.append(record, position, relative, "ok", ood_score=outcome.ood_score)
                counts["done"] += 1
                if outcome.ood_score is not None and threshold is not None and outcome.ood_score > threshold:
                    counts["above_threshold"] += 1
                    _report(log, f"warning: {record}: out of domain: OOD score {outcome.ood_score:.2f} kcal/mol/Å is "
                                 f"above the model's threshold {threshold:.2f}", warning=True)
            else:
                manifest.append(record, position, "", "failed", outcome.error_class, outcome.message)
                counts["failed"] += 1
            bar.update(1)

    def molecules(pending):
        return [(file_name, item) for _, _, file_name, item in pending if not isinstance(item, Exception)]

    try:
        if client is None:
            for pending in batches():
                commit(pending, parameterize_records(model, molecules(pending), output_format, max_atoms, total_charge,
                                                     ood_score))
        else:
            from grappa_like.cluster import ordered_outcomes

            for pending, outcomes in ordered_outcomes(client, model, batches(), molecules, window,
                                                      output_format=output_format, max_atoms=max_atoms,
                                                      total_charge=total_charge, ood_score=ood_score):
                commit(pending, outcomes)
    finally:
        bar.close()
        manifest.close()

    seconds = time.perf_counter() - start
    statuses = [entry["status"] for position, entry in manifest.entries.items() if position < n_records]
    summary = dict(counts, records=n_records, ok_total=statuses.count("ok"), failed_total=statuses.count("failed"),
                   seconds=round(seconds, 3), rate=round(counts["done"] / seconds, 2) if seconds > 0 else 0.0)
    line = (f"library {path}: {summary['records']} records; this run: {summary['done']} written, "
            f"{summary['failed']} failed, {summary['skipped']} skipped (done earlier), {summary['adopted']} adopted; "
            f"in all: {summary['ok_total']} ok, {summary['failed_total']} failed; "
            + (f"{counts['above_threshold']} above the OOD threshold (this run); " if ood_score else "")
            + f"{summary['rate']} mol/s -> {out_dir}")
    _report(log, line)
    return summary
