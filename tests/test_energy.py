"""The torch MM energy and the OpenMM System written by the writer are the same function.

Energies and forces of :func:`grappa_like.energy.parameters_energy` and of the System from
:func:`grappa_like.writers.to_openmm_system` (OpenMM Reference platform, double precision) agree
to 1e-5 relative, in total and per force kind, for random parameters (torsion amplitudes of both
signs) on perturbed conformations of neutral, charged and zwitterionic molecules.
"""

from __future__ import annotations

import math

import numpy as np
import openmm
import pytest
import torch
from openmm import unit
from rdkit import Chem
from rdkit.Chem import AllChem

import grappa_like
from grappa_like import energy, interactions as interactions_module
from grappa_like.molecule import from_smiles
from grappa_like.parameters import Parameters
from grappa_like.writers import to_openmm_system

MOLECULES = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "methylammonium": "C[NH3+]",
    "acetate": "CC(=O)[O-]",
    "glycine_zwitterion": "[NH3+]CC(=O)[O-]",
    "cyclobutanone": "O=C1CCC1",          # a 4-ring with an sp2 centre
    "chlorofluoroethene": "FC=CCl",
    "propyne": "CC#C",                    # nearly linear angles and torsions about them
}
N_CONFORMATIONS = 3
PERTURBATION_ANGSTROM = 0.05
RTOL = 1e-5
GROUPS = {"HarmonicBondForce": 0, "HarmonicAngleForce": 1, "PeriodicTorsionForce": 2, "NonbondedForce": 3}


# ----------------------------------------------------------------------------- helpers


def conformations_nm(molecule, n: int = N_CONFORMATIONS, seed: int = 1) -> np.ndarray:
    """(n, n_atoms, 3) nm: RDKit conformers, each perturbed by ~0.05 Å Gaussian noise."""
    mol = Chem.Mol(molecule.rdkit_mol)
    ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n, randomSeed=seed))
    assert len(ids) == n
    rng = np.random.default_rng(seed)
    positions = np.stack([mol.GetConformer(i).GetPositions() for i in ids])
    positions = positions + rng.normal(scale=PERTURBATION_ANGSTROM, size=positions.shape)
    return positions / 10.0


def random_parameters(molecule, seed: int) -> Parameters:
    """Hand-built random parameters of a molecule (signed torsions, arbitrary charges and LJ)."""
    rng = np.random.default_rng(seed)
    found = interactions_module.from_rdkit(molecule.rdkit_mol)
    n = molecule.n_atoms
    proper_k = rng.normal(scale=3.0, size=(len(found.propers), 4))
    improper_k = rng.normal(scale=3.0, size=(len(found.impropers), 2))
    if proper_k.size > 8:
        assert (proper_k < 0).any() and (proper_k > 0).any()
    return Parameters(
        interactions=found,
        bond_k=rng.uniform(1e5, 5e5, len(found.bonds)),
        bond_r0=rng.uniform(0.09, 0.16, len(found.bonds)),
        angle_k=rng.uniform(200.0, 800.0, len(found.angles)),
        angle_theta0=rng.uniform(1.7, 2.3, len(found.angles)),
        proper_k=proper_k,
        improper_k=improper_k,
        charges=rng.normal(scale=0.4, size=n),
        sigma=rng.uniform(0.1, 0.4, n),
        epsilon=rng.uniform(0.02, 1.0, n),
        lj_types=tuple("x" for _ in range(n)),
    )


