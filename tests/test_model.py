"""The network: equivariance under atom permutations, symmetric heads, exact total charge, ranges."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rdkit import Chem

import grappa_like
from grappa_like import molecule as molecule_module
from grappa_like.model import charge_equilibration
from grappa_like.inference import HEAD_REVERSALS

MOLECULES = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "glycine_zwitterion": "[NH3+]CC(=O)[O-]",
    "cyclobutanone": "O=C1CCC1",
    "chlorobenzenesulfonamide": "NS(=O)(=O)c1ccc(Cl)cc1",
}
FLOAT32_RTOL = 1e-5


def predict(model, molecules):
    return model.predict(list(molecules))


def canonical_molecule(smiles: str) -> molecule_module.Molecule:
    """Through from_rdkit, so that it takes the same input path as a relabelled copy."""
    return molecule_module.from_rdkit(molecule_module.from_smiles(smiles).rdkit_mol)


def keyed_parameters(parameters, mapping) -> dict:
    """{(kind, atom tuple in original labels): parameter vector}; ``mapping[new] = original``."""
    it = parameters.interactions
    m = [int(x) for x in mapping]
    out = {}
    for (i, j), k, r0 in zip(it.bonds, parameters.bond_k, parameters.bond_r0):
        out[("bond", frozenset((m[i], m[j])))] = np.array([k, r0])
    for (i, j, k), kk, theta in zip(it.angles, parameters.angle_k, parameters.angle_theta0):
        out[("angle", m[j], frozenset((m[i], m[k])))] = np.array([kk, theta])
    for quadruple, values in zip(it.propers, parameters.proper_k):
        t = tuple(m[x] for x in quadruple)
        out[("proper", min(t, t[::-1]))] = np.asarray(values)
    for (a, b, c, d), values in zip(it.impropers, parameters.improper_k):
        out[("improper", m[b], m[c], frozenset((m[a], m[d])))] = np.asarray(values)
    for atom in range(it.n_atoms):
        out[("atom", m[atom])] = np.array([parameters.charges[atom], parameters.sigma[atom],
                                           parameters.epsilon[atom]])
    return out


def assert_close(actual, desired, scale, what):
    actual, desired = np.asarray(actual, float), np.asarray(desired, float)
    assert np.all(np.abs(actual - desired) <= FLOAT32_RTOL * np.maximum(np.abs(desired), scale)), (
        what, actual, desired)


# ----------------------------------------------------------------------------- permutations


@pytest.mark.parametrize("name", list(MOLECULES))
def test_permuting_atoms_permutes_every_parameter(random_model, name):
    original = canonical_molecule(MOLECULES[name])
    n = original.n_atoms
    for seed in (1, 2):
        order = np.random.default_rng(seed).permutation(n)  # new atom k is original atom order[k]
        relabelled = molecule_module.from_rdkit(Chem.RenumberAtoms(original.rdkit_mol, order.tolist()))
        p_original, p_relabelled = predict(random_model, [original, relabelled])
        a = keyed_parameters(p_original, np.arange(n))
        b = keyed_parameters(p_relabelled, order)
        assert a.keys() == b.keys()
        scales = {kind: max(np.abs(v).max() for key, v in a.items() if key[0] == kind) for kind in
                  {key[0] for key in a}}
        for key in a:
            assert_close(b[key], a[key], scales[key[0]], key)
        assert tuple(p_relabelled.lj_types) == tuple(np.array(p_original.lj_types, dtype=object)[order])


def test_same_molecule_same_parameters_on_every_input_path(random_model, tmp_path):
    plain = molecule_module.from_smiles("CC(=O)[O-]")
    mapped = molecule_module.from_smiles(plain.mapped_smiles())
    via_rdkit = molecule_module.from_rdkit(plain.rdkit_mol)
    parameters = predict(random_model, [plain, mapped, via_rdkit])
    for other in parameters[1:]:
        np.testing.assert_allclose(other.charges, parameters[0].charges, rtol=FLOAT32_RTOL, atol=1e-7)
        np.testing.assert_allclose(other.bond_k, parameters[0].bond_k, rtol=FLOAT32_RTOL)


def test_input_paths_agree_once_hydrogen_hybridization_is_normalised(random_model):
    """The only difference between input paths is the hydrogen hybridization:
    once every hydrogen is given hybridization S, plain and mapped SMILES agree exactly."""
    plain = molecule_module.from_smiles("CC(=O)[O-]")
    mapped = molecule_module.from_smiles(plain.mapped_smiles())
    for atom in plain.rdkit_mol.GetAtoms():
        if atom.GetAtomicNum() == 1:
            atom.SetHybridization(Chem.HybridizationType.S)
    a, b = predict(random_model, [plain, mapped])
    np.testing.assert_allclose(a.charges, b.charges, rtol=FLOAT32_RTOL, atol=1e-7)
    np.testing.assert_allclose(a.bond_k, b.bond_k, rtol=FLOAT32_RTOL)
    np.testing.assert_allclose(a.proper_k, b.proper_k, rtol=FLOAT32_RTOL, atol=1e-6)


# ----------------------------------------------------------------------------- symmetry-equivalent atoms


def equivalence_classes(mol: Chem.Mol) -> list[list[int]]:
    ranks = list(Chem.CanonicalRankAtoms(mol, breakTies=False))
    classes: dict[int, list[int]] = {}
    for atom, rank in enumerate(ranks):
        classes.setdefault(rank, []).append(atom)
    return [members for members in classes.values() if len(members) > 1]


@pytest.mark.parametrize("smiles", ["CCO", "c1ccccc1", "CC(C)(C)C", "C[NH3+]", "OC(=O)CC(=O)O"])
def test_symmetry_equivalent_atoms_get_identical_parameters(random_model, smiles):
    mol = canonical_molecule(smiles)
    (parameters,) = predict(random_model, [mol])
    classes = equivalence_classes(mol.rdkit_mol)
    assert classes
    for members in classes:
        first = members[0]
        for other in members[1:]:
            assert parameters.charges[other] == pytest.approx(parameters.charges[first], rel=1e-5, abs=1e-7)
            assert parameters.lj_types[other] == parameters.lj_types[first]
    # bonds between equivalent pairs of atoms get identical parameters
    ranks = list(Chem.CanonicalRankAtoms(mol.rdkit_mol, breakTies=False))
    by_class: dict = {}
    for (i, j), k, r0 in zip(parameters.interactions.bonds, parameters.bond_k, parameters.bond_r0):
        by_class.setdefault(frozenset((ranks[i], ranks[j])), []).append((k, r0))
    for values in by_class.values():
        np.testing.assert_allclose(values, [values[0]] * len(values), rtol=1e-5)


def test_ethanol_methyl_hydrogens_identical(random_model):
    mol = molecule_module.from_rdkit(molecule_module.from_smiles("CCO").rdkit_mol)
    (parameters,) = predict(random_model, [mol])
    methyl_h = [n.GetIdx() for n in mol.rdkit_mol.GetAtomWithIdx(0).GetNeighbors() if n.GetSymbol() == "H"]
    assert len(methyl_h) == 3
    charges = parameters.charges[methyl_h]
    np.testing.assert_allclose(charges, charges[0], rtol=1e-5)
    assert len({parameters.lj_types[i] for i in methyl_h}) == 1
    # and the hydroxyl H differs from them (the random model is not trivial)
    hydroxyl_h = next(n.GetIdx() for n in mol.rdkit_mol.GetAtomWithIdx(2).GetNeighbors() if n.GetSymbol() == "H")
    assert abs(parameters.charges[hydroxyl_h] - charges[0]) > 1e-4


@pytest.mark.parametrize(("smiles", "element", "expected_count"), [
    ("COP(=O)([O-])[O-]", "O", 3),      # terminal P=O / P-O-: not enumerated by RDKit's resonance
    ("CS(=O)(=O)[O-]", "O", 3),
    ("C[N+](=O)[O-]", "O", 2),
    ("NC(N)=[NH2+]", "N", 3),           # guanidinium: resonance over the conjugated system
    ("CC(N)=[NH2+]", "N", 2),
])
def test_resonance_equivalent_atoms_identical(random_model, smiles, element, expected_count):
    mol = molecule_module.from_smiles(smiles)
    (parameters,) = predict(random_model, [mol])
    rdmol = mol.rdkit_mol
    centre_neighbours = {}
    for atom in rdmol.GetAtoms():
        if atom.GetSymbol() == element and not (element == "O" and atom.GetDegree() > 1):
            if element == "N" and atom.GetIsAromatic():
                continue
            centre_neighbours.setdefault(tuple(sorted(n.GetIdx() for n in atom.GetNeighbors() if n.GetAtomicNum() > 1)),
                                         []).append(atom.GetIdx())
    group = max(centre_neighbours.values(), key=len)
    assert len(group) == expected_count
    np.testing.assert_allclose(parameters.charges[group], parameters.charges[group[0]], rtol=1e-5, atol=1e-7)
    assert len({parameters.lj_types[i] for i in group}) == 1


def test_carboxylate_oxygens_identical(random_model):
    mol = molecule_module.from_rdkit(molecule_module.from_smiles("CC(=O)[O-]").rdkit_mol)
    (parameters,) = predict(random_model, [mol])
    oxygens = [a.GetIdx() for a in mol.rdkit_mol.GetAtoms() if a.GetSymbol() == "O"]
    assert len(oxygens) == 2
    assert parameters.lj_types[oxygens[0]] == parameters.lj_types[oxygens[1]]
    assert parameters.charges[oxygens[0]] == pytest.approx(parameters.charges[oxygens[1]], rel=1e-5)
    bonds = {frozenset(map(int, b)): (k, r0) for b, k, r0 in zip(
        parameters.interactions.bonds, parameters.bond_k, parameters.bond_r0)}
    np.testing.assert_allclose(bonds[frozenset((1, oxygens[0]))], bonds[frozenset((1, oxygens[1]))], rtol=1e-5)


# ----------------------------------------------------------------------------- total charge


@pytest.mark.parametrize(("smiles", "charge"), [
    ("C[NH3+]", 1),
    ("CC(=O)[O-]", -1),
    ("[NH3+]CC(=O)[O-]", 0),
    ("[NH3+]CCCC[NH3+]", 2),
    ("OP(=O)([O-])[O-]", -2),
    ("c1ccccc1O", 0),
    ("[Cl-]", -1),
])
def test_total_charge_is_exact(random_model, smiles, charge):
    mol = molecule_module.from_smiles(smiles)
    (parameters,) = predict(random_model, [mol])
    assert parameters.charges.dtype == np.float64
    assert abs(parameters.charges.sum() - charge) < 1e-6
    assert np.ptp(parameters.charges) > 0 or mol.n_atoms == 1


def test_total_charge_exact_in_a_batch(random_model):
    smiles = ["C[NH3+]", "CC(=O)[O-]", "[NH3+]CC(=O)[O-]", "[NH3+]CCCC[NH3+]", "OP(=O)([O-])[O-]"]
    charges = [1, -1, 0, 2, -2]
    parameters = predict(random_model, [molecule_module.from_smiles(s) for s in smiles])
    for p, q in zip(parameters, charges):
        assert abs(p.charges.sum() - q) < 1e-6


def test_charge_equilibration_matches_lagrange_solution():
    rng = np.random.default_rng(0)
    sizes, totals = [3, 5, 1], [0.0, -1.0, 2.0]
    chi = rng.normal(size=sum(sizes))
    eta = rng.uniform(0.5, 2.0, size=sum(sizes))
    batch = np.repeat(np.arange(len(sizes)), sizes)
    q = charge_equilibration(torch.tensor(chi, dtype=torch.float32), torch.tensor(eta, dtype=torch.float32),
                             torch.tensor(batch), torch.tensor(totals, dtype=torch.float64)).numpy()
    chi32, eta32 = np.float32(chi).astype(float), np.float32(eta).astype(float)
    start = 0
    for size, total in zip(sizes, totals):
        # minimise sum chi q + 1/2 eta q^2 subject to sum q = total: [diag(eta) 1; 1 0] [q; -l] = [-chi; Q]
        a = np.zeros((size + 1, size + 1))
        a[:size, :size] = np.diag(eta32[start:start + size])
        a[:size, size] = 1.0
        a[size, :size] = 1.0
        solution = np.linalg.solve(a, np.concatenate([-chi32[start:start + size], [total]]))
        np.testing.assert_allclose(q[start:start + size], solution[:size], rtol=1e-10, atol=1e-12)
        start += size


# ----------------------------------------------------------------------------- heads


def test_heads_are_exactly_symmetric(lj_table):
    from conftest import build_random_network

    network = build_random_network(lj_table)
    width = network.config["width"]
    generator = torch.Generator().manual_seed(0)
    h = torch.randn(12, width, generator=generator)
    cases = [
        (network.bond_head, 2, [1, 0]),
        (network.angle_head, 3, [2, 1, 0]),
        (network.proper_head, 4, [3, 2, 1, 0]),
        (network.improper_head, 4, [3, 1, 2, 0]),  # (a, b, c, d) ~ (d, b, c, a)
    ]
    with torch.no_grad():
        for head, size, reversal in cases:
            index = torch.stack([torch.randperm(12, generator=generator)[:size] for _ in range(20)])
            forward = head(h, index)
            assert torch.equal(forward, head(h, index[:, reversal]))
            # not symmetric under other permutations: the head does look at the order
            other = list(range(size))
            other[0], other[1] = other[1], other[0]
            if other != reversal:
                assert not torch.allclose(forward, head(h, index[:, other]))


def test_numpy_heads_are_exactly_symmetric(random_model):
    """The shipped inference path (grappa_like.inference) has the same exact symmetries."""
    network = random_model.network
    rng = np.random.default_rng(0)
    h = rng.normal(size=(12, network.config["width"]))
    for name, reversal in HEAD_REVERSALS.items():
        index = np.stack([rng.permutation(12)[:len(reversal)] for _ in range(20)])
        forward = network._symmetric_head(h, index, name)
        assert np.array_equal(forward, network._symmetric_head(h, index[:, list(reversal)], name)), name
        swapped = list(range(len(reversal)))
        swapped[0], swapped[1] = swapped[1], swapped[0]
        if tuple(swapped) != reversal:
            assert not np.allclose(forward, network._symmetric_head(h, index[:, swapped], name)), name


def test_bond_head_reversed_index_in_a_real_molecule(lj_table):
    from conftest import build_random_network
    from grappa_like import interactions
    from grappa_like.features import molecule_graph
    from grappa_like.model import torch_graph

    mol = molecule_module.from_smiles("CC(=O)Oc1ccccc1C(=O)O").rdkit_mol
    graph = torch_graph(molecule_graph(mol, interactions.from_rdkit(mol)))
    network = build_random_network(lj_table)
    with torch.no_grad():
        h = network.encoder(graph.x, graph.edge_index, graph.edge_attr)
        assert torch.equal(network.bond_head(h, graph.bonds), network.bond_head(h, graph.bonds.flip(1)))
        assert torch.equal(network.angle_head(h, graph.angles), network.angle_head(h, graph.angles.flip(1)))
        assert torch.equal(network.proper_head(h, graph.propers), network.proper_head(h, graph.propers.flip(1)))


# ----------------------------------------------------------------------------- ranges


@pytest.mark.parametrize("name", list(MOLECULES))
def test_parameter_ranges(random_model, name):
    mol = molecule_module.from_smiles(MOLECULES[name])
    (p,) = predict(random_model, [mol])
    for array in (p.bond_k, p.bond_r0, p.angle_k, p.angle_theta0, p.proper_k, p.improper_k, p.charges,
                  p.sigma, p.epsilon):
        assert np.all(np.isfinite(array))
    assert np.all(p.bond_k > 0) and np.all(p.bond_r0 > 0)
    assert np.all(p.angle_k > 0)
    assert np.all(p.angle_theta0 > 0) and np.all(p.angle_theta0 < math.pi)
    assert np.all(p.sigma > 0) and np.all(p.epsilon >= 0)
    assert p.proper_k.shape == (len(p.interactions.propers), random_model.network.config["n_proper_periodicities"])
    assert p.improper_k.shape == (len(p.interactions.impropers),
                                  random_model.network.config["n_improper_periodicities"])
    # every atom gets an LJ class of its own element
    table = random_model.lj_table
    for atom, type_name in zip(mol.rdkit_mol.GetAtoms(), p.lj_types):
        assert table.atomic_numbers[table.names.index(type_name)] == atom.GetAtomicNum()


def test_ranges_hold_for_extreme_head_outputs(lj_table):
    """Positivity and ranges by construction: even huge head outputs stay in range (no clipping needed)."""
    from grappa_like import interactions
    from grappa_like.features import molecule_graph
    from grappa_like.model import ForceFieldModel, torch_graph

    torch.manual_seed(0)
    network = ForceFieldModel({"width": 16, "n_layers": 1, "head_hidden": 16}, lj_table.atomic_numbers).eval()
    with torch.no_grad():
        for head in (network.bond_head.net, network.angle_head.net):
            head[-1].bias.copy_(torch.tensor([-8.0, 8.0]))
        mol = molecule_module.from_smiles("CCO").rdkit_mol
        out = network(torch_graph(molecule_graph(mol, interactions.from_rdkit(mol))))
    assert torch.all(out["bond_k"] > 0) and torch.all(out["bond_r0"] > 0) and torch.all(out["angle_k"] > 0)
    assert torch.all(out["angle_theta0"] > 0) and torch.all(out["angle_theta0"] <= math.pi)


def test_resonance_is_local_to_each_charged_group(random_model):
    # Arg-Arg-Asp-Glu-like chain with four charged conjugated groups: each guanidinium's N and each
    # carboxylate's O must be equivalent however many groups the molecule has.
    smiles = "NC(=[NH2+])NCCC[C@@H](C(=O)[O-])NC(=O)[C@@H](CCCNC(N)=[NH2+])NC(=O)CC(=O)[O-]"
    mol = molecule_module.from_smiles(smiles)
    (parameters,) = predict(random_model, [mol])
    rdmol = mol.rdkit_mol
    for atom in rdmol.GetAtoms():
        if atom.GetSymbol() == "C" and atom.GetDegree() == 3:
            terminal = [n.GetIdx() for n in atom.GetNeighbors()
                        if n.GetSymbol() in "NO" and not any(m.GetAtomicNum() > 1 and m.GetIdx() != atom.GetIdx()
                                                           for m in n.GetNeighbors())]
            if len(terminal) >= 2:
                np.testing.assert_allclose(parameters.charges[terminal], parameters.charges[terminal[0]], rtol=1e-5)
