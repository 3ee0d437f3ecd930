"""CLI re-parameterize mode: a protein-ligand complex PDB + ligand SDF with amber14 -> one System XML."""

import os

import numpy as np
import openmm
import pytest
from openmm import app, unit
from rdkit import Chem

from grappa_like.cli import main

PROTEINS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "benchmarks", "proteins")
needs_t4 = pytest.mark.skipif(not os.path.exists(os.path.join(PROTEINS, "T4.pdb")), reason="T4 benchmark files absent")


def _nonbonded(system):
    return next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))


@needs_t4
def test_protein_ligand_complex_is_reparameterized(model_file_path, tmp_path):
    protein = app.PDBFile(os.path.join(PROTEINS, "T4.pdb"))
    ligand_sdf = os.path.join(PROTEINS, "T4_benzene.sdf")
    ligand = Chem.MolFromMolFile(ligand_sdf, removeHs=False)
    ligand_topology = app.Topology()
    chain = ligand_topology.addChain()
    residue = ligand_topology.addResidue("BNZ", chain)
    atoms = [ligand_topology.addAtom(f"{a.GetSymbol()}{a.GetIdx()}", app.Element.getByAtomicNumber(a.GetAtomicNum()),
                                     residue) for a in ligand.GetAtoms()]
    for bond in ligand.GetBonds():
        ligand_topology.addBond(atoms[bond.GetBeginAtomIdx()], atoms[bond.GetEndAtomIdx()])
    modeller = app.Modeller(protein.topology, protein.positions)
    modeller.delete([r for r in modeller.topology.residues() if r.name in ("HOH", "CL")])
    modeller.add(ligand_topology, ligand.GetConformer().GetPositions() * 0.1 * unit.nanometer)
    complex_pdb = tmp_path / "complex.pdb"
    with open(complex_pdb, "w") as handle:
        app.PDBFile.writeFile(modeller.topology, modeller.positions, handle)

    out = tmp_path / "complex.xml"
    code = main(["parameterize", str(complex_pdb), ligand_sdf, "--forcefield", "amber14-all.xml",
                 "--constraints", "none", "-o", str(out), "--model", model_file_path])
    assert code == 0
    system = openmm.XmlSerializer.deserialize(out.read_text())
    n_atoms = modeller.topology.getNumAtoms()
    assert system.getNumParticles() == n_atoms
    kinds = sorted(type(f).__name__ for f in system.getForces() if not isinstance(f, openmm.CMMotionRemover))
    assert "NonbondedForce" in kinds and "PeriodicTorsionForce" in kinds

    # the protein keeps amber14's charges; the ligand (last 12 atoms) gets the model's, summing to 0
    reference = app.ForceField("amber14-all.xml")
    charges = np.array([_nonbonded(system).getParticleParameters(i)[0]._value for i in range(n_atoms)])
    protein_only = app.Modeller(modeller.topology, modeller.positions)
    protein_only.delete([r for r in protein_only.topology.residues() if r.name == "BNZ"])
    amber = reference.createSystem(protein_only.topology, nonbondedMethod=app.NoCutoff)
    amber_charges = np.array([_nonbonded(amber).getParticleParameters(i)[0]._value
                              for i in range(amber.getNumParticles())])
    np.testing.assert_allclose(charges[: len(amber_charges)], amber_charges)
    assert abs(charges[-12:].sum()) < 1e-6

    # bonded terms of the protein are the model's, not amber14's
    bond_force = next(f for f in system.getForces() if isinstance(f, openmm.HarmonicBondForce))
    amber_bonds = next(f for f in amber.getForces() if isinstance(f, openmm.HarmonicBondForce))
    ours = {tuple(sorted(bond_force.getBondParameters(i)[:2])): bond_force.getBondParameters(i)[3]._value
            for i in range(bond_force.getNumBonds())}
    theirs = {tuple(sorted(amber_bonds.getBondParameters(i)[:2])): amber_bonds.getBondParameters(i)[3]._value
              for i in range(amber_bonds.getNumBonds())}
    shared = set(ours) & set(theirs)
    assert len(shared) == len(theirs)
    assert sum(abs(ours[b] - theirs[b]) > 1e-6 for b in shared) > 0.9 * len(shared)


def test_reparameterize_mode_needs_one_pdb(model_file_path, tmp_path):
    code = main(["parameterize", "--smiles", "CCO", "--forcefield", "amber14-all.xml", "-o", str(tmp_path / "x.xml"),
                 "--model", model_file_path])
    assert code == 2 and not (tmp_path / "x.xml").exists()