def openmm_energies_forces(system: openmm.System, positions_nm: np.ndarray, groups=None):
    """Energy (kJ/mol) and forces (kJ/mol/nm) per conformation on the Reference platform."""
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    energies, forces = [], []
    for xyz in positions_nm:
        context.setPositions(xyz * unit.nanometer)
        kwargs = {} if groups is None else {"groups": groups}
        state = context.getState(getEnergy=True, getForces=True, **kwargs)
        energies.append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
        forces.append(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
    return np.array(energies), np.array(forces)


def system_with_groups(parameters, molecule) -> openmm.System:
    system = to_openmm_system(parameters, molecule.atomic_numbers)
    for force in system.getForces():
        force.setForceGroup(GROUPS[type(force).__name__])
    return system


def torch_terms(parameters: Parameters, x: torch.Tensor) -> dict:
    """Energy per force kind (kJ/mol), keyed like GROUPS; differentiable in the positions ``x`` (nm)."""
    it = parameters.interactions

    def t(a):
        return torch.as_tensor(np.asarray(a), dtype=torch.float64)

    pairs, coulomb_scale, lj_scale = energy.nonbonded_pairs(it)
    return {
        "HarmonicBondForce": energy.bond_energy(x, torch.from_numpy(it.bonds), t(parameters.bond_k),
                                                t(parameters.bond_r0)),
        "HarmonicAngleForce": energy.angle_energy(x, torch.from_numpy(it.angles), t(parameters.angle_k),
                                                  t(parameters.angle_theta0)),
        "PeriodicTorsionForce": energy.torsion_energy(x, torch.from_numpy(it.propers), t(parameters.proper_k))
        + energy.torsion_energy(x, torch.from_numpy(it.impropers), t(parameters.improper_k)),
        "NonbondedForce": energy.nonbonded_energy(
            x, torch.from_numpy(pairs), t(coulomb_scale), t(lj_scale), t(parameters.charges),
            t(parameters.sigma), t(parameters.epsilon)),
    }


def assert_energy_close(torch_energy, openmm_energy, scale=None):
    torch_energy, openmm_energy = np.asarray(torch_energy, dtype=float), np.asarray(openmm_energy, dtype=float)
    scale = np.maximum(np.abs(openmm_energy), 1e-3) if scale is None else scale
    assert np.all(np.abs(torch_energy - openmm_energy) <= RTOL * scale), (torch_energy, openmm_energy)


def assert_forces_close(torch_forces, openmm_forces):
    for t, o in zip(np.asarray(torch_forces), np.asarray(openmm_forces)):
        assert np.max(np.abs(t - o)) <= RTOL * np.max(np.abs(o)), np.max(np.abs(t - o)) / np.max(np.abs(o))


@pytest.fixture(scope="module")
def molecules():
    return {name: from_smiles(smiles, name=name) for name, smiles in MOLECULES.items()}


@pytest.fixture(scope="module")
def model_parameters(random_model, molecules):
    results = grappa_like.parameterize(list(molecules.values()), model=random_model, progress=False)
    return {name: result.parameters for name, result in zip(molecules, results)}


def check_parity(parameters, molecule, positions_nm):
    system = system_with_groups(parameters, molecule)
    x = torch.as_tensor(positions_nm, dtype=torch.float64)
    openmm_energy, openmm_forces = openmm_energies_forces(system, positions_nm)
    torch_energy = energy.parameters_energy(positions_nm, parameters).numpy()
    # scale: the sum of absolute per-kind energies (the total may cancel between kinds)
    terms = {name: term.numpy() for name, term in torch_terms(parameters, x).items()}
    np.testing.assert_allclose(sum(terms.values()), torch_energy, rtol=1e-12)
    assert_energy_close(torch_energy, openmm_energy, scale=sum(np.abs(term) for term in terms.values()))

    e, forces = energy.energy_and_forces(x, lambda y: energy.parameters_energy(y, parameters))
    np.testing.assert_allclose(e.detach().numpy(), torch_energy, rtol=1e-12)
    assert_forces_close(forces.numpy(), openmm_forces)

    for name, group in GROUPS.items():
        group_energy, group_forces = openmm_energies_forces(system, positions_nm, groups={group})
        assert_energy_close(terms[name], group_energy)
        _, term_forces = energy.energy_and_forces(x, lambda y, name=name: torch_terms(parameters, y)[name])
        if np.max(np.abs(group_forces)) > 0:
            assert_forces_close(term_forces.numpy(), group_forces)
        else:
            assert np.max(np.abs(term_forces.numpy())) == 0


# ----------------------------------------------------------------------------- parity


@pytest.mark.parametrize("name", list(MOLECULES))
def test_parity_with_openmm_random_model(name, molecules, model_parameters):
    parameters = model_parameters[name]
    # non-trivial: the random model gives different values to different bonds
    assert np.ptp(parameters.bond_k) > 1e-3 * parameters.bond_k.mean()
    check_parity(parameters, molecules[name], conformations_nm(molecules[name], seed=3))


@pytest.mark.parametrize("name", list(MOLECULES))
def test_parity_with_openmm_hand_built_parameters(name, molecules):
    molecule = molecules[name]
    check_parity(random_parameters(molecule, seed=len(name)), molecule, conformations_nm(molecule, seed=5))


def test_torsion_phase_convention_matches_openmm():
    # One torsion, amplitudes of both signs, scanned over the full circle: no constant offset.
    quadruple = np.array([[0, 1, 2, 3]])
    found = interactions_module.Interactions(
        n_atoms=4, bonds=np.zeros((0, 2), np.int64), angles=np.zeros((0, 3), np.int64),
        propers=quadruple, impropers=np.zeros((0, 4), np.int64), pairs14=np.zeros((0, 2), np.int64),
        exclusions=np.array([[i, j] for i in range(4) for j in range(i + 1, 4)], np.int64))
    parameters = Parameters(
        interactions=found, bond_k=np.zeros(0), bond_r0=np.zeros(0), angle_k=np.zeros(0),
        angle_theta0=np.zeros(0), proper_k=np.array([[1.5, -2.0, 0.7, -0.3]]), improper_k=np.zeros((0, 2)),
        charges=np.zeros(4), sigma=np.full(4, 0.3), epsilon=np.zeros(4), lj_types=("x",) * 4)
    phis = np.linspace(-math.pi, math.pi, 13)
    positions = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.15],
                           [math.cos(phi), math.sin(phi), 0.15]] for phi in phis]) * 0.15
    expected = [sum(k + k * math.cos(n * phi) if k >= 0 else -k - (-k) * math.cos(n * phi)
                    for n, k in enumerate(parameters.proper_k[0], start=1)) for phi in phis]
    openmm_energy, _ = openmm_energies_forces(to_openmm_system(parameters, [6, 6, 6, 6]), positions)
    torch_energy = energy.parameters_energy(positions, parameters).numpy()
    np.testing.assert_allclose(openmm_energy, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(torch_energy, expected, rtol=1e-9, atol=1e-12)
    # minimum of each term is 0: the energy is never negative
    assert (torch_energy >= -1e-12).all()


def test_dihedral_angle_known_values():
    # Only |phi| matters for the energy (phases are 0 or pi, cos is even); the sign convention of
    # dihedral_angle is not fixed by the design, so only cos and |phi| are checked.
    for phi in (-2.5, -1.0, 0.0, 0.3, 1.7, 3.0):
        xyz = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0],
                             [math.cos(phi), math.sin(phi), 1.0]]], dtype=torch.float64)
        value = energy.dihedral_angle(xyz, torch.tensor([[0, 1, 2, 3]])).item()
        assert math.isclose(math.cos(value), math.cos(phi), abs_tol=1e-12)
        assert math.isclose(abs(value), abs(phi), abs_tol=1e-9)


