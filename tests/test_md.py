"""Short MD with the shipped model: Systems from grappa_like are stable in plain OpenMM.

Skipped until ``models/grappa-like-v1.pt`` (or $GRAPPA_LIKE_MODEL) exists: a random model gives no
meaningful dynamics.
"""

from __future__ import annotations

import os

import numpy as np
import openmm
import pytest
from openmm import unit
from rdkit import Chem
from rdkit.Chem import AllChem

import grappa_like
from grappa_like.api import default_model_path

pytestmark = pytest.mark.skipif(
    not os.path.exists(default_model_path()),
    reason=f"shipped model {default_model_path()} not there yet",
)

MD_MOLECULES = ["CC(=O)Oc1ccccc1C(=O)O", "[NH3+]CC(=O)[O-]", "O=C1CCC1"]
N_STEPS = 10_000          # 10 ps at 1 fs
REPORT_EVERY = 100
MAX_BOND_DEVIATION_NM = 0.03  # 0.3 Å


def mmff_conformer(smiles: str) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=42) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return mol


def cpu_platform():
    try:
        return openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"}
    except Exception:
        return openmm.Platform.getPlatformByName("Reference"), {}


def test_shipped_model_file_is_valid_and_small():
    model = grappa_like.load_model()
    assert os.path.getsize(default_model_path()) < 10 * 1024 * 1024
    assert model.metadata["validation_molecules"]
    assert model.checksum


def run_md_check(smiles: str, n_steps: int):
    mol = mmff_conformer(smiles)
    (result,) = grappa_like.parameterize([mol], progress=False)
    assert result.ok, result.error
    system = result.to_openmm()
    bonds = result.parameters.interactions.bonds
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1.0 / unit.picosecond, 0.001 * unit.picoseconds)
    integrator.setRandomNumberSeed(7)
    platform, properties = cpu_platform()
    context = openmm.Context(system, integrator, platform, properties)
    context.setPositions(mol.GetConformer().GetPositions() / 10.0 * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(context, 1.0, 200)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 7)

    def bond_lengths():
        xyz = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        assert np.all(np.isfinite(xyz))
        return np.linalg.norm(xyz[bonds[:, 0]] - xyz[bonds[:, 1]], axis=1)

    reference = bond_lengths()
    for _ in range(n_steps // REPORT_EVERY):
        integrator.step(REPORT_EVERY)
        energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        assert np.isfinite(energy)
        deviation = np.abs(bond_lengths() - reference)
        assert deviation.max() < MAX_BOND_DEVIATION_NM, (smiles, deviation.max())


@pytest.mark.parametrize("smiles", MD_MOLECULES)
def test_langevin_md_is_stable(smiles):
    run_md_check(smiles, N_STEPS)


@pytest.mark.slow
@pytest.mark.parametrize("smiles", ["CC(=O)Nc1ccc(O)cc1", "C[NH3+]", "CC(=O)[O-]", "OCC(O)CO", "c1ccc2ccccc2c1",
                                    "CS(=O)(=O)N", "FC(F)(F)c1ccccc1Cl"])
def test_langevin_md_is_stable_long(smiles):
    run_md_check(smiles, 10 * N_STEPS)
