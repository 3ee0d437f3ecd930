"""MD speed: ns/day of the grappa_like System vs the classical System of the same molecule.

Ligands: our System vs GAFF2 + AM1-BCC, both through the same code path (ParmEd structure from the
OpenMM System, then ``createSystem``), in vacuum (NoCutoff, no constraints, 1 fs) and in a TIP3P
water box (PME, 0.9 nm cutoff, HBonds, rigid water, 2 fs). With ``--protein``, also T4 lysozyme
L99A + benzene in TIP3P (PME, HBonds, 2 fs): amber14 (ff14SB) vs the same System with the
protein's bonded terms from our model (``reparameterize_system``); benzene is ours in both.
Each measurement is repeated (ours and the baseline alternating), the median is reported with the ratio.

Building needs RDKit, AmberTools and the model; timing needs only OpenMM. ``--save-systems DIR``
writes the built Systems (OpenMM XML) and positions so that ``--systems DIR`` can time them on
another machine (e.g. a GPU node with ``--platform CUDA``).

Usage: OMP_NUM_THREADS=1 python scripts/md_speed_benchmark.py [--platform CPU|CUDA] [--protein]
       [--save-systems DIR | --systems DIR] [--output FILE]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import time

import numpy as np
import openmm
from openmm import app, unit

from harness import publish

MOLECULES = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "imatinib": "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",
}


def ns_per_day(system, positions, timestep_ps: float, steps: int, platform: str) -> float:
    """ns/day of Langevin MD after minimisation and 500 warm-up steps."""
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, timestep_ps * unit.picoseconds)
    properties = {"Threads": "1"} if platform == "CPU" else {"Precision": "mixed"} if platform in ("CUDA", "OpenCL") else {}
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
    import parmed

    from grappa_like.export import openmm_topology
    from grappa_like.openmm import TemplateGenerator

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
    import parmed

    from grappa_like.export import openmm_topology

    topology = openmm_topology(molecule)
    xyz = molecule.conformer_positions()
    return [parmed.openmm.load_topology(topology, system, xyz=xyz).createSystem(nonbondedMethod=app.NoCutoff)
            for system in (ours, gaff)]


def protein_case(model, water_steps: int) -> dict:
    """T4 lysozyme L99A + benzene in TIP3P: amber14 System vs the protein re-parameterized by the model."""
    from grappa_like.openmm import TemplateGenerator, reparameterize_system
    from reparameterize_timing import benzene_complex_in_water

    modeller, ligand = benzene_complex_in_water()
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    forcefield.registerTemplateGenerator(TemplateGenerator(molecules=[ligand], model=model).generator)
    modeller.addSolvent(forcefield, padding=1.0 * unit.nanometer)
    amber = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                                    constraints=app.HBonds)
    ours = reparameterize_system(amber, modeller.topology, model=model)
    return {"name": "T4 lysozyme + benzene", "setting": "TIP3P box, PME, 2 fs", "atoms": modeller.topology.getNumAtoms(),
            "baseline": "amber14 (ff14SB)", "timestep_ps": 0.002, "steps": water_steps,
            "positions_nm": np.array(modeller.positions.value_in_unit(unit.nanometer)), "ours": ours, "theirs": amber}


def build_cases(args) -> list[dict]:
    """The Systems to time: each a dict with name, setting, atoms, baseline, timestep_ps, steps,
    positions_nm, and the ``ours`` / ``theirs`` OpenMM Systems."""
    from rdkit import Chem

    import grappa_like
    from grappa_like import baselines
    from grappa_like.molecule import from_smiles

    model = grappa_like.load_model(args.model)
    cases = []
    for name, smiles in MOLECULES.items():
        molecule = from_smiles(smiles, name)
        rdmol = Chem.Mol(molecule.rdkit_mol)
        conformer = Chem.Conformer(rdmol.GetNumAtoms())
        for index, xyz in enumerate(molecule.conformer_positions()):
            conformer.SetAtomPosition(index, xyz.tolist())
        rdmol.AddConformer(conformer)
        gaff = baselines.gaff2_am1bcc_system(rdmol, name=name, cache_dir=args.cache_dir)
        ours = grappa_like.parameterize([molecule], model=model, progress=False)[0].to_openmm()
        common = {"name": name, "baseline": "GAFF2 + AM1-BCC"}
        ours_vacuum, gaff_vacuum = vacuum_pair(molecule, ours, gaff)
        cases.append({**common, "setting": "vacuum, 1 fs", "atoms": molecule.n_atoms, "timestep_ps": 0.001,
                      "steps": args.vacuum_steps, "positions_nm": molecule.conformer_positions() * 0.1,
                      "ours": ours_vacuum, "theirs": gaff_vacuum})
        ours_water, gaff_water, positions, n_atoms = solvated_pair(molecule, ours, gaff, model, args.padding_nm)
        cases.append({**common, "setting": "TIP3P box, PME, 2 fs", "atoms": n_atoms, "timestep_ps": 0.002,
                      "steps": args.water_steps,
                      "positions_nm": np.array(positions.value_in_unit(unit.nanometer)),
                      "ours": ours_water, "theirs": gaff_water})
    if args.protein:
        cases.append(protein_case(model, args.water_steps))
    return cases


def save_cases(cases: list[dict], folder: str) -> None:
    """Write each case's Systems (gzipped OpenMM XML), positions (.npy) and an index (cases.json) to ``folder``."""
    os.makedirs(folder, exist_ok=True)
    index = []
    for number, case in enumerate(cases):
        entry = {key: value for key, value in case.items() if key not in ("ours", "theirs", "positions_nm")}
        for side in ("ours", "theirs", "positions_nm"):
            entry[side] = f"case{number}_{side}" + (".npy" if side == "positions_nm" else ".xml.gz")
        np.save(os.path.join(folder, entry["positions_nm"]), np.asarray(case["positions_nm"], dtype=np.float64))
        for side in ("ours", "theirs"):
            with gzip.open(os.path.join(folder, entry[side]), "wt") as handle:
                handle.write(openmm.XmlSerializer.serialize(case[side]))
        index.append(entry)
    with open(os.path.join(folder, "cases.json"), "w") as handle:
        json.dump(index, handle, indent=1)


