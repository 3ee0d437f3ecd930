"""Graph features per atom and per bond, computed from the molecular graph only (no coordinates)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rdkit import Chem

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


_ELEMENT_COLUMN = {z: column for column, z in enumerate(SUPPORTED_ATOMIC_NUMBERS)}
_HYBRIDIZATION_COLUMN = {h: column for column, h in enumerate(HYBRIDIZATIONS)}
_RING_SIZE_COLUMN = {size: column for column, size in enumerate(RING_SIZES)}
_BOND_TYPE_COLUMN = {t: column for column, t in enumerate(BOND_TYPES)}


def _one_hot_rows(columns: np.ndarray, width: int) -> np.ndarray:
    """(n, width) one-hot rows; a column of -1 gives a row of zeros."""
    rows = np.zeros((len(columns), width), dtype=np.float32)
    valid = columns >= 0
    rows[np.flatnonzero(valid), columns[valid]] = 1.0
    return rows


def atom_features(mol: Chem.Mol, resonance: "Resonance | None" = None) -> np.ndarray:
    """(n_atoms, N_ATOM_FEATURES) float32 array: element, degree, formal charge (averaged over resonance
    structures), hybridisation, number of bonded H, aromaticity, ring membership and ring sizes."""
    resonance = resonance or Resonance(mol)
    n_atoms = mol.GetNumAtoms()
    properties = np.array([
        (_ELEMENT_COLUMN.get(atom.GetAtomicNum(), -1), min(atom.GetDegree(), MAX_DEGREE),
         # H atoms made by AddHs carry UNSPECIFIED hybridisation, explicit ones S: same atom, one value
         0 if atom.GetAtomicNum() == 1 else _HYBRIDIZATION_COLUMN.get(atom.GetHybridization(), -1),
         min(atom.GetTotalNumHs(includeNeighbors=True), MAX_HYDROGENS), atom.GetIsAromatic())
        for atom in mol.GetAtoms()], dtype=np.int64).reshape(-1, 5)
    rings = np.zeros((n_atoms, 1 + len(RING_SIZES)), dtype=np.float32)  # in any ring, in a ring of each size
    for ring in mol.GetRingInfo().AtomRings():
        rings[list(ring), 0] = 1.0
        if len(ring) in _RING_SIZE_COLUMN:
            rings[list(ring), 1 + _RING_SIZE_COLUMN[len(ring)]] = 1.0
    features = np.concatenate([
        _one_hot_rows(properties[:, 0], len(SUPPORTED_ATOMIC_NUMBERS)),
        _one_hot_rows(properties[:, 1], MAX_DEGREE + 1),
        resonance.formal_charge_one_hot.astype(np.float32),
        _one_hot_rows(properties[:, 2], len(HYBRIDIZATIONS)),
        _one_hot_rows(properties[:, 3], MAX_HYDROGENS + 1),
        properties[:, 4:5].astype(np.float32),
        rings,
    ], axis=1).reshape(-1, N_ATOM_FEATURES)
    for group in resonance.equivalent_terminal_groups:
        features[group] = features[group].mean(0)
    return features


def bond_features(mol: Chem.Mol, bonds: np.ndarray, resonance: "Resonance | None" = None) -> np.ndarray:
    """(n_bonds, N_BOND_FEATURES) float32 array for the bonds (i, j) given: bond order (averaged over
    resonance structures), conjugation, ring."""
    resonance = resonance or Resonance(mol)
    bond_objects = [mol.GetBondBetweenAtoms(i, j) for i, j in np.asarray(bonds).tolist()]
    flags = np.array([(bond.GetIsConjugated(), bond.IsInRing(), bond.GetBondType() not in _BOND_TYPE_COLUMN)
                      for bond in bond_objects], dtype=np.float32).reshape(-1, 3)
    order = np.array([bond.GetIdx() for bond in bond_objects], dtype=np.int64)
    features = np.concatenate([resonance.bond_type_one_hot[order].astype(np.float32), flags], axis=1)
    features = features.reshape(-1, N_BOND_FEATURES)
    if resonance.equivalent_terminal_groups:
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
        atoms = [(a.GetFormalCharge(), a.GetAtomicNum(), a.GetDegree()) for a in mol.GetAtoms()]
        charges = np.array([charge for charge, _, _ in atoms], dtype=np.int64)
        self.formal_charge_one_hot = _one_hot_rows(np.clip(charges, -2, 2) + 2, len(FORMAL_CHARGES)).astype(np.float64)
        self.bond_type_one_hot = _one_hot_rows(np.array(
            [_BOND_TYPE_COLUMN.get(b.GetBondType(), -1) for b in mol.GetBonds()], dtype=np.int64),
            len(BOND_TYPES)).astype(np.float64)
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
        for index, (_, atomic_number, degree) in enumerate(atoms):
            if atomic_number > 1 and degree == 1:
                centre = mol.GetAtomWithIdx(index).GetNeighbors()[0].GetIdx()
                groups.setdefault((centre, atomic_number), []).append(index)
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


INTERACTION_KEYS = ("bonds", "angles", "propers", "impropers")


@dataclass
class GraphArrays:
    """Graph of one molecule (or of several, concatenated) as numpy arrays; no torch.

    ``edge_index`` (2, n_edges) holds both directions of every bond (source row 0, target row 1);
    the interaction arrays index atoms of the same graph; ``batch`` maps atoms to molecules.
    """

    x: np.ndarray                # (n_atoms, N_ATOM_FEATURES) float32
    edge_index: np.ndarray       # (2, n_edges) int64
    edge_attr: np.ndarray        # (n_edges, N_BOND_FEATURES) float32
    atomic_numbers: np.ndarray   # (n_atoms,) int64
    total_charge: np.ndarray     # (n_molecules,) float64, e
    bonds: np.ndarray
    angles: np.ndarray
    propers: np.ndarray
    impropers: np.ndarray
    batch: np.ndarray            # (n_atoms,) int64

    @property
    def num_nodes(self) -> int:
        return len(self.x)


def molecule_graph(mol: Chem.Mol, interactions) -> GraphArrays:
    """Graph of an RDKit Mol: atom features, bond features on both edge directions, interactions."""
    bonds = interactions.bonds
    resonance = Resonance(mol)
    bond_attr = bond_features(mol, bonds, resonance)
    return GraphArrays(
        x=atom_features(mol, resonance),
        edge_index=np.concatenate([bonds, bonds[:, ::-1]]).T.astype(np.int64).reshape(2, -1),
        edge_attr=np.concatenate([bond_attr, bond_attr]),
        atomic_numbers=np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64),
        total_charge=np.array([float(Chem.GetFormalCharge(mol))]),
        **{key: np.asarray(getattr(interactions, key), dtype=np.int64) for key in INTERACTION_KEYS},
        batch=np.zeros(mol.GetNumAtoms(), dtype=np.int64),
    )


def concatenate_graphs(graphs: list[GraphArrays]) -> GraphArrays:
    """One graph holding several molecules: atom indices offset, ``batch`` numbering the molecules."""
    offsets = np.cumsum([0] + [graph.num_nodes for graph in graphs[:-1]])
    return GraphArrays(
        x=np.concatenate([graph.x for graph in graphs]),
        edge_index=np.concatenate([graph.edge_index + offset for graph, offset in zip(graphs, offsets)], axis=1),
        edge_attr=np.concatenate([graph.edge_attr for graph in graphs]),
        atomic_numbers=np.concatenate([graph.atomic_numbers for graph in graphs]),
        total_charge=np.concatenate([graph.total_charge for graph in graphs]),
        **{key: np.concatenate([getattr(graph, key) + offset for graph, offset in zip(graphs, offsets)])
           for key in INTERACTION_KEYS},
        batch=np.concatenate([np.full(graph.num_nodes, index, dtype=np.int64) for index, graph in enumerate(graphs)]),
    )
