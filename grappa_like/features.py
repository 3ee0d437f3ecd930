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


def atom_features(mol: Chem.Mol, resonance: "Resonance | None" = None) -> torch.Tensor:
    """(n_atoms, N_ATOM_FEATURES) float tensor: element, degree, formal charge (averaged over resonance
    structures), hybridisation, number of bonded H, aromaticity, ring membership and ring sizes."""
    resonance = resonance or Resonance(mol)
    ring_info = mol.GetRingInfo()
    rows = []
    for atom in mol.GetAtoms():
        index = atom.GetIdx()
        # H atoms made by AddHs carry UNSPECIFIED hybridisation, explicit ones S: same atom, one value
        hybridization = Chem.HybridizationType.S if atom.GetAtomicNum() == 1 else atom.GetHybridization()
        rows.append(
            _one_hot(atom.GetAtomicNum(), SUPPORTED_ATOMIC_NUMBERS)
            + _one_hot(min(atom.GetDegree(), MAX_DEGREE), range(MAX_DEGREE + 1))
            + list(resonance.formal_charge_one_hot[index])
            + _one_hot(hybridization, HYBRIDIZATIONS)
            + _one_hot(min(atom.GetTotalNumHs(includeNeighbors=True), MAX_HYDROGENS), range(MAX_HYDROGENS + 1))
            + [float(atom.GetIsAromatic()), float(ring_info.NumAtomRings(index) > 0)]
            + [float(ring_info.IsAtomInRingOfSize(index, size)) for size in RING_SIZES]
        )
    features = torch.tensor(rows, dtype=torch.float32).reshape(-1, N_ATOM_FEATURES)
    for group in resonance.equivalent_terminal_groups:
        features[group] = features[group].mean(0)
    return features


def bond_features(mol: Chem.Mol, bonds: np.ndarray, resonance: "Resonance | None" = None) -> torch.Tensor:
    """(n_bonds, N_BOND_FEATURES) float tensor for the bonds (i, j) given: bond order (averaged over
    resonance structures), conjugation, ring."""
    resonance = resonance or Resonance(mol)
    rows = []
    for i, j in bonds:
        bond = mol.GetBondBetweenAtoms(int(i), int(j))
        rows.append(
            list(resonance.bond_type_one_hot[bond.GetIdx()])
            + [float(bond.GetIsConjugated()), float(bond.IsInRing()),
               float(bond.GetBondType() not in BOND_TYPES)]
        )
    features = torch.tensor(rows, dtype=torch.float32).reshape(-1, N_BOND_FEATURES)
    row_of_pair = {(int(i), int(j)): row for row, (i, j) in enumerate(bonds)}
    for group in resonance.equivalent_terminal_groups:
        centre = next(n.GetIdx() for n in mol.GetAtomWithIdx(group[0]).GetNeighbors())
        rows_of_group = [row_of_pair[(min(a, centre), max(a, centre))] for a in group]
        features[rows_of_group] = features[rows_of_group].mean(0)
    return features


