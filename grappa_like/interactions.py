"""Interactions of a molecular graph: bonds, angles, propers, impropers, 1-4 pairs, exclusions.

Every interaction appears exactly once, in a canonical orientation:
bonds (i, j) with i < j; angles (i, j, k) with centre j and i < k; propers (i, j, k, l) with
i < l; impropers (a, b, c, d) with the centre c at position 3 and b the neighbour on the axis
(three per atom with exactly three neighbours, one for each choice of b, a < d); 1-4 pairs and
exclusions (1-2 and 1-3 pairs) as (i, j) with i < j. A pair that is 1-2 or 1-3 is never a 1-4 pair.

Propers whose central bond touches a linear atom (sp, two neighbours: alkynes, nitriles, allenes)
get no torsion term: their dihedral is undefined when three atoms are collinear (GAFF sets
X-c1-c1-X to zero for the same reason). Their 1-4 pairs are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np


@dataclass(frozen=True)
class Interactions:
    """Index arrays (int64) of every MM term of one molecule."""

    n_atoms: int
    bonds: np.ndarray       # (n_bonds, 2)
    angles: np.ndarray      # (n_angles, 3)
    propers: np.ndarray     # (n_propers, 4)
    impropers: np.ndarray   # (n_impropers, 4), centre at column 2
    pairs14: np.ndarray     # (n_pairs14, 2)
    exclusions: np.ndarray  # (n_exclusions, 2): 1-2 and 1-3 pairs


def _array(rows, width: int) -> np.ndarray:
    return np.array(sorted(rows), dtype=np.int64).reshape(-1, width)


def from_bonds(n_atoms: int, bonds, linear_atoms=()) -> Interactions:
    """Build all interactions from the number of atoms, bonded pairs and the linear (sp) atoms."""
    neighbours: list[list[int]] = [[] for _ in range(n_atoms)]
    bond_set = set()
    for i, j in bonds:
        i, j = int(i), int(j)
        if i == j or (min(i, j), max(i, j)) in bond_set:
            continue
        bond_set.add((min(i, j), max(i, j)))
        neighbours[i].append(j)
        neighbours[j].append(i)
    for nbrs in neighbours:
        nbrs.sort()

    angles = set()
    for j in range(n_atoms):
        for i, k in combinations(neighbours[j], 2):
            angles.add((i, j, k))

    propers = set()
    for j, k in bond_set:
        for i in neighbours[j]:
            if i == k:
                continue
            for l in neighbours[k]:
                if l == j or l == i:
                    continue
                propers.add((i, j, k, l) if i < l else (l, k, j, i))

    impropers = set()
    for c in range(n_atoms):
        if len(neighbours[c]) != 3:
            continue
        for b in neighbours[c]:
            a, d = (n for n in neighbours[c] if n != b)
            impropers.add((a, b, c, d))

    exclusions = set(bond_set) | {(i, k) for i, _, k in angles}
    pairs14 = {(min(i, l), max(i, l)) for i, _, _, l in propers} - exclusions
    linear = set(int(a) for a in linear_atoms)
    propers = {p for p in propers if p[1] not in linear and p[2] not in linear}

    return Interactions(
        n_atoms=n_atoms,
        bonds=_array(bond_set, 2),
        angles=_array(angles, 3),
        propers=_array(propers, 4),
        impropers=_array(impropers, 4),
        pairs14=_array(pairs14, 2),
        exclusions=_array(exclusions, 2),
    )


def from_rdkit(mol) -> Interactions:
    """Build all interactions of an RDKit Mol (explicit hydrogens)."""
    from rdkit import Chem

    linear = [a.GetIdx() for a in mol.GetAtoms()
              if a.GetDegree() == 2 and a.GetHybridization() == Chem.HybridizationType.SP]
    return from_bonds(mol.GetNumAtoms(), [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()], linear)
