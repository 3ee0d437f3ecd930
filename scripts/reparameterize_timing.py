"""Time to re-parameterize protein Systems (ubiquitin, T4 lysozyme, T4 + benzene in TIP3P water).

For each system: amber14 ``ForceField.createSystem`` (the baseline cost a user pays anyway) and
``grappa_like.openmm.reparameterize_system`` on top of it, median of --repeats after a warm-up,
printed as a Markdown table. Usage: OMP_NUM_THREADS=1 python scripts/reparameterize_timing.py
"""

from __future__ import annotations

import argparse
import os

from openmm import app, unit
from rdkit import Chem

import grappa_like
from harness import median_seconds, publish
from grappa_like.openmm import TemplateGenerator, reparameterize_system

PROTEINS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "benchmarks", "proteins")




def benzene_complex_in_water():
    """T4 lysozyme L99A + benzene (from the benchmark SDF) solvated in TIP3P, 1 nm padding."""
    protein = app.PDBFile(os.path.join(PROTEINS, "T4.pdb"))
    ligand = Chem.MolFromMolFile(os.path.join(PROTEINS, "T4_benzene.sdf"), removeHs=False)
    topology = app.Topology()
    residue = topology.addResidue("BNZ", topology.addChain())
    atoms = [topology.addAtom(f"{a.GetSymbol()}{a.GetIdx()}", app.Element.getByAtomicNumber(a.GetAtomicNum()), residue)
             for a in ligand.GetAtoms()]
    for bond in ligand.GetBonds():
        topology.addBond(atoms[bond.GetBeginAtomIdx()], atoms[bond.GetEndAtomIdx()])
    modeller = app.Modeller(protein.topology, protein.positions)
    modeller.add(topology, ligand.GetConformer().GetPositions() * 0.1 * unit.nanometer)
    return modeller, ligand


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = grappa_like.load_model()
    rows = ["| system | atoms | re-parameterized atoms | amber14 createSystem (s) | reparameterize_system (s) | ratio |",
            "|---|---|---|---|---|---|"]

    cases = []
    ubiquitin = app.PDBFile(os.path.join(PROTEINS, "1ubq_protonated.pdb"))
    cases.append(("ubiquitin (1UBQ, vacuum)", ubiquitin.topology, app.ForceField("amber14-all.xml"), app.NoCutoff))
    t4 = app.PDBFile(os.path.join(PROTEINS, "T4.pdb"))
    cases.append(("T4 lysozyme L99A (vacuum, 8 waters, 2 Cl-)", t4.topology,
                  app.ForceField("amber14-all.xml", "amber14/tip3p.xml"), app.NoCutoff))
    modeller, ligand = benzene_complex_in_water()
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    forcefield.registerTemplateGenerator(TemplateGenerator(molecules=[ligand], model=model).generator)
    modeller.addSolvent(forcefield, padding=1.0 * unit.nanometer)
    cases.append(("T4 + benzene in TIP3P, PME", modeller.topology, forcefield, app.PME))

    for name, topology, forcefield, method in cases:
        def build():
            return forcefield.createSystem(topology, nonbondedMethod=method, constraints=app.HBonds)
        system = build()
        baseline = median_seconds(build, args.repeats)
        ours = median_seconds(lambda: reparameterize_system(system, topology, model=model), args.repeats)
        solvent = sum(len(list(r.atoms())) for r in topology.residues() if r.name in ("HOH", "CL", "NA"))
        rows.append(f"| {name} | {topology.getNumAtoms()} | {topology.getNumAtoms() - solvent} | {baseline:.2f} | "
                    f"{ours:.2f} | {ours / baseline:.2f} |")
    publish(rows, None)


if __name__ == "__main__":
    main()