def test_simple_bond_and_angle_energies():
    xyz = torch.tensor([[[0.0, 0.0, 0.0], [0.12, 0.0, 0.0], [0.12, 0.1, 0.0]]], dtype=torch.float64)
    bond = energy.bond_energy(xyz, torch.tensor([[0, 1]]), torch.tensor([2.0e5]), torch.tensor([0.1]))
    assert bond.item() == pytest.approx(0.5 * 2.0e5 * 0.02 ** 2)
    angle = energy.angle_energy(xyz, torch.tensor([[0, 1, 2]]), torch.tensor([400.0]), torch.tensor([2.0]))
    assert angle.item() == pytest.approx(0.5 * 400.0 * (math.pi / 2 - 2.0) ** 2)


def test_nonbonded_pairs_scaling_and_exclusions():
    found = interactions_module.from_rdkit(from_smiles("CCCC").rdkit_mol)
    pairs, coulomb_scale, lj_scale = energy.nonbonded_pairs(found)
    listed = {tuple(p) for p in pairs.tolist()}
    n = found.n_atoms
    excluded = {tuple(p) for p in found.exclusions.tolist()}
    assert len(listed) == n * (n - 1) // 2 - len(excluded)
    assert not listed & excluded
    scales = {tuple(p): (c, l) for p, c, l in zip(pairs.tolist(), coulomb_scale, lj_scale)}
    for pair in found.pairs14.tolist():
        assert scales[tuple(pair)] == pytest.approx((1 / 1.2, 0.5))
    assert sum(1 for c, l in scales.values() if (c, l) == (1.0, 1.0)) == len(listed) - len(found.pairs14)


