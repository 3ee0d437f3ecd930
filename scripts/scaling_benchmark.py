"""Scaling of parameterization with molecule size: time and peak memory from ~10 to 10,000+ atoms.

Polyalanine peptides of growing length (RDKit ``MolFromSequence``, explicit H), each measured in a
fresh subprocess (peak RSS from ``resource.getrusage``; time = median of --repeats after a
warm-up, SMILES/graph -> OpenMM System, model loading excluded), plus a log-log fit of time
vs atoms (slope 1 = linear). Writes a Markdown table and a PNG curve.
Usage: OMP_NUM_THREADS=1 python scripts/scaling_benchmark.py --output-dir docs/figures
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

RESIDUES = (1, 3, 10, 30, 100, 300, 1000)

CHILD = r"""
import json, resource, statistics, sys, time
from rdkit import Chem
import grappa_like
from grappa_like.molecule import from_rdkit
n_residues, repeats, model_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] or None
model = grappa_like.load_model(model_path)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
molecule = from_rdkit(Chem.AddHs(Chem.MolFromSequence("A" * n_residues)), f"ala{n_residues}", max_atoms=10**7)
def run():
    (result,) = grappa_like.parameterize([molecule], model=model, progress=False, max_atoms=10**7)
    return result.to_openmm()
run()
times = []
for _ in range(repeats):
    start = time.perf_counter(); run(); times.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"residues": n_residues, "atoms": molecule.n_atoms, "seconds": statistics.median(times),
                  "peak_rss_mb": peak / 1024, "rss_after_model_load_mb": before / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output-dir", default=".")
    args = parser.parse_args()
    rows = []
    for n in RESIDUES:
        output = subprocess.run([sys.executable, "-c", CHILD, str(n), str(args.repeats), args.model],
                                capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
    atoms = np.array([r["atoms"] for r in rows], dtype=float)
    seconds = np.array([r["seconds"] for r in rows])
    big = atoms >= 100
    slope = float(np.polyfit(np.log(atoms[big]), np.log(seconds[big]), 1)[0])
    lines = ["| residues | atoms | time (s) | µs per atom | peak RSS (MB) | RSS after model load (MB) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['residues']} | {r['atoms']} | {r['seconds']:.4f} | {r['seconds'] / r['atoms'] * 1e6:.0f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['rss_after_model_load_mb']:.0f} |")
    lines.append(f"\nlog-log slope of time vs atoms (≥ 100 atoms): {slope:.2f} (1.00 = linear)")
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "scaling.md"), "w") as handle:
        handle.write(text + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    left.loglog(atoms, seconds, marker="o")
    left.loglog(atoms, seconds[-1] * atoms / atoms[-1], linestyle="--", color="grey", label="linear")
    left.set(xlabel="atoms", ylabel="parameterization time (s)", title=f"time (slope {slope:.2f})")
    left.legend()
    right.semilogx(atoms, [r["peak_rss_mb"] for r in rows], marker="o")
    right.set(xlabel="atoms", ylabel="peak RSS (MB)", title="peak memory (whole process)")
    figure.tight_layout()
    figure.savefig(os.path.join(args.output_dir, "scaling.png"), dpi=110)


if __name__ == "__main__":
    main()
