"""MD speed: ns/day of the grappa_like System vs the GAFF2 + AM1-BCC System of the same molecule.

Both Systems go through the same code path (ParmEd structure from the OpenMM System, then
``createSystem``), in vacuum (NoCutoff, no constraints, 1 fs) and in a TIP3P water box (PME,
0.9 nm cutoff, HBonds, rigid water, 2 fs), on the same OpenMM platform with one thread.
Each measurement is repeated (ours and GAFF2 alternating), the median is reported with the ratio.
Usage: OMP_NUM_THREADS=1 python scripts/md_speed_benchmark.py [--cache-dir DIR] [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import openmm
import parmed
from openmm import app, unit
from rdkit import Chem

import grappa_like
from grappa_like import baselines
from grappa_like.export import openmm_topology
from grappa_like.molecule import from_smiles
from grappa_like.openmm import TemplateGenerator
from harness import publish

MOLECULES = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "imatinib": "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",
}


def ns_per_day(system, positions, timestep_ps: float, steps: int, platform: str) -> float:
    """ns/day of Langevin MD after minimisation and 500 warm-up steps."""
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, timestep_ps * unit.picoseconds)
    properties = {"Threads": "1"} if platform == "CPU" else {}
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform), properties)
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=200)
    integrator.step(500)
    context.getState(getEnergy=True)
    start = time.perf_counter()
    integrator.step(steps)
    context.getState(getEnergy=True)
    return steps * timestep_ps / 1000 / (time.perf_counter() - start) * 86400


def solvated_pair(molecule, ours, gaff, model, padding_nm: float):
    """(ours, gaff) Systems of the molecule in the same TIP3P box, both built by ParmEd, and positions."""
    topology = openmm_topology(molecule)
    positions = molecule.conformer_positions() * 0.1 * unit.nanometer
    water_forcefield = app.ForceField("amber14/tip3p.xml")
    water_forcefield.registerTemplateGenerator(TemplateGenerator(molecules=[molecule], model=model).generator)
    modeller = app.Modeller(topology, positions)
    modeller.addSolvent(water_forcefield, padding=padding_nm * unit.nanometer)
    solvent = app.Modeller(modeller.topology, modeller.positions)
    solvent.delete([r for r in solvent.topology.residues() if r.name != "HOH"])
    water_system = app.ForceField("amber14/tip3p.xml").createSystem(solvent.topology, rigidWater=False)
    water = parmed.openmm.load_topology(solvent.topology, water_system,
                                        xyz=solvent.positions.value_in_unit(unit.angstrom))
    built = []
    for ligand_system in (ours, gaff):
        ligand = parmed.openmm.load_topology(topology, ligand_system, xyz=positions.value_in_unit(unit.angstrom))
        combined = ligand + water
        combined.box = [v * 10 for v in modeller.topology.getUnitCellDimensions().value_in_unit(unit.nanometer)] + [90, 90, 90]
        built.append(combined.createSystem(nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                                           constraints=app.HBonds, rigidWater=True))
    return built[0], built[1], modeller.positions, modeller.topology.getNumAtoms()


def vacuum_pair(molecule, ours, gaff):
    """(ours, gaff) vacuum Systems built by ParmEd from each OpenMM System (NoCutoff, no constraints)."""
    topology = openmm_topology(molecule)
    xyz = molecule.conformer_positions()
    return [parmed.openmm.load_topology(topology, system, xyz=xyz).createSystem(nonbondedMethod=app.NoCutoff)
            for system in (ours, gaff)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "grappa_like", "amber"))
    parser.add_argument("--platform", default="CPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vacuum-steps", type=int, default=20000)
    parser.add_argument("--water-steps", type=int, default=1000)
    parser.add_argument("--padding-nm", type=float, default=1.0)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    model = grappa_like.load_model(args.model)
    lines = [f"OpenMM {openmm.__version__}, platform {args.platform} (1 thread), {os.cpu_count()} cores; median of "
             f"{args.repeats} runs, grappa_like and GAFF2 alternating", "",
             "| molecule | setting | atoms | grappa_like (ns/day) | GAFF2 + AM1-BCC (ns/day) | ratio |",
             "|---|---|---|---|---|---|"]
    for name, smiles in MOLECULES.items():
        molecule = from_smiles(smiles, name)
        rdmol = Chem.Mol(molecule.rdkit_mol)
        conformer = Chem.Conformer(rdmol.GetNumAtoms())
        for index, xyz in enumerate(molecule.conformer_positions()):
            conformer.SetAtomPosition(index, xyz.tolist())
        rdmol.AddConformer(conformer)
        gaff = baselines.gaff2_am1bcc_system(rdmol, name=name, cache_dir=args.cache_dir)
        ours = grappa_like.parameterize([molecule], model=model, progress=False)[0].to_openmm()
        settings = [("vacuum, 1 fs", *vacuum_pair(molecule, ours, gaff), molecule.conformer_positions() * 0.1,
                     molecule.n_atoms, 0.001, args.vacuum_steps)]
        ours_water, gaff_water, positions, n_atoms = solvated_pair(molecule, ours, gaff, model, args.padding_nm)
        settings.append(("TIP3P box, PME, 2 fs", ours_water, gaff_water, positions, n_atoms, 0.002, args.water_steps))
        for label, ours_system, gaff_system, positions, n_atoms, timestep, steps in settings:
            speeds = {"ours": [], "gaff": []}
            for _ in range(args.repeats):
                speeds["ours"].append(ns_per_day(ours_system, positions, timestep, steps, args.platform))
                speeds["gaff"].append(ns_per_day(gaff_system, positions, timestep, steps, args.platform))
            a, b = statistics.median(speeds["ours"]), statistics.median(speeds["gaff"])
            lines.append(f"| {name} | {label} | {n_atoms} | {a:.0f} | {b:.0f} | {a / b:.2f} |")
            print(lines[-1], flush=True)
    publish(lines, args.output)


if __name__ == "__main__":
    main()
