"""Tests of the GAFF2 + AM1-BCC AmberTools baseline (skipped without AmberTools)."""

import subprocess

import numpy as np
import openmm
import pytest
from openmm import unit
from rdkit import Chem
from rdkit.Chem import AllChem

from grappa_like import baselines

pytestmark = pytest.mark.skipif(
    not baselines.ambertools_available(),
    reason='AmberTools (antechamber, parmchk2, tleap, sqm) not found; pip install "grappa_like[data]"',
)

EXPECTED_FORCE_KINDS = {"HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "NonbondedForce"}


@pytest.fixture(scope="module")
def ethanol():
    """Ethanol with explicit H and one MMFF-optimized conformer."""
    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    assert AllChem.EmbedMolecule(mol, randomSeed=7) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return mol


@pytest.fixture(scope="module")
def ethanol_system(ethanol):
    """GAFF2 + AM1-BCC system of ethanol."""
    return baselines.gaff2_am1bcc_system(ethanol, name="ethanol")


def potential_energy(system, mol):
    """Potential energy in kJ/mol of `system` at the conformer of `mol` (Reference platform)."""
    positions = mol.GetConformer().GetPositions() * 0.1  # Å -> nm
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    context.setPositions(positions)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def nonbonded_charges(system):
    """Partial charges in e from the NonbondedForce of `system`."""
    nonbonded = next(force for force in system.getForces() if isinstance(force, openmm.NonbondedForce))
    return np.array(
        [nonbonded.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
         for i in range(nonbonded.getNumParticles())]
    )


def test_am1bcc_system_of_ethanol(ethanol, ethanol_system):
    assert ethanol_system.getNumParticles() == 9
    assert EXPECTED_FORCE_KINDS <= {type(force).__name__ for force in ethanol_system.getForces()}
    assert abs(nonbonded_charges(ethanol_system).sum()) < 1e-3
    masses = [ethanol_system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(9)]
    expected_masses = [atom.GetMass() for atom in ethanol.GetAtoms()]
    np.testing.assert_allclose(masses, expected_masses, atol=0.01)
    assert np.isfinite(potential_energy(ethanol_system, ethanol))


def test_system_from_types_reproduces_am1bcc_energy(ethanol, ethanol_system):
    charges, gaff2_types = baselines.gaff2_am1bcc_charges_and_types(ethanol, name="ethanol")
    assert gaff2_types[:3] == ["c3", "c3", "oh"]
    assert set(gaff2_types[3:]) == {"hc", "h1", "ho"}
    np.testing.assert_allclose(charges, nonbonded_charges(ethanol_system), atol=1e-6)

    system = baselines.gaff2_system_from_types(ethanol, gaff2_types, charges, name="ethanol")
    assert system.getNumParticles() == 9
    assert potential_energy(system, ethanol) == pytest.approx(
        potential_energy(ethanol_system, ethanol), abs=1e-3
    )


def test_parmchk2_uses_gaff2_parameters_every_time():
    # c3-nz has its own GAFF2 bond (1.4843 Å, 238.81 kcal/mol/Å²); a GAFF1 fallback writes c3-n4 (1.511 Å) instead.
    methylammonium = Chem.AddHs(Chem.MolFromSmiles("C[NH3+]"))
    assert AllChem.EmbedMolecule(methylammonium, randomSeed=7) == 0
    heavy_atom_types = {6: "c3", 7: "nz"}
    gaff2_types = [
        heavy_atom_types.get(atom.GetAtomicNum())
        or ("hx" if atom.GetNeighbors()[0].GetAtomicNum() == 6 else "hn")
        for atom in methylammonium.GetAtoms()
    ]
    charges = [1.0 / methylammonium.GetNumAtoms()] * methylammonium.GetNumAtoms()
    for _ in range(5):
        system = baselines.gaff2_system_from_types(methylammonium, gaff2_types, charges, name="methylammonium")
        bonds = next(force for force in system.getForces() if isinstance(force, openmm.HarmonicBondForce))
        c_n_bond = next(
            bonds.getBondParameters(i) for i in range(bonds.getNumBonds())
            if set(bonds.getBondParameters(i)[:2]) == {0, 1}
        )
        assert c_n_bond[2].value_in_unit(unit.angstrom) == pytest.approx(1.4843, abs=1e-4)
        assert c_n_bond[3].value_in_unit(unit.kilocalorie_per_mole / unit.angstrom**2) == pytest.approx(
            2 * 238.81, rel=1e-4
        )


def test_cache_skips_antechamber(ethanol, ethanol_system, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    first = baselines.gaff2_am1bcc_system(ethanol, name="ethanol", cache_dir=cache_dir)
    assert len(list(cache_dir.glob("*.prmtop"))) == 1
    assert not list(cache_dir.glob("*.tmp"))

    started_commands = []
    original_popen = subprocess.Popen

    def recording_popen(command, *args, **kwargs):
        started_commands.append(command)
        return original_popen(command, *args, **kwargs)

    monkeypatch.setattr(baselines.subprocess, "Popen", recording_popen)
    second = baselines.gaff2_am1bcc_system(ethanol, name="ethanol", cache_dir=cache_dir)
    assert started_commands == []
    reference_energy = potential_energy(ethanol_system, ethanol)
    assert potential_energy(first, ethanol) == pytest.approx(reference_energy, abs=1e-3)
    assert potential_energy(second, ethanol) == pytest.approx(reference_energy, abs=1e-3)


def test_odd_electron_count_raises_with_molecule_name(ethanol, tmp_path):
    with pytest.raises(baselines.AmberToolsError, match="wrongly-charged-ethanol") as error:
        baselines.gaff2_am1bcc_system(ethanol, total_charge=1, name="wrongly-charged-ethanol")
    assert "antechamber" in str(error.value)


def test_timeout_raises_with_molecule_name(ethanol):
    with pytest.raises(baselines.AmberToolsError, match="antechamber timed out .* 'slow-ethanol'"):
        baselines.gaff2_am1bcc_charges_and_types(ethanol, name="slow-ethanol", timeout_s=0.001)


def test_wrong_number_of_types_raises(ethanol):
    with pytest.raises(ValueError, match="ethanol"):
        baselines.gaff2_system_from_types(ethanol, ["c3"], [0.0], name="ethanol")


def test_missing_tool_raises_not_found(monkeypatch):
    monkeypatch.setattr(baselines.shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(baselines.AmberToolsNotFoundError, match="grappa_like\\[data\\]"):
        baselines.find_ambertools_executable("antechamber")


def test_single_point_am1bcc_is_close_to_the_optimized_route(ethanol):
    optimized, types_optimized = baselines.gaff2_am1bcc_charges_and_types(ethanol, name="ethanol")
    single_point, types_single = baselines.gaff2_am1bcc_charges_and_types(ethanol, name="ethanol",
                                                                         optimize_geometry=False)
    assert types_single == types_optimized
    assert abs(single_point.sum()) < 1e-3
    assert np.abs(single_point - optimized).max() < 0.15