class Resonance:
    """Formal charges and bond orders averaged over resonance structures, so that resonance-equivalent
    atoms (the O of a carboxylate, nitro, phosphate or sulfonate; the N of an amidinium or guanidinium)
    get identical features and hence identical parameters.

    Two mechanisms: RDKit's ResonanceMolSupplier, run separately on each conjugated system that
    carries a formal charge (cut out at its non-conjugated bonds, so a protein with many charged
    groups costs the sum, not the product, of their structures); and groups of terminal heavy atoms
    of one element on one centre (P=O / P-O⁻, S=O / S-O⁻, which RDKit does not enumerate), whose
    features are averaged.
    """

    MAX_STRUCTURES_PER_SYSTEM = 64

    def __init__(self, mol: Chem.Mol):
        n_atoms = mol.GetNumAtoms()
        self.formal_charge_one_hot = np.array(
            [_one_hot(max(min(a.GetFormalCharge(), 2), -2), FORMAL_CHARGES) for a in mol.GetAtoms()]).reshape(-1, len(FORMAL_CHARGES))
        self.bond_type_one_hot = np.array(
            [_one_hot(b.GetBondType(), BOND_TYPES) for b in mol.GetBonds()]).reshape(-1, len(BOND_TYPES))
        for fragment, atom_indices in self._charged_conjugated_systems(mol):
            structures = [s for s in Chem.ResonanceMolSupplier(fragment, 0, self.MAX_STRUCTURES_PER_SYSTEM)
                          if s is not None]
            for fragment_index, original in enumerate(atom_indices):
                if original < n_atoms:
                    self.formal_charge_one_hot[original] = np.mean([_one_hot(
                        max(min(s.GetAtomWithIdx(fragment_index).GetFormalCharge(), 2), -2), FORMAL_CHARGES)
                        for s in structures], axis=0)
            for bond in fragment.GetBonds():
                begin, end = atom_indices[bond.GetBeginAtomIdx()], atom_indices[bond.GetEndAtomIdx()]
                original_bond = mol.GetBondBetweenAtoms(begin, end) if max(begin, end) < n_atoms else None
                if original_bond is None or original_bond.GetIsAromatic():
                    continue
                self.bond_type_one_hot[original_bond.GetIdx()] = np.mean([_one_hot(
                    s.GetBondWithIdx(bond.GetIdx()).GetBondType(), BOND_TYPES) for s in structures], axis=0)
        groups = {}
        for atom in mol.GetAtoms():
            if atom.GetAtomicNum() > 1 and atom.GetDegree() == 1:
                centre = atom.GetNeighbors()[0].GetIdx()
                groups.setdefault((centre, atom.GetAtomicNum()), []).append(atom.GetIdx())
        self.equivalent_terminal_groups = [sorted(g) for g in groups.values() if len(g) > 1]

    @staticmethod
    def _charged_conjugated_systems(mol: Chem.Mol):
        """Yield (fragment Mol, original atom index of each fragment atom) per conjugated system with a
        formal charge, cut out at its non-conjugated bonds; fragment atoms beyond the molecule's atoms
        are dummies where bonds were cut. Only these systems are cut out, so a protein costs little."""
        if not any(atom.GetFormalCharge() for atom in mol.GetAtoms()):
            return
        system_of = list(range(mol.GetNumAtoms()))  # union-find over conjugated bonds

        def root(index):
            while system_of[index] != index:
                system_of[index] = system_of[system_of[index]]
                index = system_of[index]
            return index

        for bond in mol.GetBonds():
            if bond.GetIsConjugated():
                system_of[root(bond.GetBeginAtomIdx())] = root(bond.GetEndAtomIdx())
        in_conjugated_bond = {a for b in mol.GetBonds() if b.GetIsConjugated() for a in (b.GetBeginAtomIdx(), b.GetEndAtomIdx())}
        charged_systems = {root(a.GetIdx()) for a in mol.GetAtoms() if a.GetFormalCharge() and a.GetIdx() in in_conjugated_bond}
        selected = {index for index in in_conjugated_bond if root(index) in charged_systems}
        if not selected:
            return
        cut = [bond.GetIdx() for bond in mol.GetBonds() if not bond.GetIsConjugated()
               and (bond.GetBeginAtomIdx() in selected or bond.GetEndAtomIdx() in selected)]
        pieces = Chem.FragmentOnBonds(mol, cut, addDummies=True) if cut else Chem.Mol(mol)
        atom_maps: list = []
        fragments = Chem.GetMolFrags(pieces, asMols=True, sanitizeFrags=False, fragsMolAtomMapping=atom_maps)
        for fragment, atom_indices in zip(fragments, atom_maps):
            if any(index in selected for index in atom_indices):
                fragment.UpdatePropertyCache(strict=False)
                yield fragment, atom_indices


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
    resonance = Resonance(mol)
    bond_attr = bond_features(mol, bonds, resonance)
    edge_index = torch.from_numpy(np.concatenate([bonds, bonds[:, ::-1]]).T.copy()).long().reshape(2, -1)
    return MoleculeGraph(
        x=atom_features(mol, resonance),
        edge_index=edge_index,
        edge_attr=torch.cat([bond_attr, bond_attr]),
        atomic_numbers=torch.tensor([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=torch.long),
        total_charge=torch.tensor([float(Chem.GetFormalCharge(mol))], dtype=torch.float64),
        **{key: torch.from_numpy(getattr(interactions, key)).long() for key in MoleculeGraph.INTERACTION_KEYS},
        num_nodes=mol.GetNumAtoms(),
    )
