"""Python API: parameterize (one result or error per input, batched), to_openmm Systems."""

from __future__ import annotations

import numpy as np
import openmm
import pytest
from openmm import unit
from rdkit import Chem
from rdkit.Chem import AllChem

import grappa_like
from grappa_like import api, errors
from grappa_like.energy import parameters_energy

FORCE_KINDS = {"HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "NonbondedForce"}
GOOD = ["CC(=O)Oc1ccccc1C(=O)O", "C[NH3+]", "CC(=O)[O-]", "[NH3+]CC(=O)[O-]", "O=C1CCC1", "O", "[Cl-]"]
PARAMETER_KEYS = ("bond_k", "bond_r0", "angle_k", "angle_theta0", "proper_k", "improper_k", "charges", "sigma",
                  "epsilon")


def test_one_result_per_input_with_typed_errors(random_model):
    inputs = ["CCO", "C1CC", "c1ccccc1", "[CH3]", "C[Si](C)(C)C", "CCO.O", "CC(=O)[O-]"]
    results = grappa_like.parameterize(inputs, model=random_model, progress=False)
    assert len(results) == len(inputs)
    expected_errors = {1: errors.UnparsableInputError, 3: errors.RadicalError, 4: errors.UnsupportedElementError,
                       5: errors.DisconnectedMoleculeError}
    for index, (item, result) in enumerate(zip(inputs, results)):
        if index in expected_errors:
            assert not result.ok
            assert isinstance(result.error, expected_errors[index])
            assert result.parameters is None
            assert result.name == item
        else:
            assert result.ok, result.error
            assert result.parameters is not None
            assert result.molecule.n_atoms == len(result.parameters.charges)
    assert results[0].molecule.n_atoms == 9 and results[2].molecule.n_atoms == 12


def test_empty_input_gives_empty_list(random_model):
    assert grappa_like.parameterize([], model=random_model, progress=False) == []


def test_bad_result_to_openmm_raises_its_error(random_model):
    (result,) = grappa_like.parameterize(["[CH3]"], model=random_model, progress=False)
    with pytest.raises(errors.RadicalError):
        result.to_openmm()
    with pytest.raises(errors.RadicalError):
        grappa_like.to_openmm(result)


def test_accepts_single_items_of_every_kind(random_model):
    mol = grappa_like.molecule.from_smiles("CCO")
    for item in ("CCO", mol, Chem.AddHs(Chem.MolFromSmiles("CCO"))):
        results = grappa_like.parameterize(item, model=random_model, progress=False)
        assert len(results) == 1 and results[0].ok and results[0].molecule.n_atoms == 9


def test_model_given_as_path(model_file_path):
    (result,) = grappa_like.parameterize(["CCO"], model=model_file_path, progress=False)
    assert result.ok


def system_summary(system: openmm.System) -> dict:
    return {type(force).__name__: force for force in system.getForces()}


@pytest.mark.parametrize("smiles", GOOD)
def test_to_openmm_has_the_four_standard_forces_only(random_model, smiles):
    (result,) = grappa_like.parameterize([smiles], model=random_model, progress=False)
    system = grappa_like.to_openmm(result)
    molecule, parameters = result.molecule, result.parameters
    it = parameters.interactions
    assert system.getNumParticles() == molecule.n_atoms
    assert [type(f).__name__ for f in system.getForces()].count("NonbondedForce") == 1
    forces = system_summary(system)
    assert set(forces) == FORCE_KINDS and system.getNumForces() == 4
    assert system.getNumConstraints() == 0
    for index, atom in enumerate(molecule.rdkit_mol.GetAtoms()):
        mass = system.getParticleMass(index).value_in_unit(unit.dalton)
        assert mass == pytest.approx(openmm.app.Element.getByAtomicNumber(atom.GetAtomicNum()).mass.value_in_unit(
            unit.dalton))
    assert forces["HarmonicBondForce"].getNumBonds() == len(it.bonds)
    assert forces["HarmonicAngleForce"].getNumAngles() == len(it.angles)
    assert forces["PeriodicTorsionForce"].getNumTorsions() == it.propers.shape[0] * parameters.proper_k.shape[1] + (
        it.impropers.shape[0] * parameters.improper_k.shape[1])
    nonbonded = forces["NonbondedForce"]
    assert nonbonded.getNonbondedMethod() == openmm.NonbondedForce.NoCutoff
    assert nonbonded.getNumExceptions() == len(it.exclusions) + len(it.pairs14)
    charges = [nonbonded.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
               for i in range(system.getNumParticles())]
    assert sum(charges) == pytest.approx(molecule.total_charge, abs=1e-6)


def test_to_openmm_from_smiles_and_model(random_model):
    system = grappa_like.to_openmm("CCO", model=random_model)
    assert system.getNumParticles() == 9
    assert set(system_summary(system)) == FORCE_KINDS


def test_serialized_system_gives_the_same_energy(random_model):
    (result,) = grappa_like.parameterize(["CC(=O)Oc1ccccc1C(=O)O"], model=random_model, progress=False)
    system = result.to_openmm()
    copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    positions = result.molecule.conformer_positions() / 10.0
    energies = []
    for s in (system, copy):
        context = openmm.Context(s, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(positions)
        energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    assert energies[0] == pytest.approx(energies[1], rel=1e-12)
    torch_energy = parameters_energy(positions[None], result.parameters).item()
    assert energies[0] == pytest.approx(torch_energy, rel=1e-6)


def _assert_same_parameters(a, b):
    for key in PARAMETER_KEYS:
        x, y = np.asarray(getattr(a, key)), np.asarray(getattr(b, key))
        assert x.shape == y.shape, key
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5 * max(1e-3, float(np.abs(y).max(initial=0))),
                                   err_msg=key)
    assert a.lj_types == b.lj_types
    for key in ("bonds", "angles", "propers", "impropers", "pairs14", "exclusions"):
        np.testing.assert_array_equal(getattr(a.interactions, key), getattr(b.interactions, key))


def test_batched_prediction_equals_one_by_one(random_model, monkeypatch):
    one_by_one = [grappa_like.parameterize([s], model=random_model, progress=False)[0].parameters for s in GOOD]
    batched = grappa_like.parameterize(GOOD, model=random_model, progress=False)
    for result, single in zip(batched, one_by_one):
        _assert_same_parameters(result.parameters, single)
    # small batches and chunks by atom count: same numbers
    monkeypatch.setattr(api, "INFERENCE_BATCH_ATOMS", 25)
    chunked = grappa_like.parameterize(GOOD, model=random_model, progress=False, batch_size=3)
    for result, single in zip(chunked, one_by_one):
        _assert_same_parameters(result.parameters, single)


def test_batch_with_errors_keeps_alignment(random_model):
    inputs = ["CCO", "bad smiles", "C[NH3+]", "[Na+]", "CC(=O)[O-]"]
    mixed = grappa_like.parameterize(inputs, model=random_model, progress=False, batch_size=2)
    for item, result in zip(inputs, mixed):
        if result.ok:
            (alone,) = grappa_like.parameterize([item], model=random_model, progress=False)
            _assert_same_parameters(result.parameters, alone.parameters)
            assert result.molecule.total_charge == alone.molecule.total_charge
    assert [r.ok for r in mixed] == [True, False, True, False, True]


def test_rdkit_input_positions_are_kept(random_model):
    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    (result,) = grappa_like.parameterize([mol], model=random_model, progress=False)
    np.testing.assert_allclose(result.molecule.positions, mol.GetConformer().GetPositions())


def test_default_model_path_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPPA_LIKE_MODEL", str(tmp_path / "x.pt"))
    assert api.default_model_path() == str(tmp_path / "x.pt")
    monkeypatch.delenv("GRAPPA_LIKE_MODEL")
    assert api.default_model_path().endswith("models/grappa-like-v2.npz")
