"""Graph features: shapes, what they encode, batching of interaction indices."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from grappa_like import features, interactions, molecule

# column offsets of the atom feature blocks (same order as features.atom_features)
N_ELEMENTS = len(molecule.SUPPORTED_ATOMIC_NUMBERS)
DEGREE = slice(N_ELEMENTS, N_ELEMENTS + features.MAX_DEGREE + 1)
CHARGE = slice(DEGREE.stop, DEGREE.stop + len(features.FORMAL_CHARGES))
HYBRIDIZATION = slice(CHARGE.stop, CHARGE.stop + len(features.HYBRIDIZATIONS))
H_COUNT = slice(HYBRIDIZATION.stop, HYBRIDIZATION.stop + features.MAX_HYDROGENS + 1)


def graph_of(smiles: str):
    mol = molecule.from_smiles(smiles).rdkit_mol
    return mol, features.molecule_graph(mol, interactions.from_rdkit(mol))


def test_shapes_and_one_hot_blocks():
    mol, graph = graph_of("CC(=O)Oc1ccccc1C(=O)O")
    n = mol.GetNumAtoms()
    assert graph.x.shape == (n, features.N_ATOM_FEATURES)
    assert graph.edge_index.shape == (2, 2 * mol.GetNumBonds())
    assert graph.edge_attr.shape == (2 * mol.GetNumBonds(), features.N_BOND_FEATURES)
    # element and degree one-hots have exactly one 1 per atom
    assert np.all(graph.x[:, :N_ELEMENTS].sum(1) == 1)
    assert np.all(graph.x[:, DEGREE].sum(1) == 1)
    assert np.all(graph.x[:, CHARGE].sum(1) == 1)
    elements = [molecule.SUPPORTED_ATOMIC_NUMBERS[i] for i in graph.x[:, :N_ELEMENTS].argmax(1).tolist()]
    assert elements == [a.GetAtomicNum() for a in mol.GetAtoms()]
    assert graph.x[:, DEGREE].argmax(1).tolist() == [a.GetDegree() for a in mol.GetAtoms()]


def test_edges_in_both_directions_with_same_features():
    mol, graph = graph_of("C=CC#N")
    m = mol.GetNumBonds()
    assert np.array_equal(graph.edge_index[:, :m], graph.edge_index[:, m:][::-1])
    assert np.array_equal(graph.edge_attr[:m], graph.edge_attr[m:])
    for (i, j), row in zip(graph.edge_index[:, :m].T.tolist(), graph.edge_attr[:m]):
        bond_type = mol.GetBondBetweenAtoms(i, j).GetBondType()
        assert row[:len(features.BOND_TYPES)].tolist() == [float(bond_type == t) for t in features.BOND_TYPES]


def test_formal_charge_feature():
    mol, graph = graph_of("C[NH3+]")
    charges = [features.FORMAL_CHARGES[i] for i in graph.x[:, CHARGE].argmax(1).tolist()]
    assert charges == [a.GetFormalCharge() for a in mol.GetAtoms()]
    assert graph.total_charge.tolist() == [1.0]


def test_batching_offsets_interaction_indices():
    graphs = [graph_of(s)[1] for s in ("CCO", "c1ccccc1", "C[NH3+]")]
    batch = features.concatenate_graphs(graphs)
    offset = 0
    starts = {key: 0 for key in features.INTERACTION_KEYS}
    assert batch.batch.tolist() == sum(([index] * graph.num_nodes for index, graph in enumerate(graphs)), [])
    assert np.array_equal(batch.edge_index, np.concatenate(
        [graph.edge_index + sum(g.num_nodes for g in graphs[:index]) for index, graph in enumerate(graphs)], axis=1))
    for graph in graphs:
        for key in features.INTERACTION_KEYS:
            own = getattr(graph, key)
            batched = getattr(batch, key)[starts[key]:starts[key] + len(own)]
            assert np.array_equal(batched, own + offset), key
            starts[key] += len(own)
        offset += graph.num_nodes
    assert batch.total_charge.tolist() == [0.0, 0.0, 1.0]


def test_features_use_no_atom_indices():
    """Relabelling the atoms permutes the rows of the atom features, nothing else."""
    mol = molecule.from_smiles("CC(=O)Oc1ccccc1C(=O)O").rdkit_mol
    mol = Chem.Mol(mol)
    Chem.SanitizeMol(mol)
    order = np.random.default_rng(0).permutation(mol.GetNumAtoms()).tolist()
    relabelled = Chem.RenumberAtoms(mol, order)
    assert np.array_equal(features.atom_features(relabelled), features.atom_features(mol)[order])


def test_hydrogen_count_feature_counts_hydrogen_neighbours():
    mol, graph = graph_of("CC(C)(C)C(C)C=C")  # carbons with 3, 0, 1, 2 hydrogens
    counts = graph.x[:, H_COUNT].argmax(1).tolist()
    expected = [min(a.GetTotalNumHs(includeNeighbors=True), features.MAX_HYDROGENS) for a in mol.GetAtoms()]
    assert counts == expected


def test_same_features_from_plain_and_mapped_smiles():
    plain = molecule.from_smiles("CCO")
    mapped = molecule.from_smiles(plain.mapped_smiles())
    assert np.array_equal(features.atom_features(plain.rdkit_mol), features.atom_features(mapped.rdkit_mol))
