"""Library mode at scale: throughput and peak memory, in-process vs a Dask LocalCluster of 1 and 2 workers.

For each size N (default 1000) a .smi library of N drug-like molecules is generated in --workdir
(never committed): the drug-like and dipeptide SMILES of the training data file (1497 molecules,
map numbers and hydrogens removed) in a seeded shuffle, repeated with unique names beyond that.
Each configuration runs ``grappa-like parameterize LIB -o OUT --library [--workers K]`` as a child
process (one thread per process: OMP_NUM_THREADS=1); the table gives

  - the command's wall time and the rate the library run reports (records written per second,
    after model loading and cluster start-up),
  - the peak RSS of the driver and the peak summed RSS of the driver and its worker processes
    (psutil, sampled every 0.2 s),
  - the CPU seconds of all its processes (getrusage of the waited-for children: driver, workers),
  - the Dask overhead per molecule against the in-process run at equal cores (1 worker vs 1 thread;
    with --cpus 0 every process of both runs shares one core, so the rates compare equal cores),
  - the driver's cost per molecule of writing one output file durably plus its manifest line,
    which bounds how many molecules/s one driver can take from any number of workers.

With --repeats R the chosen configurations run R times, alternating; the table gives medians
(peak RSS: the largest).

Usage: python scripts/library_benchmark.py [--sizes 1000 10000 100000] [--runs 0 1 2] [--repeats R]
       [--cpus 0] [--model PATH] [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import h5py
import psutil
from rdkit import Chem

from harness import publish

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "train-v0.h5")
CONFIGURATIONS = (("in-process", []), ("Dask, 1 worker", ["--workers", "1"]), ("Dask, 2 workers", ["--workers", "2"]))


def drug_like_smiles(data_path: str) -> list[str]:
    """Canonical SMILES (no map numbers, hydrogens implicit) of the drug-like and dipeptide molecules of a data file."""
    smiles = []
    with h5py.File(data_path) as handle:
        for name in sorted(handle):
            if handle[name].attrs["subset"] == "capped_residue":
                continue
            mol = Chem.MolFromSmiles(handle[name].attrs["smiles"])
            for atom in mol.GetAtoms():
                atom.SetAtomMapNum(0)
            smiles.append(Chem.MolToSmiles(Chem.RemoveHs(mol)))
    random.Random(20261125).shuffle(smiles)
    return smiles


def write_library(path: str, smiles: list[str], size: int) -> None:
    with open(path, "w") as handle:
        for index in range(size):
            handle.write(f"{smiles[index % len(smiles)]} mol{index}\n")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(command: list[str]) -> dict:
    """Run ``command``; wall time, CPU seconds of it and its waited-for descendants, peak RSS of the
    process and of its whole process tree (MiB), and the rate it reports."""
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    cpu_before = _children_cpu_seconds()
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=stderr)
        root = psutil.Process(process.pid)
        peak_driver = peak_tree = 0
        while process.poll() is None:
            try:
                driver = root.memory_info().rss
                tree = driver + sum(child.memory_info().rss for child in root.children(recursive=True))
            except psutil.Error:
                continue
            peak_driver, peak_tree = max(peak_driver, driver), max(peak_tree, tree)
            time.sleep(0.2)
        wall = time.perf_counter() - start
        stderr.seek(0)
        text = stderr.read()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}:\n{text[-2000:]}")
    rate = re.search(r"([\d.]+) mol/s", text)
    return {"wall": wall, "rate": float(rate.group(1)) if rate else float("nan"),
            "cpu": _children_cpu_seconds() - cpu_before, "driver_mib": peak_driver / 2**20, "tree_mib": peak_tree / 2**20}


def summarise(runs: list[dict]) -> dict:
    """Medians of wall, rate and CPU over repeated runs; the largest peak RSS."""
    return {key: (max if key.endswith("_mib") else statistics.median)(run[key] for run in runs) for key in runs[0]}


def driver_write_cost(folder: str, n_files: int = 300, size: int = 75_000) -> float:
    """Seconds per molecule the driver spends writing one ``size``-byte file durably plus its manifest line."""
    from grappa_like.library import Manifest, _fsync_path, _write_durable, shard_of

    content = b"x" * size
    manifest = Manifest(folder, "# write-cost")
    start = time.perf_counter()
    for index in range(n_files):
        name = f"mol{index}"
        shard = os.path.join(folder, shard_of(name))
        os.makedirs(shard, exist_ok=True)
        _write_durable(os.path.join(shard, name + ".xml"), content)
        _fsync_path(shard)
        manifest.append(name, index, f"{shard_of(name)}/{name}.xml", "ok")
    manifest.close()
    return (time.perf_counter() - start) / n_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--runs", type=int, nargs="+", default=[0, 1, 2],
                        help="which of in-process (0), Dask 1 worker (1), Dask 2 workers (2) to run (default all)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each configuration, alternating (medians)")
    parser.add_argument("--cpus", default=None,
                        help="run every configuration under taskset -c CPUS (e.g. 0: equal cores for all)")
    parser.add_argument("--model", default=None, help="model file (default: the shipped model)")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--workdir", default=None, help="where libraries and outputs go (default: a temporary folder)")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    workdir = args.workdir or tempfile.mkdtemp(prefix="library-benchmark-")
    os.makedirs(workdir, exist_ok=True)
    grappa_like = shutil.which("grappa-like", path=os.path.dirname(sys.executable))
    smiles = drug_like_smiles(args.data)
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"{psutil.virtual_memory().total / 2**30:.0f} GiB; every process one thread (OMP_NUM_THREADS=1); "
             f"batch size 64 (one Dask task per batch)"
             + (f"; all processes pinned to CPUs {args.cpus} (taskset)" if args.cpus else "")
             + (f"; median of {args.repeats} alternating runs" if args.repeats > 1 else ""), "",
             "| molecules | run | wall (s) | library rate (mol/s) | CPU s, all processes | driver peak RSS (MiB) | "
             "all processes peak RSS (MiB) |",
             "|---|---|---|---|---|---|---|"]
    overheads = []
    for size in args.sizes:
        library = os.path.join(workdir, f"library-{size}.smi")
        write_library(library, smiles, size)
        runs = {CONFIGURATIONS[index][0]: [] for index in args.runs}
        for _ in range(args.repeats):
            for label, extra in (CONFIGURATIONS[index] for index in args.runs):
                out = os.path.join(workdir, f"out-{size}")
                shutil.rmtree(out, ignore_errors=True)
                command = [grappa_like, "parameterize", library, "-o", out, "--library", *extra]
                if args.model:
                    command += ["--model", args.model]
                if args.cpus:
                    command = ["taskset", "-c", args.cpus, *command]
                runs[label].append(run_measured(command))
                shutil.rmtree(out, ignore_errors=True)
                print(size, label, runs[label][-1], flush=True)
        results = {label: summarise(measured) for label, measured in runs.items()}
        for label, result in results.items():
            lines.append(f"| {size} | {label} | {result['wall']:.1f} | {result['rate']:.1f} | {result['cpu']:.1f} | "
                         f"{result['driver_mib']:.0f} | {result['tree_mib']:.0f} |")
        if "in-process" not in results or "Dask, 1 worker" not in results:
            continue
        ours, dask = results["in-process"], results["Dask, 1 worker"]
        per_molecule = {label: 1.0 / result["rate"] for label, result in results.items()}
        overheads.append(f"- {size} molecules: {1e3 * per_molecule['in-process']:.1f} ms/molecule in-process, "
                         f"{1e3 * per_molecule['Dask, 1 worker']:.1f} ms with Dask on 1 worker: overhead "
                         f"{1e3 * (per_molecule['Dask, 1 worker'] - per_molecule['in-process']):+.1f} ms/molecule "
                         f"({100 * (per_molecule['Dask, 1 worker'] / per_molecule['in-process'] - 1):+.0f} %); "
                         f"CPU seconds of the whole command {ours['cpu']:.1f} vs {dask['cpu']:.1f} "
                         f"({100 * (dask['cpu'] / ours['cpu'] - 1):+.0f} %, start-up included)"
                         + (f"; 2 workers vs 1: x{results['Dask, 2 workers']['rate'] / dask['rate']:.2f}"
                            if "Dask, 2 workers" in results else ""))
    write_folder = os.path.join(workdir, "write-cost")
    shutil.rmtree(write_folder, ignore_errors=True)
    os.makedirs(write_folder)
    write_cost = driver_write_cost(write_folder)
    shutil.rmtree(write_folder, ignore_errors=True)
    lines += ["", "Dask overhead at equal cores (from the library rates):", *overheads, "",
              f"Driver: writing one 75 kB output file durably plus its manifest line takes {1e3 * write_cost:.2f} ms "
              f"here (at most {1 / write_cost:.0f} molecules/s through one driver on this disk)."]
    publish(lines, args.output)


if __name__ == "__main__":
    main()