# ----------------------------------------------------------------------------- forces, gradients


def test_forces_match_finite_differences(molecules):
    molecule = molecules["glycine_zwitterion"]
    parameters = random_parameters(molecule, seed=2)
    x = torch.as_tensor(conformations_nm(molecule, n=1, seed=7), dtype=torch.float64)
    _, forces = energy.energy_and_forces(x, lambda y: energy.parameters_energy(y, parameters))
    h = 1e-6
    rng = np.random.default_rng(0)
    for atom in rng.choice(molecule.n_atoms, size=4, replace=False):
        for axis in range(3):
            plus, minus = x.clone(), x.clone()
            plus[0, atom, axis] += h
            minus[0, atom, axis] -= h
            numeric = -(energy.parameters_energy(plus, parameters) - energy.parameters_energy(minus, parameters)) / (2 * h)
            assert forces[0, atom, axis].item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-3)


def test_energy_and_forces_under_no_grad_and_with_create_graph():
    k = torch.tensor([3.0e5], dtype=torch.float64, requires_grad=True)
    bonds = torch.tensor([[0, 1]])
    x = torch.tensor([[[0.0, 0.0, 0.0], [0.11, 0.0, 0.0]]], dtype=torch.float64)

    def function(y):
        return energy.bond_energy(y, bonds, k, torch.tensor([0.1], dtype=torch.float64))

    with torch.no_grad():
        e, f = energy.energy_and_forces(x, function)
    assert f[0, 1, 0].item() == pytest.approx(-3.0e5 * 0.01)
    assert f[0, 0, 0].item() == pytest.approx(3.0e5 * 0.01)
    e, f = energy.energy_and_forces(x, function, create_graph=True)
    assert f.requires_grad
    (gradient,) = torch.autograd.grad(f[0, 1, 0], k)
    assert gradient.item() == pytest.approx(-0.01)


def test_exactly_linear_geometry_gives_finite_forces():
    x = torch.tensor([[[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.2, 0.0, 0.0], [0.3, 0.0, 0.0]]], dtype=torch.float64)

    def function(y):
        return (energy.angle_energy(y, torch.tensor([[0, 1, 2]]), torch.tensor([300.0], dtype=torch.float64),
                                    torch.tensor([3.0], dtype=torch.float64))
                + energy.torsion_energy(y, torch.tensor([[0, 1, 2, 3]]),
                                        torch.tensor([[1.0, -2.0]], dtype=torch.float64)))

    e, f = energy.energy_and_forces(x, function)
    # (the dihedral of collinear atoms is undefined; only finiteness is required there)
    assert torch.isfinite(e).all() and torch.isfinite(f).all()
    angle_only = energy.angle_energy(x, torch.tensor([[0, 1, 2]]), torch.tensor([300.0], dtype=torch.float64),
                                     torch.tensor([3.0], dtype=torch.float64))
    assert angle_only.item() == pytest.approx(0.5 * 300.0 * (math.pi - 3.0) ** 2)


def test_single_atom_has_zero_energy_and_forces():
    ion = from_smiles("[Cl-]")
    parameters = random_parameters(ion, seed=0)
    x = np.zeros((2, 1, 3))
    e, f = energy.energy_and_forces(torch.as_tensor(x), lambda y: energy.parameters_energy(y, parameters))
    assert e.tolist() == [0.0, 0.0]
    assert torch.count_nonzero(f) == 0


# ----------------------------------------------------------------------------- impropers


def _improper_energy(found, improper_k, positions_nm):
    return energy.torsion_energy(torch.as_tensor(positions_nm, dtype=torch.float64),
                                 torch.from_numpy(found.impropers), torch.as_tensor(improper_k)).numpy()


