"""Speed of grappa_like vs the default AmberTools GAFF2 + AM1-BCC route, side by side in one run.

Prints a Markdown table (median of repeats after a warm-up) and writes it to --output:
  1. parameterization time per molecule (SMILES -> OpenMM System) for aspirin, imatinib and a
     ~50-heavy-atom molecule: grappa_like (model loaded once, excluded) vs antechamber -c bcc
     -at gaff2 + parmchk2 + tleap (one run each: minutes);
  2. batch throughput (molecules/s) of grappa_like.parameterize on N drug-like molecules from the
     validation split of the training data (model loading reported separately);
  3. MD speed (ns/day) of our System vs the GAFF2 System of the same molecule, same platform.

Usage: OMP_NUM_THREADS=2 python scripts/speed_benchmark.py [--model PATH] [--skip-amber] [--output docs/performance-table.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import openmm
from openmm import unit
from rdkit import Chem

import grappa_like
from grappa_like.molecule import from_smiles

MOLECULES = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "imatinib": "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",
    # the ~50-heavy-atom molecule: saquinavir (49 heavy atoms, an approved HIV protease inhibitor)
    "saquinavir": "CC(C)(C)NC(=O)[C@@H]1C[C@@H]2CCCC[C@@H]2CN1C[C@@H](O)[C@H](Cc1ccccc1)NC(=O)[C@H](CC(N)=O)NC(=O)c1ccc2ccccc2n1",
}


def median_time(function, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def md_ns_per_day(system: openmm.System, positions_nm, steps: int, platform_name: str) -> float:
    """ns/day of Langevin MD (1 fs steps, no constraints, NoCutoff) measured after minimisation and a warm-up."""
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.001 * unit.picoseconds)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform_name))
    context.setPositions(positions_nm)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=200)
    integrator.step(200)
    start = time.perf_counter()
    integrator.step(steps)
    context.getState(getEnergy=True)
    elapsed = time.perf_counter() - start
    return steps * 0.001 / 1000 / elapsed * 86400  # ns simulated per day


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--skip-amber", action="store_true", help="skip the AmberTools route (minutes per molecule)")
    parser.add_argument("--batch", type=int, default=1000, help="molecules for the throughput test")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--md-steps", type=int, default=20000)
    parser.add_argument("--platform", default="CPU")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "train-v0.h5"))
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, OpenMM platform {args.platform}", ""]
    start = time.perf_counter()
    model = grappa_like.load_model(args.model)
    lines.append(f"Model loading: {time.perf_counter() - start:.2f} s (once per process, excluded below)\n")

    lines += ["| molecule | atoms | grappa_like (s) | AmberTools GAFF2 + AM1-BCC (s) | speed-up |", "|---|---|---|---|---|"]
    systems = {}
    for name, smiles in MOLECULES.items():
        molecule = from_smiles(smiles, name)
        ours = median_time(lambda: grappa_like.parameterize([molecule], model=model, progress=False)[0].to_openmm(),
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
            systems[name] = baselines.gaff2_am1bcc_system(rdmol, name=name)
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

    if systems:
        lines += ["| molecule | MD grappa_like (ns/day) | MD GAFF2 (ns/day) | ratio |", "|---|---|---|---|"]
        for name, gaff_system in systems.items():
            molecule = from_smiles(MOLECULES[name], name)
            positions = molecule.conformer_positions() / 10.0
            ours_system = grappa_like.parameterize([molecule], model=model, progress=False)[0].to_openmm()
            ours_speed = md_ns_per_day(ours_system, positions, args.md_steps, args.platform)
            gaff_speed = md_ns_per_day(gaff_system, positions, args.md_steps, args.platform)
            lines.append(f"| {name} | {ours_speed:.0f} | {gaff_speed:.0f} | {ours_speed / gaff_speed:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
