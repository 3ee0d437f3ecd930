"""Speed of grappa_like vs the default AmberTools GAFF2 + AM1-BCC route, side by side in one run.

Prints a Markdown table (median of repeats after a warm-up) and writes it to --output:
  1. parameterization time per molecule (SMILES -> OpenMM System) for aspirin, imatinib and a
     ~50-heavy-atom molecule: grappa_like (model loaded once, excluded) vs antechamber -c bcc
     -at gaff2 + parmchk2 + tleap (one run each: minutes);
  2. batch throughput (molecules/s) of grappa_like.parameterize on N drug-like molecules from the
     drug-like molecules of the training data file (model loading reported separately);
MD speed is measured by scripts/md_speed_benchmark.py.

Usage: OMP_NUM_THREADS=2 python scripts/speed_benchmark.py [--model PATH] [--skip-amber] [--output docs/performance-table.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from rdkit import Chem

import grappa_like
from harness import median_seconds, publish
from grappa_like.molecule import from_smiles

MOLECULES = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "imatinib": "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",
    # the ~50-heavy-atom molecule: saquinavir (49 heavy atoms, an approved HIV protease inhibitor)
    "saquinavir": "CC(C)(C)NC(=O)[C@@H]1C[C@@H]2CCCC[C@@H]2CN1C[C@@H](O)[C@H](Cc1ccccc1)NC(=O)[C@H](CC(N)=O)NC(=O)c1ccc2ccccc2n1",
}




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--skip-amber", action="store_true", help="skip the AmberTools route (minutes per molecule)")
    parser.add_argument("--batch", type=int, default=1000, help="molecules for the throughput test")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "train-v0.h5"))
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", ""]
    start = time.perf_counter()
    model = grappa_like.load_model(args.model)
    lines.append(f"Model loading: {time.perf_counter() - start:.2f} s (once per process, excluded below)\n")

    lines += ["| molecule | atoms | grappa_like (s) | AmberTools GAFF2 + AM1-BCC (s) | speed-up |", "|---|---|---|---|---|"]
    for name, smiles in MOLECULES.items():
        molecule = from_smiles(smiles, name)
        ours = median_seconds(lambda: grappa_like.parameterize([molecule], model=model, progress=False)[0].to_openmm(),
                           args.repeats)
        amber = None
        if not args.skip_amber:
            from grappa_like import baselines

            rdmol = Chem.Mol(molecule.rdkit_mol)
            positions = molecule.conformer_positions()
            conformer = Chem.Conformer(rdmol.GetNumAtoms())
            for index, xyz in enumerate(positions):
                conformer.SetAtomPosition(index, xyz.tolist())
            rdmol.AddConformer(conformer)
            start = time.perf_counter()
            baselines.gaff2_am1bcc_system(rdmol, name=name)
            amber = time.perf_counter() - start
        cells = [name, str(molecule.n_atoms), f"{ours:.4f}", "–" if amber is None else f"{amber:.1f}",
                 "–" if amber is None else f"{amber / ours:,.0f}×"]
        lines.append("| " + " | ".join(cells) + " |")

    from grappa_like.data import read_records

    molecules = [r.molecule for r in read_records(args.data) if r.subset == "druglike"][: args.batch]
    molecules = (molecules * (args.batch // max(len(molecules), 1) + 1))[: args.batch]
    grappa_like.parameterize(molecules[:50], model=model, progress=False)
    start = time.perf_counter()
    results = grappa_like.parameterize(molecules, model=model, progress=False)
    systems_built = [r.to_openmm() for r in results if r.ok]
    elapsed = time.perf_counter() - start
    lines += ["", f"Batch: {len(systems_built)} drug-like molecules (SMILES graph -> OpenMM System) in {elapsed:.2f} s: "
              f"**{len(systems_built) / elapsed:.0f} molecules/s**", ""]

    publish(lines, args.output)


if __name__ == "__main__":
    main()