@pytest.mark.parametrize("smiles", ["CC(=O)Oc1ccccc1C(=O)O", "CC(=O)[O-]", "NC=O"])
def test_improper_energy_invariant_under_permuting_neighbours(smiles):
    """With the same amplitudes for the three impropers of a centre, exchanging the coordinates of
    its neighbours (a relabelling of them) leaves the improper energy unchanged."""
    molecule = from_smiles(smiles)
    found = interactions_module.from_rdkit(molecule.rdkit_mol)
    positions = conformations_nm(molecule, n=2, seed=4)
    rng = np.random.default_rng(1)
    centres = sorted(set(found.impropers[:, 2].tolist()))
    per_centre = {c: rng.normal(scale=3.0, size=2) for c in centres}
    improper_k = np.array([per_centre[c] for c in found.impropers[:, 2]])
    neighbours = {c: [n.GetIdx() for n in molecule.rdkit_mol.GetAtomWithIdx(c).GetNeighbors()] for c in centres}
    for centre in centres:
        # only the impropers of this centre (moving its neighbours changes other centres' impropers)
        rows = found.impropers[:, 2] == centre
        own = interactions_module.Interactions(
            n_atoms=found.n_atoms, bonds=found.bonds, angles=found.angles, propers=found.propers,
            impropers=found.impropers[rows], pairs14=found.pairs14, exclusions=found.exclusions)
        reference = _improper_energy(own, improper_k[rows], positions)
        assert np.all(np.abs(reference) > 1e-8)
        for permutation in ([1, 0, 2], [0, 2, 1], [2, 0, 1], [1, 2, 0]):
            moved = positions.copy()
            source = neighbours[centre]
            target = [source[p] for p in permutation]
            moved[:, target] = positions[:, source]
            np.testing.assert_allclose(_improper_energy(own, improper_k[rows], moved), reference, rtol=1e-9)


def test_improper_quadruples_from_relabelled_atoms_give_same_energy():
    """Relabel the atoms, rebuild the improper quadruples with from_bonds, give each improper the
    amplitudes of its (centre, axis neighbour) and compare: the energy must not change."""
    molecule = from_smiles("CC(=O)Oc1ccccc1C(=O)[O-]")
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in molecule.rdkit_mol.GetBonds()]
    n = molecule.n_atoms
    positions = conformations_nm(molecule, n=2, seed=6)
    found = interactions_module.from_bonds(n, bonds)
    rng = np.random.default_rng(3)
    amplitudes = {(int(b), int(c)): rng.normal(scale=3.0, size=2) for _, b, c, _ in found.impropers}
    reference = _improper_energy(found, np.array([amplitudes[(b, c)] for _, b, c, _ in found.impropers]),
                                 positions)
    for seed in range(3):
        new_of_old = np.random.default_rng(seed).permutation(n)
        old_of_new = np.argsort(new_of_old)
        relabelled = interactions_module.from_bonds(n, [(new_of_old[i], new_of_old[j]) for i, j in bonds])
        k = np.array([amplitudes[(int(old_of_new[b]), int(old_of_new[c]))] for _, b, c, _ in relabelled.impropers])
        moved = positions[:, old_of_new]
        np.testing.assert_allclose(_improper_energy(relabelled, k, moved), reference, rtol=1e-10)


def test_total_energy_invariant_under_atom_relabelling(random_model):
    """End to end: relabel the input atoms, predict, evaluate at the relabelled coordinates."""
    # both through from_rdkit, so the two inputs take the same input path
    molecule = grappa_like.molecule.from_rdkit(from_smiles("CC(=O)Oc1ccccc1C(=O)O").rdkit_mol)
    positions = conformations_nm(molecule, n=2, seed=8)
    order = np.random.default_rng(4).permutation(molecule.n_atoms)
    relabelled = grappa_like.molecule.from_rdkit(Chem.RenumberAtoms(molecule.rdkit_mol, order.tolist()))
    (p_original, p_relabelled) = [r.parameters for r in grappa_like.parameterize(
        [molecule, relabelled], model=random_model, progress=False)]
    e_original = energy.parameters_energy(positions, p_original).numpy()
    e_relabelled = energy.parameters_energy(positions[:, order], p_relabelled).numpy()
    np.testing.assert_allclose(e_relabelled, e_original, rtol=1e-5)
