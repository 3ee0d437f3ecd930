"""Start-up cost of a fresh process: this version (base install, numpy inference) vs a baseline, side by side.

Whole processes, as a user runs them, alternating between the two versions; median of --repeats
after one warm-up run each:
  1. ``python -c "import grappa_like"``;
  2. ``python -c "import grappa_like; grappa_like.load_model()"`` (imports the whole API, reads the model);
  3. ``grappa-like parameterize imatinib.sdf -o x.xml`` (the default command, with its OOD score).
Also reports the installed size of the base environment and of torch + torch_geometric.

The baseline is an earlier checkout of the package run with an interpreter that has its
dependencies (torch, PyG), e.g. the dev venv:
  git worktree add /tmp/baseline 7089a95
  python3 -m venv /tmp/base && /tmp/base/bin/pip install dist/grappa_like-*.whl   (base install)
  OMP_NUM_THREADS=1 python scripts/startup_benchmark.py --python /tmp/base/bin/python \\
      --baseline-python /work/venv/bin/python --baseline-source /tmp/baseline --output docs/startup-table.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from rdkit import Chem
from rdkit.Chem import AllChem

IMATINIB = "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1"
CLI = "import sys; from grappa_like.cli import main; sys.exit(main())"


def _folder_size_mb(path: str) -> float:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, name)) for name in files
                     if not os.path.islink(os.path.join(root, name)))
    return total / 1e6


def _site_packages(python: str) -> str:
    return subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def _time(command: list[str], environment: dict, folder: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=environment, cwd=folder)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True, help="interpreter of an environment with this version installed")
    parser.add_argument("--baseline-python", required=True, help="interpreter that has the baseline's dependencies")
    parser.add_argument("--baseline-source", required=True, help="checkout of the baseline (put on PYTHONPATH)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    folder = tempfile.mkdtemp()
    mol = Chem.AddHs(Chem.MolFromSmiles(IMATINIB))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    mol.SetProp("_Name", "imatinib")
    with Chem.SDWriter(os.path.join(folder, "imatinib.sdf")) as writer:
        writer.write(mol)

    threads = os.environ.get("OMP_NUM_THREADS", "1")
    ours_env = dict(os.environ, OMP_NUM_THREADS=threads)
    ours_env.pop("PYTHONPATH", None)
    baseline_env = dict(ours_env, PYTHONPATH=os.path.abspath(args.baseline_source))
    cases = {
        "import grappa_like": ["-c", "import grappa_like"],
        "import + load_model()": ["-c", "import grappa_like; grappa_like.load_model()"],
        "parameterize imatinib.sdf -o x.xml": ["-c", CLI, "parameterize", "imatinib.sdf", "-o", "x.xml"],
    }
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"OMP_NUM_THREADS={threads}; whole processes, median of {args.repeats} after one warm-up, "
             "the two versions alternating", "",
             "| command | this version (s) | baseline (s) | speed-up |", "|---|---|---|---|"]
    for name, arguments in cases.items():
        ours_command, baseline_command = [args.python, *arguments], [args.baseline_python, *arguments]
        _time(ours_command, ours_env, folder)
        _time(baseline_command, baseline_env, folder)
        ours, baseline = [], []
        for _ in range(args.repeats):
            ours.append(_time(ours_command, ours_env, folder))
            baseline.append(_time(baseline_command, baseline_env, folder))
        ours_median, baseline_median = statistics.median(ours), statistics.median(baseline)
        lines.append(f"| `{name}` | {ours_median:.2f} | {baseline_median:.2f} | {baseline_median / ours_median:.1f}× |")

    base_environment = os.path.dirname(os.path.dirname(os.path.dirname(_site_packages(args.python))))
    baseline_site = _site_packages(args.baseline_python)
    torch_size = sum(_folder_size_mb(os.path.join(baseline_site, name)) for name in ("torch", "torch_geometric"))
    lines += ["", f"Installed size of the base environment ({base_environment}, everything `pip install grappa_like` "
              f"brings, pip included): **{_folder_size_mb(base_environment):.0f} MB**; torch + torch_geometric alone "
              f"(the `train` extra, not needed to parameterize): {torch_size:.0f} MB.", "",
              f"Command: `{' '.join(sys.argv)}`"]
    publish(lines, args.output)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from harness import publish

    main()
