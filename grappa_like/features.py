"""Graph features per atom and per bond, computed from the molecular graph only (no coordinates)."""

from __future__ import annotations

import numpy as np
import torch
from rdkit import Chem
from torch_geometric.data import Data

from grappa_like.molecule import SUPPORTED_ATOMIC_NUMBERS

HYBRIDIZATIONS = (
    Chem.HybridizationType.S,
    Chem.HybridizationType.SP,
    Chem.HybridizationType.SP2,
    Chem.HybridizationType.SP3,
    Chem.HybridizationType.SP3D,
    Chem.HybridizationType.SP3D2,
)
FORMAL_CHARGES = (-2, -1, 0, 1, 2)
RING_SIZES = (3, 4, 5, 6, 7, 8)
MAX_DEGREE = 4
MAX_HYDROGENS = 3
BOND_TYPES = (Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC)

N_ATOM_FEATURES = (
    len(SUPPORTED_ATOMIC_NUMBERS) + (MAX_DEGREE + 1) + len(FORMAL_CHARGES) + len(HYBRIDIZATIONS)
    + (MAX_HYDROGENS + 1) + 1 + 1 + len(RING_SIZES)
)
N_BOND_FEATURES = len(BOND_TYPES) + 3


def _one_hot(value, choices) -> list[float]:
    return [1.0 if value == choice else 0.0 for choice in choices]


def atom_features(mol: Chem.Mol) -> torch.Tensor:
    """(n_atoms, N_ATOM_FEATURES) float tensor: element, degree, formal charge, hybridisation, H count,
    aromaticity, ring membership and ring sizes."""
    ring_info = mol.GetRingInfo()
    rows = []
    for atom in mol.GetAtoms():
        index = atom.GetIdx()
        rows.append(
            _one_hot(atom.GetAtomicNum(), SUPPORTED_ATOMIC_NUMBERS)
            + _one_hot(min(atom.GetDegree(), MAX_DEGREE), range(MAX_DEGREE + 1))
            + _one_hot(max(min(atom.GetFormalCharge(), 2), -2), FORMAL_CHARGES)
            + _one_hot(atom.GetHybridization(), HYBRIDIZATIONS)
            + _one_hot(min(atom.GetTotalNumHs(), MAX_HYDROGENS), range(MAX_HYDROGENS + 1))
            + [float(atom.GetIsAromatic()), float(ring_info.NumAtomRings(index) > 0)]
            + [float(ring_info.IsAtomInRingOfSize(index, size)) for size in RING_SIZES]
        )
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, N_ATOM_FEATURES)


def bond_features(mol: Chem.Mol, bonds: np.ndarray) -> torch.Tensor:
    """(n_bonds, N_BOND_FEATURES) float tensor for the bonds (i, j) given: bond order, conjugation, ring."""
    rows = []
    for i, j in bonds:
        bond = mol.GetBondBetweenAtoms(int(i), int(j))
        rows.append(
            _one_hot(bond.GetBondType(), BOND_TYPES)
            + [float(bond.GetIsConjugated()), float(bond.IsInRing()),
               float(bond.GetBondType() not in BOND_TYPES)]
        )
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, N_BOND_FEATURES)


class MoleculeGraph(Data):
    """PyG graph of one molecule with its interaction index arrays (offset correctly when batched)."""

    INTERACTION_KEYS = ("bonds", "angles", "propers", "impropers")

    def __inc__(self, key, value, *args, **kwargs):
        if key in self.INTERACTION_KEYS:
            return self.num_nodes
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key, value, *args, **kwargs):
        if key in self.INTERACTION_KEYS:
            return 0
        return super().__cat_dim__(key, value, *args, **kwargs)


def molecule_graph(mol: Chem.Mol, interactions) -> MoleculeGraph:
    """Graph of an RDKit Mol: atom features, bond features on both edge directions, interactions."""
    bonds = interactions.bonds
    bond_attr = bond_features(mol, bonds)
    edge_index = torch.from_numpy(np.concatenate([bonds, bonds[:, ::-1]]).T.copy()).long().reshape(2, -1)
    return MoleculeGraph(
        x=atom_features(mol),
        edge_index=edge_index,
        edge_attr=torch.cat([bond_attr, bond_attr]),
        atomic_numbers=torch.tensor([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=torch.long),
        total_charge=torch.tensor([float(Chem.GetFormalCharge(mol))], dtype=torch.float64),
        **{key: torch.from_numpy(getattr(interactions, key)).long() for key in MoleculeGraph.INTERACTION_KEYS},
        num_nodes=mol.GetNumAtoms(),
    )
