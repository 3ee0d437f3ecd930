"""Library mode on Dask (grappa_like.cluster): same files and manifest as the in-process run, model once per worker."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from grappa_like.library import parameterize_library
from test_library import MALFORMED, manifest_rows, output_files, run_cli, write_library

pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the functions given to client.run below

N_RECORDS = 30  # with MALFORMED at 11, 19, 26: malformed records in the middle of the library


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_same_run(out_dir, reference):
    """Same manifest lines (one per record, in input order) and the same files, byte for byte."""
    assert manifest_rows(out_dir) == manifest_rows(reference)
    assert [int(row[1]) for row in manifest_rows(out_dir)] == list(range(N_RECORDS))
    failed = {int(row[1]) for row in manifest_rows(out_dir) if row[3] == "failed"}
    assert failed == set(MALFORMED)
    files = output_files(out_dir)
    assert set(files) == set(output_files(reference)) and len(files) == N_RECORDS - len(MALFORMED)
    for name in files:
        assert (out_dir / name).read_bytes() == (reference / name).read_bytes(), name


@pytest.fixture
def library(tmp_path):
    path = tmp_path / "lib.smi"
    write_library(path, N_RECORDS)
    return path


def test_local_cluster_cli_matches_in_process(tmp_path, library, model_file_path):
    reference = tmp_path / "reference"
    assert run_cli(library, reference, model_file_path, "--batch-size", "4").wait(timeout=120) == 1
    dask_out = tmp_path / "dask"
    process = run_cli(library, dask_out, model_file_path, "--batch-size", "4", "--workers", "2")
    assert process.wait(timeout=180) == 1, process.stderr.read()
    assert "27 written, 3 failed" in process.stderr.read()
    assert_same_run(dask_out, reference)


def _count_model_arrivals():
    """On a worker: count how often a model arrives there (ModelPlugin.setup)."""
    from grappa_like import cluster

    def counting_setup(self, worker, original=cluster.ModelPlugin.setup):
        cluster.arrivals = getattr(cluster, "arrivals", 0) + 1
        original(self, worker)
    cluster.ModelPlugin.setup = counting_setup


def _arrivals():
    from grappa_like import cluster

    return getattr(cluster, "arrivals", 0)


def test_scheduler_and_worker_processes(tmp_path, library, model_file_path, random_model):
    """A real ``dask scheduler`` + two ``dask worker`` processes on 127.0.0.1: same bytes, model sent once per worker."""
    from distributed import Client

    dask = shutil.which("dask", path=os.path.dirname(sys.executable)) or "dask"
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                  env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            processes.append(subprocess.Popen(
                [dask, "worker", address, "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
                env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            client.run(_count_model_arrivals)
            reference = tmp_path / "reference"
            parameterize_library(library, reference, model=random_model, batch_size=1, progress=False)
            distributed = tmp_path / "distributed"
            summary = parameterize_library(library, distributed, model=random_model, batch_size=1, progress=False,
                                           client=client, window=3)
            assert (summary["done"], summary["failed"]) == (27, 3)
            assert sorted(client.run(_arrivals).values()) == [1, 1]  # 27 tasks, one model per worker
            assert_same_run(distributed, reference)

            rerun = parameterize_library(library, distributed, model=random_model, progress=False, client=client)
            assert (rerun["done"], rerun["skipped"]) == (0, N_RECORDS)

        cli_out = tmp_path / "cli"  # the model file holds the same weights as random_model
        process = run_cli(library, cli_out, model_file_path, "--scheduler", address, "--batch-size", "8")
        assert process.wait(timeout=120) == 1, process.stderr.read()
        assert_same_run(cli_out, reference)
    finally:
        for process in reversed(processes):
            process.terminate()
        deadline = time.monotonic() + 30
        for process in processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
