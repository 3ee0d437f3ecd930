"""Tests of grappa_like.openmm: the ForceField template generator and bonded re-parameterization.

Plumbing (parity with ``to_openmm``, caching, matching, protein re-parameterization) runs with the
random model of conftest.py; MD stability needs a trained model and is skipped until the shipped
model (or $GRAPPA_LIKE_MODEL) exists.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import openmm
import pytest
from openmm import app, unit
from rdkit import Chem
from rdkit.Chem import AllChem

from grappa_like import model_file
from grappa_like.api import Model, default_model_path
from grappa_like.molecule import Molecule, from_smiles
from grappa_like.openmm import TemplateGenerator, molecule_topology, molecules_from_topology, reparameterize_system
from grappa_like.writers import to_openmm_system

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
PARITY_MOLECULES = [ASPIRIN, "CC(=O)[O-]", "C#CCN", "c1ccccc1C[NH3+]", "O=[N+]([O-])c1ccccc1", "C1CC1C(=O)N"]
UBIQUITIN = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "benchmarks", "proteins", "1ubq.pdb")
RELATIVE_TOLERANCE = 1e-6
MAX_BOND_DEVIATION_NM = 0.03  # 0.3 Å

needs_trained_model = pytest.mark.skipif(
    not os.path.exists(default_model_path()), reason=f"trained model {default_model_path()} not there yet")
needs_ubiquitin = pytest.mark.skipif(not os.path.exists(UBIQUITIN), reason="shared/benchmarks/proteins/1ubq.pdb absent")


@pytest.fixture
def counted_model(random_payload, monkeypatch):
    """A fresh random model (with a file checksum) whose ``predict`` calls are counted in ``.calls``."""
    payload = dict(random_payload, format_version=model_file.FORMAT_VERSION)
    payload["sha256"] = model_file.checksum(payload)
    model = Model.from_payload(payload)
    model.calls = []
    predict = model.predict

    def counting_predict(molecules):
        model.calls.append([m.smiles for m in molecules])
        return predict(molecules)

    monkeypatch.setattr(model, "predict", counting_predict)
    return model


@pytest.fixture(scope="module")
def ubiquitin():
    """(Topology, positions) of 1UBQ without waters, hydrogens added with amber14 (pH 7)."""
    pdb = app.PDBFile(UBIQUITIN)
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.deleteWater()
    modeller.addHydrogens(app.ForceField("amber14-all.xml"))
    return modeller.topology, modeller.positions


def energies_by_force(system, positions, platform="Reference") -> dict[str, float]:
    """Potential energy (kJ/mol) of each force class of a System (one force group per force)."""
    system = openmm.XmlSerializer.clone(system)
    for index, force in enumerate(system.getForces()):
        force.setForceGroup(index)
    properties = {"Threads": "1"} if platform == "CPU" else {}
    context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName(platform), properties)
    context.setPositions(positions)
    result: dict[str, float] = {}
    for index, force in enumerate(system.getForces()):
        energy = context.getState(getEnergy=True, groups={index}).getPotentialEnergy()
        name = type(force).__name__
        result[name] = result.get(name, 0.0) + energy.value_in_unit(unit.kilojoule_per_mole)
    return result


def assert_same_energies(reference: dict, actual: dict):
    for name in ("HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "NonbondedForce"):
        assert actual[name] == pytest.approx(reference[name], rel=RELATIVE_TOLERANCE, abs=1e-8), name


def distorted_positions(molecule: Molecule, seed: int = 1):
    """Conformer (nm) with 0.01 nm noise, so every term (impropers included) is off its minimum."""
    noise = np.random.default_rng(seed).normal(scale=0.01, size=(molecule.n_atoms, 3))
    return unit.Quantity(molecule.conformer_positions() * 0.1 + noise, unit.nanometer)


def vacuum_system(forcefield, topology):
    return forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None, removeCMMotion=False)


def cpu_platform():
    try:
        return openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"}
    except Exception:
        return openmm.Platform.getPlatformByName("Reference"), {}


# ------------------------------------------------------------------------------------------
# Template generator


@pytest.mark.parametrize("smiles", PARITY_MOLECULES)
def test_generator_system_equals_to_openmm_force_by_force(smiles, random_model):
    molecule = from_smiles(smiles)
    reference = to_openmm_system(random_model.predict([molecule])[0], molecule.atomic_numbers)
    generator = TemplateGenerator(molecule, model=random_model)
    forcefield = app.ForceField("amber14-all.xml")  # the ligand's terms must not pick up amber wildcards
    forcefield.registerTemplateGenerator(generator.generator)
    topology, _ = molecule_topology(molecule)
    system = vacuum_system(forcefield, topology)
    positions = distorted_positions(molecule)
    assert system.getNumParticles() == molecule.n_atoms
    assert [system.getParticleMass(i) for i in range(molecule.n_atoms)] == \
        [reference.getParticleMass(i) for i in range(molecule.n_atoms)]
    assert_same_energies(energies_by_force(reference, positions), energies_by_force(system, positions))


def test_generator_impropers_and_exceptions_are_the_writers(random_model):
    molecule = from_smiles(ASPIRIN)
    parameters = random_model.predict([molecule])[0]
    forcefield = app.ForceField()
    forcefield.registerTemplateGenerator(TemplateGenerator(molecule, model=random_model).generator)
    system = vacuum_system(forcefield, molecule_topology(molecule)[0])
    torsions = next(f for f in system.getForces() if isinstance(f, openmm.PeriodicTorsionForce))
    quadruples = {tuple(torsions.getTorsionParameters(i)[:4]) for i in range(torsions.getNumTorsions())}
    for improper in parameters.interactions.impropers:
        assert tuple(int(a) for a in improper) in quadruples  # centre at position 3, as written
    nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    pairs = {tuple(sorted(nonbonded.getExceptionParameters(i)[:2])) for i in range(nonbonded.getNumExceptions())}
    terms = parameters.interactions
    expected = {tuple(p) for p in terms.exclusions} | {tuple(p) for p in terms.pairs14}
    assert pairs == expected



def test_every_copy_of_every_ligand_gets_all_three_impropers(random_model):
    aspirin, acetamide = from_smiles(ASPIRIN), from_smiles("CC(N)=O")
    forcefield = app.ForceField()
    forcefield.registerTemplateGenerator(TemplateGenerator([aspirin, acetamide], model=random_model).generator)
    modeller = app.Modeller(*molecule_topology(aspirin))
    for molecule in (acetamide, aspirin):
        topology, positions = molecule_topology(molecule)
        modeller.add(topology, positions)
    system = vacuum_system(forcefield, modeller.topology)
    expected = 0
    for molecule, copies in ((aspirin, 2), (acetamide, 1)):
        single = to_openmm_system(random_model.predict([molecule])[0], molecule.atomic_numbers)
        torsions = next(f for f in single.getForces() if isinstance(f, openmm.PeriodicTorsionForce))
        expected += copies * torsions.getNumTorsions()
    torsions = next(f for f in system.getForces() if isinstance(f, openmm.PeriodicTorsionForce))
    assert torsions.getNumTorsions() == expected

@pytest.mark.parametrize("suffix", [".json", ".sqlite"])
def test_model_runs_once_per_molecule_and_cache_is_hit(suffix, counted_model, tmp_path):
    molecule = from_smiles(ASPIRIN)
    topology, positions = molecule_topology(molecule)
    modeller = app.Modeller(topology, positions)
    modeller.add(topology, positions + unit.Quantity(np.array([1.5, 0.0, 0.0]), unit.nanometer))
    cache = str(tmp_path / f"templates{suffix}")

    first = app.ForceField("amber14-all.xml")
    first.registerTemplateGenerator(TemplateGenerator([ASPIRIN], model=counted_model, cache=cache).generator)
    start = time.perf_counter()
    system = vacuum_system(first, modeller.topology)
    uncached = time.perf_counter() - start
    assert len(counted_model.calls) == 1
    energies = energies_by_force(system, modeller.positions)

    second = app.ForceField("amber14-all.xml")
    second.registerTemplateGenerator(TemplateGenerator([ASPIRIN], model=counted_model, cache=cache).generator)
    start = time.perf_counter()
    cached_system = vacuum_system(second, modeller.topology)
    cached = time.perf_counter() - start
    assert len(counted_model.calls) == 1, "the second ForceField must read the template from the cache"
    assert_same_energies(energies, energies_by_force(cached_system, modeller.positions))
    print(f"createSystem with model {uncached:.3f} s, from cache {cached:.3f} s")
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]

    nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    q = [nonbonded.getParticleParameters(i)[0]._value for i in range(system.getNumParticles())]
    assert q[:molecule.n_atoms] == q[molecule.n_atoms:]  # both copies got the same template


def test_cache_key_includes_model_checksum(counted_model, random_model, tmp_path):
    cache = tmp_path / "templates.json"
    first_tag, _ = TemplateGenerator(model=counted_model, cache=str(cache)).template(from_smiles("CCO"))
    second_tag, _ = TemplateGenerator(model=random_model, cache=str(cache)).template(from_smiles("OCC"))
    assert first_tag != second_tag
    assert len(json.loads(cache.read_text())) == 2


def test_shuffled_residue_atom_order_still_matches(random_model):
    molecule = from_smiles(ASPIRIN)
    order = np.random.default_rng(3).permutation(molecule.n_atoms).tolist()
    shuffled = Molecule(Chem.RenumberAtoms(molecule.rdkit_mol, order), name="shuffled")
    positions = distorted_positions(molecule)
    forcefield = app.ForceField()
    forcefield.registerTemplateGenerator(TemplateGenerator(molecule, model=random_model).generator)
    system = vacuum_system(forcefield, molecule_topology(shuffled)[0])
    reference = to_openmm_system(random_model.predict([molecule])[0], molecule.atomic_numbers)
    shuffled_positions = unit.Quantity(positions.value_in_unit(unit.nanometer)[order], unit.nanometer)
    assert_same_energies(energies_by_force(reference, positions), energies_by_force(system, shuffled_positions))


def test_add_molecules_accepts_every_input_kind(random_model, tmp_path):
    sdf = tmp_path / "ligands.sdf"
    writer = Chem.SDWriter(str(sdf))
    for smiles in ("CCO", "c1ccncc1"):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=1)
        writer.write(mol)
    writer.close()
    generator = TemplateGenerator(model=random_model)
    generator.add_molecules(["CC(=O)[O-]", Chem.MolFromSmiles("CCN"), str(sdf), from_smiles("CCCl")])
    assert sorted(m.smiles for m in generator.molecules) == sorted(["CC(=O)[O-]", "CCN", "CCO", "c1ccncc1", "CCCl"])


def test_unregistered_residue_is_left_to_other_generators(random_model):
    forcefield = app.ForceField()
    forcefield.registerTemplateGenerator(TemplateGenerator(["CCO"], model=random_model).generator)
    with pytest.raises(ValueError, match="No template found"):
        vacuum_system(forcefield, molecule_topology(from_smiles("CCN"))[0])


@needs_trained_model
def test_solvated_aspirin_with_amber14_runs_md():
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    generator = TemplateGenerator([ASPIRIN])
    forcefield.registerTemplateGenerator(generator.generator)
    topology, positions = molecule_topology(from_smiles(ASPIRIN))
    modeller = app.Modeller(topology, positions)
    modeller.addSolvent(forcefield, padding=0.8 * unit.nanometer)
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME,
                                     nonbondedCutoff=0.7 * unit.nanometer, constraints=app.HBonds,
                                     hydrogenMass=1.5 * unit.amu)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1.0 / unit.picosecond, 0.003 * unit.picoseconds)
    integrator.setRandomNumberSeed(5)
    context = openmm.Context(system, integrator, *cpu_platform())
    context.setPositions(modeller.positions)
    assert np.isfinite(context.getState(getEnergy=True).getPotentialEnergy()._value)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 200)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 5)
    integrator.step(200)
    state = context.getState(getEnergy=True, getPositions=True)
    assert np.isfinite(state.getPotentialEnergy()._value)
    assert np.all(np.isfinite(state.getPositions(asNumpy=True)._value))


# ------------------------------------------------------------------------------------------
# Re-parameterization of a protein System


def _amber_ubiquitin_system(topology, **options):
    return app.ForceField("amber14-all.xml").createSystem(topology, nonbondedMethod=app.NoCutoff, **options)


@needs_ubiquitin
def test_ubiquitin_molecule_charges_are_inferred(ubiquitin):
    topology, _ = ubiquitin
    system = _amber_ubiquitin_system(topology)
    ((atoms, molecule),) = molecules_from_topology(topology, system)
    assert atoms == list(range(topology.getNumAtoms()))
    assert molecule.total_charge == 0
    formal = {(a.residue.name, a.name): molecule.rdkit_mol.GetAtomWithIdx(a.index).GetFormalCharge()
              for a in topology.atoms()}
    assert formal[("LYS", "NZ")] == 1 and formal[("MET", "N")] == 1
    assert sum(c for c in formal.values()) == 0
    charged = sum(1 for atom in molecule.rdkit_mol.GetAtoms() if atom.GetFormalCharge())
    assert charged == 24  # 7 Lys + 4 Arg + N-terminus; 6 Glu + 5 Asp + C-terminus


@needs_ubiquitin
def test_ubiquitin_reparameterization_replaces_bonded_terms_only(ubiquitin, random_model):
    topology, positions = ubiquitin
    system = _amber_ubiquitin_system(topology, constraints=app.HBonds, hydrogenMass=1.5 * unit.amu)
    new = reparameterize_system(system, topology, model=random_model)

    assert new.getNumParticles() == system.getNumParticles()
    assert [new.getParticleMass(i) for i in range(new.getNumParticles())] == \
        [system.getParticleMass(i) for i in range(system.getNumParticles())]
    assert [new.getConstraintParameters(i) for i in range(new.getNumConstraints())] == \
        [system.getConstraintParameters(i) for i in range(system.getNumConstraints())]
    assert [type(f).__name__ for f in new.getForces()] == [type(f).__name__ for f in system.getForces()]
    nonbonded = [openmm.XmlSerializer.serialize(f) for s in (system, new)
                 for f in s.getForces() if isinstance(f, openmm.NonbondedForce)]
    assert nonbonded[0] == nonbonded[1]  # charges, LJ and every exception unchanged

    ((atoms, molecule),) = molecules_from_topology(topology, system)
    parameters = random_model.predict([molecule])[0]
    constrained = {tuple(sorted(new.getConstraintParameters(i)[:2])) for i in range(new.getNumConstraints())}
    expected_bonds = {tuple(int(a) for a in bond): (r0, k) for bond, r0, k
                      in zip(parameters.interactions.bonds, parameters.bond_r0, parameters.bond_k)
                      if tuple(int(a) for a in bond) not in constrained}
    bonds = next(f for f in new.getForces() if isinstance(f, openmm.HarmonicBondForce))
    actual_bonds = {}
    for i in range(bonds.getNumBonds()):
        a, b, r0, k = bonds.getBondParameters(i)
        actual_bonds[(min(a, b), max(a, b))] = (r0._value, k._value)
    assert actual_bonds.keys() == expected_bonds.keys()
    for pair, (r0, k) in expected_bonds.items():
        assert actual_bonds[pair] == pytest.approx((r0, k), rel=1e-12)
    angles = next(f for f in new.getForces() if isinstance(f, openmm.HarmonicAngleForce))
    assert angles.getNumAngles() == len(parameters.interactions.angles)
    torsions = next(f for f in new.getForces() if isinstance(f, openmm.PeriodicTorsionForce))
    assert torsions.getNumTorsions() == parameters.proper_k.size + parameters.improper_k.size

    before, after = energies_by_force(system, positions, "CPU"), energies_by_force(new, positions, "CPU")
    assert after["NonbondedForce"] == pytest.approx(before["NonbondedForce"], rel=1e-9)
    for name in ("HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce"):
        assert after[name] != pytest.approx(before[name], rel=1e-3), name


@needs_ubiquitin
def test_reparameterize_keeps_flexible_constraints_and_other_molecules(ubiquitin, random_model):
    topology, _ = ubiquitin
    system = _amber_ubiquitin_system(topology, constraints=app.HBonds, flexibleConstraints=True)
    new = reparameterize_system(system, topology, model=random_model, residues=[])
    assert openmm.XmlSerializer.serialize(new) == openmm.XmlSerializer.serialize(system)  # nothing chosen
    new = reparameterize_system(system, topology, model=random_model)
    bonds = next(f for f in new.getForces() if isinstance(f, openmm.HarmonicBondForce))
    assert bonds.getNumBonds() == topology.getNumBonds()  # flexible constraints keep every harmonic bond


def _run_ubiquitin_md(ubiquitin, n_steps: int):
    topology, positions = ubiquitin
    system = _amber_ubiquitin_system(topology, constraints=app.HBonds, hydrogenMass=1.5 * unit.amu)
    start = time.perf_counter()
    system = reparameterize_system(system, topology)
    print(f"reparameterize_system(ubiquitin): {time.perf_counter() - start:.2f} s")
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1.0 / unit.picosecond, 0.002 * unit.picoseconds)
    integrator.setRandomNumberSeed(11)
    context = openmm.Context(system, integrator, *cpu_platform())
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 300)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 11)
    bonds = next(f for f in system.getForces() if isinstance(f, openmm.HarmonicBondForce))
    terms = [bonds.getBondParameters(i) for i in range(bonds.getNumBonds())]
    pairs = np.array([(a, b) for a, b, _, _ in terms])
    r0 = np.array([length.value_in_unit(unit.nanometer) for _, _, length, _ in terms])
    for _ in range(max(1, n_steps // 100)):
        integrator.step(min(100, n_steps))
        state = context.getState(getEnergy=True, getPositions=True)
        assert np.isfinite(state.getPotentialEnergy()._value)
        xyz = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        lengths = np.linalg.norm(xyz[pairs[:, 0]] - xyz[pairs[:, 1]], axis=1)
        assert np.max(np.abs(lengths - r0)) < MAX_BOND_DEVIATION_NM


@needs_trained_model
@needs_ubiquitin
def test_reparameterized_ubiquitin_short_md_is_stable(ubiquitin):
    _run_ubiquitin_md(ubiquitin, 200)


@pytest.mark.slow
@needs_trained_model
@needs_ubiquitin
def test_reparameterized_ubiquitin_10ps_md_is_stable(ubiquitin):
    _run_ubiquitin_md(ubiquitin, 5000)


# ------------------------------------------------------------------------------------------
# Residues that match no registered molecule: a warning that says why


def mismatch_warning(registered: str, topology, random_model) -> str:
    """The ResidueMismatchWarning text when ``topology`` meets a generator registered with ``registered``;
    also checks that OpenMM still refuses the residue."""
    from grappa_like.errors import ResidueMismatchWarning

    generator = TemplateGenerator(registered, model=random_model)
    forcefield = app.ForceField("amber14-all.xml")
    forcefield.registerTemplateGenerator(generator.generator)
    with pytest.warns(ResidueMismatchWarning) as caught, pytest.raises(ValueError, match="No template found"):
        forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff)
    messages = [str(w.message) for w in caught if w.category is ResidueMismatchWarning]
    assert len(set(messages)) == 1
    return messages[0]


def test_another_molecule_is_reported_as_not_registered_with_the_closest(random_model):
    topology, _ = molecule_topology(from_smiles("Oc1ccccc1", "phenol"))
    message = mismatch_warning("Cc1ccccc1", topology, random_model)
    assert "residue 0 (LIG" in message and "C6H6O" in message
    assert "not registered" in message and "Cc1ccccc1" in message and "C7H8" in message
    assert "generator.add_molecules(" in message


def test_ligand_without_hydrogens_is_reported_as_missing_hydrogens(random_model):
    topology, positions = molecule_topology(from_smiles("Cc1ccccc1", "toluene"))
    modeller = app.Modeller(topology, positions)
    modeller.delete([atom for atom in modeller.topology.atoms() if atom.element.symbol == "H"])
    message = mismatch_warning("Cc1ccccc1", modeller.topology, random_model)
    assert "residue 0 (LIG" in message and ", C7," in message
    assert "no hydrogens" in message and "Cc1ccccc1" in message and "add the hydrogens" in message


def test_other_protonation_state_is_reported_with_the_hydrogen_count(random_model):
    topology, _ = molecule_topology(from_smiles("CC(=O)[O-]", "acetate"))
    message = mismatch_warning("CC(=O)O", topology, random_model)
    assert "C2H3O2" in message and "3 hydrogens instead of 4" in message and "protonation state" in message
    assert "CC(=O)O" in message and "generator.add_molecules(" in message


def test_tautomer_is_reported_as_tautomer(random_model):
    topology, _ = molecule_topology(from_smiles("Oc1ccccn1", "2-hydroxypyridine"))
    message = mismatch_warning("O=c1cccc[nH]1", topology, random_model)
    assert "C5H5NO" in message and "another tautomer" in message
