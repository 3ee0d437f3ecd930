"""Library mode (grappa_like.library, ``grappa-like parameterize --library``): streaming, sharding, manifest, resume."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

from grappa_like.cli.parameterize import unique_file_names
from grappa_like.library import MANIFEST, ManifestMismatchError, UniqueNamer, parameterize_library

SMILES = ["C", "CC", "CCO", "c1ccccc1", "CC(=O)O", "CCN", "OCCO", "c1ccncc1", "CC(C)C", "CCOC", "ClCC", "C=CC"]
MALFORMED = {11: "C1CC", 19: "[Xx]", 26: "c1cc"}


def write_library(path, n_records: int, malformed=True) -> list[str]:
    """A .smi library; names repeat (so some get _2 suffixes); a few malformed SMILES in the middle."""
    names = []
    with open(path, "w") as handle:
        handle.write("smiles name\n")
        for index in range(n_records):
            name = f"lig{index % 17}"
            smiles = MALFORMED[index] if malformed and index in MALFORMED else SMILES[index % len(SMILES)] + "C" * (index // 50)
            handle.write(f"{smiles} {name}\n")
            names.append(name)
    return names


def manifest_rows(out_dir):
    with open(os.path.join(out_dir, MANIFEST), encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    assert lines[0].startswith("# grappa_like-library-manifest-v2")
    assert lines[1].split("\t") == ["record", "position", "file", "status", "error_class", "message", "ood_score"]
    assert lines[-1] == ""
    return [line.split("\t") for line in lines[2:-1]]


def output_files(out_dir) -> dict[str, os.stat_result]:
    files = {}
    for shard in sorted(os.listdir(out_dir)):
        folder = os.path.join(out_dir, shard)
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                files[f"{shard}/{name}"] = os.stat(os.path.join(folder, name))
    return files


def run_cli(library, out_dir, model_file_path, *extra, **popen):
    command = [sys.executable, "-c", "import sys; from grappa_like.cli import main; sys.exit(main())", "parameterize", str(library), "-o", str(out_dir),
               "--library", "--model", model_file_path, *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_unique_namer_matches_cli_names():
    names = ["a", "A", "a", "a_2", "x/y", "x y", "", "a"]
    namer = UniqueNamer()
    assert [namer(name) for name in names] == unique_file_names(names)


def test_library_sharded_layout_and_failures(tmp_path, random_model):
    library = tmp_path / "lib.smi"
    names = write_library(library, 40)
    out_dir = tmp_path / "out"
    summary = parameterize_library(library, out_dir, model=random_model, batch_size=8, progress=False)
    assert summary["records"] == 40
    assert (summary["done"], summary["failed"], summary["skipped"]) == (37, 3, 0)
    rows = manifest_rows(out_dir)
    assert [int(row[1]) for row in rows] == list(range(40))  # one line per record, input order
    file_names = unique_file_names(names)
    for row, name, file_name in zip(rows, names, file_names):
        position = int(row[1])
        assert row[0] == name
        if position in MALFORMED:
            assert row[2:5] == ["", "failed", "UnparsableInputError"] and row[5]
            continue
        assert row[3] == "ok"
        shard = hashlib.sha256(file_name.encode()).hexdigest()[:2]
        assert row[2] == f"{shard}/{file_name}.xml"
        assert (out_dir / shard / f"{file_name}.xml").read_text().startswith("<?xml")
    assert len(output_files(out_dir)) == 37
    assert all(len(entry) == 2 for entry in os.listdir(out_dir) if entry != MANIFEST)
    # rerun: everything skipped, nothing rewritten
    before = output_files(out_dir)
    again = parameterize_library(library, out_dir, model=random_model, progress=False)
    assert (again["done"], again["failed"], again["skipped"], again["ok_total"], again["failed_total"]) == (0, 0, 40, 37, 3)
    assert {k: (v.st_ino, v.st_mtime_ns) for k, v in output_files(out_dir).items()} == \
        {k: (v.st_ino, v.st_mtime_ns) for k, v in before.items()}
    assert len(manifest_rows(out_dir)) == 40


def test_partial_manifest_line_repaired_and_file_adopted(tmp_path, random_model):
    library = tmp_path / "lib.smi"
    write_library(library, 10, malformed=False)
    out_dir = tmp_path / "out"
    parameterize_library(library, out_dir, model=random_model, batch_size=4, progress=False)
    manifest = out_dir / MANIFEST
    text = manifest.read_text()
    manifest.write_text(text[:-12])  # killed while appending the last line: its file is in place
    stale = out_dir / "00" / ".lig0.xml.123-0123abcd.tmp"
    stale.parent.mkdir(exist_ok=True)
    stale.write_text("partial")
    before = output_files(out_dir)
    summary = parameterize_library(library, out_dir, model=random_model, progress=False)
    assert (summary["done"], summary["skipped"], summary["adopted"]) == (0, 9, 1)
    assert manifest.read_text() == text
    assert not stale.exists()
    after = output_files(out_dir)
    assert {k: v.st_ino for k, v in after.items()} == {k: v.st_ino for k, v in before.items() if k in after}
    assert len(after) == 10


def test_manifest_of_another_run_is_refused(tmp_path, random_model):
    library = tmp_path / "lib.smi"
    write_library(library, 3, malformed=False)
    parameterize_library(library, tmp_path / "out", model=random_model, progress=False)
    with pytest.raises(ManifestMismatchError):
        parameterize_library(library, tmp_path / "out", model=random_model, output_format="ffxml", progress=False)


def test_cli_library_usage_errors(tmp_path, model_file_path):
    process = run_cli(tmp_path / "a.mol2", tmp_path / "out", model_file_path)
    assert process.wait(timeout=60) == 2
    assert "--library" in process.stderr.read()


def test_resume_after_sigkill(tmp_path, model_file_path):
    library = tmp_path / "lib.smi"
    write_library(library, 400)
    killed = tmp_path / "killed"
    process = run_cli(library, killed, model_file_path, "--batch-size", "4")
    manifest = killed / MANIFEST
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if manifest.exists() and manifest.read_text().count("\tok\t") >= 30:
            break
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    before = {name: (stat.st_ino, stat.st_mtime_ns) for name, stat in output_files(killed).items()
              if not name.split("/")[1].startswith(".")}
    assert 30 <= len(before) < 397, len(before)

    resumed = run_cli(library, killed, model_file_path, "--batch-size", "4")
    assert resumed.wait(timeout=120) == 1, resumed.stderr.read()
    assert "skipped" in resumed.stderr.read()
    reference = tmp_path / "reference"
    uninterrupted = run_cli(library, reference, model_file_path)
    assert uninterrupted.wait(timeout=120) == 1

    rows = manifest_rows(killed)
    assert sorted(int(row[1]) for row in rows) == list(range(400))  # every record exactly once
    assert sum(row[3] == "ok" for row in rows) == 397
    assert manifest_rows(reference) == rows
    after = output_files(killed)
    assert not [name for name in after if name.split("/")[1].startswith(".")]  # no temporary left
    assert len(after) == 397
    for name, identity in before.items():  # written before the kill: never rewritten
        assert (after[name].st_ino, after[name].st_mtime_ns) == identity
    for name in after:
        assert (killed / name).read_bytes() == (reference / name).read_bytes()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_read_file_streams_smi(tmp_path):
    """The first record comes out before the rest of the file is written: read_file does not read it all first."""
    import threading

    from grappa_like.molecule import read_file

    fifo = tmp_path / "pipe.smi"
    os.mkfifo(fifo)
    first_read = threading.Event()

    def writer():
        with open(fifo, "w") as handle:
            handle.write("CCO ethanol\n")
            handle.flush()
            first_read.wait(timeout=10)
            handle.write("CC ethane\n")

    thread = threading.Thread(target=writer)
    thread.start()
    start = time.monotonic()
    records = read_file(str(fifo))
    name, molecule = next(records)
    elapsed = time.monotonic() - start
    first_read.set()
    rest = list(records)
    thread.join()
    assert name == "ethanol" and molecule.n_atoms == 9
    assert elapsed < 5, "read_file waited for the whole file before yielding its first record"
    assert [record for record, _ in rest] == ["ethane"]