def load_cases(folder: str) -> list[dict]:
    """The cases written by :func:`save_cases`."""
    with open(os.path.join(folder, "cases.json")) as handle:
        index = json.load(handle)
    cases = []
    for entry in index:
        case = dict(entry, positions_nm=np.load(os.path.join(folder, entry["positions_nm"])))
        for side in ("ours", "theirs"):
            with gzip.open(os.path.join(folder, entry[side]), "rt") as handle:
                case[side] = openmm.XmlSerializer.deserialize(handle.read())
        cases.append(case)
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "grappa_like", "amber"))
    parser.add_argument("--platform", default="CPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vacuum-steps", type=int, default=20000)
    parser.add_argument("--water-steps", type=int, default=1000)
    parser.add_argument("--padding-nm", type=float, default=1.0)
    parser.add_argument("--protein", action="store_true", help="also T4 lysozyme + benzene in water (ff14SB baseline)")
    parser.add_argument("--save-systems", default=None, metavar="DIR", help="build, write the Systems to DIR, stop")
    parser.add_argument("--systems", default=None, metavar="DIR", help="time the Systems written by --save-systems")
    parser.add_argument("--skip-vacuum", action="store_true", help="time only the cases in water")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    cases = load_cases(args.systems) if args.systems else build_cases(args)
    if args.save_systems:
        save_cases(cases, args.save_systems)
        return
    if args.skip_vacuum:
        cases = [case for case in cases if not case["setting"].startswith("vacuum")]
    platform = openmm.Platform.getPlatformByName(args.platform)
    threads = " (1 thread)" if args.platform == "CPU" else ""
    precision = ", mixed precision" if args.platform in ("CUDA", "OpenCL") else ""
    lines = [f"OpenMM {openmm.__version__}, platform {platform.getName()}{threads}{precision}, {os.cpu_count()} cores; "
             f"median of {args.repeats} runs, grappa_like and the baseline alternating", "",
             "| molecule | setting | atoms | grappa_like (ns/day) | baseline | baseline (ns/day) | ratio |",
             "|---|---|---|---|---|---|---|"]
    for case in cases:
        speeds = {"ours": [], "theirs": []}
        positions = case["positions_nm"] * unit.nanometer
        for _ in range(args.repeats):
            for side in ("ours", "theirs"):
                speeds[side].append(ns_per_day(case[side], positions, case["timestep_ps"], case["steps"], args.platform))
        a, b = statistics.median(speeds["ours"]), statistics.median(speeds["theirs"])
        lines.append(f"| {case['name']} | {case['setting']} | {case['atoms']} | {a:.0f} | {case['baseline']} | {b:.0f} | "
                     f"{a / b:.2f} |")
        print(lines[-1], flush=True)
    publish(lines, args.output)


if __name__ == "__main__":
    main()
