"""Interactions: every term once, checked against an independent brute-force enumeration."""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pytest
from rdkit import Chem

from grappa_like import interactions

MOLECULES = {
    "ethane": "CC",
    "ethanol": "CCO",
    "cyclopropane": "C1CC1",
    "cyclobutane": "C1CCC1",
    "benzene": "c1ccccc1",
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "bicyclobutane": "C1C2C1C2",
    "methylammonium": "C[NH3+]",
    "acetate": "CC(=O)[O-]",
    "glycine_zwitterion": "[NH3+]CC(=O)[O-]",
    "water": "O",
    "chloride": "[Cl-]",
    "hcn": "C#N",
    "propyne": "CC#C",
    "acetonitrile": "CC#N",
    "but2yne_ol": "CC#CCO",
    "allene": "C=C=C",
    "diacetylene": "CC#CC#CC",
}


def mol_of(smiles: str) -> Chem.Mol:
    return Chem.AddHs(Chem.MolFromSmiles(smiles))


def brute_force(mol: Chem.Mol) -> dict:
    """All terms by enumerating atom tuples directly (no code shared with the package)."""
    n = mol.GetNumAtoms()
    bonded = {(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()}
    bonded |= {(j, i) for i, j in bonded}

    def is_path(path):
        return len(set(path)) == len(path) and all((a, b) in bonded for a, b in zip(path, path[1:]))

    def unique_up_to_reversal(paths):
        return {min(p, p[::-1]) for p in paths}

    atoms = range(n)
    bonds = unique_up_to_reversal(p for p in permutations(atoms, 2) if is_path(p))
    angles = unique_up_to_reversal(p for p in permutations(atoms, 3) if is_path(p))
    # no torsion about a bond that touches a linear atom (sp with two neighbours): undefined dihedral
    linear = {a.GetIdx() for a in mol.GetAtoms()
              if a.GetDegree() == 2 and a.GetHybridization() == Chem.HybridizationType.SP}
    propers = unique_up_to_reversal(p for p in permutations(atoms, 4)
                                    if is_path(p) and p[1] not in linear and p[2] not in linear)
    distance = Chem.GetDistanceMatrix(mol)
    exclusions = {(i, j) for i in atoms for j in atoms if i < j and distance[i, j] in (1, 2)}
    pairs14 = {(i, j) for i in atoms for j in atoms if i < j and distance[i, j] == 3}
    three_neighbour_atoms = [a.GetIdx() for a in mol.GetAtoms() if a.GetDegree() == 3]
    return {
        "bonds": bonds,
        "angles": angles,
        "propers": propers,
        "exclusions": exclusions,
        "pairs14": pairs14,
        "three_neighbour_atoms": three_neighbour_atoms,
    }


def rows(array) -> list[tuple]:
    return [tuple(int(x) for x in row) for row in array]


@pytest.mark.parametrize("name", list(MOLECULES))
def test_terms_match_brute_force(name):
    mol = mol_of(MOLECULES[name])
    found = interactions.from_rdkit(mol)
    expected = brute_force(mol)
    assert found.n_atoms == mol.GetNumAtoms()
    for key in ("bonds", "angles", "propers", "exclusions", "pairs14"):
        array = getattr(found, key)
        assert array.dtype == np.int64
        as_rows = rows(array)
        assert len(as_rows) == len(set(as_rows)), f"{key}: duplicate rows"
        canonical = {min(r, r[::-1]) for r in as_rows}
        assert len(canonical) == len(as_rows), f"{key}: a term appears in both orientations"
        assert canonical == expected[key], key
    # impropers: three per atom with exactly three neighbours, centre at column 2
    assert len(found.impropers) == 3 * len(expected["three_neighbour_atoms"])
    assert sorted(set(found.impropers[:, 2].tolist())) == sorted(expected["three_neighbour_atoms"])


@pytest.mark.parametrize("name", list(MOLECULES))
def test_canonical_orientation(name):
    found = interactions.from_rdkit(mol_of(MOLECULES[name]))
    assert all(i < j for i, j in rows(found.bonds))
    assert all(i < k for i, _, k in rows(found.angles))
    assert all(i < l for i, _, _, l in rows(found.propers))
    assert all(i < j for i, j in rows(found.exclusions))
    assert all(i < j for i, j in rows(found.pairs14))
    assert not set(rows(found.pairs14)) & set(rows(found.exclusions))


def test_known_counts():
    # hand-counted numbers for a few textbook cases
    ethane = interactions.from_rdkit(mol_of("CC"))
    assert (len(ethane.bonds), len(ethane.angles), len(ethane.propers)) == (7, 12, 9)
    assert len(ethane.pairs14) == 9 and len(ethane.exclusions) == 7 + 12
    assert len(ethane.impropers) == 0

    benzene = interactions.from_rdkit(mol_of("c1ccccc1"))
    assert (len(benzene.bonds), len(benzene.angles), len(benzene.propers)) == (12, 18, 24)
    assert len(benzene.impropers) == 18  # 6 carbons with three neighbours, 3 each
    # 1-4 pairs: C-C para (3), C-H meta... counted by hand: Cpara 3, C-H' 12, H-H' meta 6
    assert len(benzene.pairs14) == 3 + 12 + 6


def test_cyclopropane_edge_cases():
    mol = mol_of("C1CC1")
    found = interactions.from_rdkit(mol)
    # Every C-C-C angle and every H-C-C-H' torsion exist; no C-C-C-C torsion (would repeat an atom).
    assert len(found.bonds) == 9
    assert {(0, 1, 2), (0, 2, 1), (1, 0, 2)} <= set(rows(found.angles))
    assert not any(set(p) <= {0, 1, 2} for p in rows(found.propers))
    # Every pair involving a carbon is 1-2 or 1-3 (C-C-H torsion ends are also 1-3 through the ring):
    # the only 1-4 pairs are H-H' on different carbons, 3 carbon pairs x 2 x 2 of them.
    pairs = rows(found.pairs14)
    assert all(mol.GetAtomWithIdx(i).GetSymbol() == "H" and mol.GetAtomWithIdx(j).GetSymbol() == "H"
               for i, j in pairs)
    assert len(pairs) == 12
    # H-C-C-C propers exist (12 = 6 H x 2 directions around the ring) though their ends are 1-3.
    assert sum(1 for p in rows(found.propers) if sum(x < 3 for x in p) == 3) == 12
    n = mol.GetNumAtoms()
    assert len(found.exclusions) == n * (n - 1) // 2 - 12


def test_cyclobutane_edge_cases():
    mol = mol_of("C1CCC1")
    found = interactions.from_rdkit(mol)
    # The ring torsions C0-C1-C2-C3 exist although C0-C3 is bonded, and 1-3 ring pairs
    # (reached by two paths) are listed once; C0-C3 is never a 1-4 pair.
    assert (0, 1, 2, 3) in set(rows(found.propers))
    exclusions = set(rows(found.exclusions))
    assert (0, 2) in exclusions and (1, 3) in exclusions
    assert (0, 3) not in set(rows(found.pairs14))
    # H on C0 and H on C2 are 1-4 (via C1 or C3): listed once
    pairs = rows(found.pairs14)
    assert len(pairs) == len(set(pairs))


def test_linear_atoms_get_no_torsions_but_keep_their_14_pairs():
    mol = mol_of("CC#CC")  # but-2-yne: every torsion runs across the linear C#C
    found = interactions.from_rdkit(mol)
    assert len(found.propers) == 0
    # methyl H ... far sp carbon is at graph distance 3: a 1-4 pair although no torsion exists
    distance = Chem.GetDistanceMatrix(mol)
    expected = {(i, j) for i in range(mol.GetNumAtoms()) for j in range(i + 1, mol.GetNumAtoms())
                if distance[i, j] == 3}
    assert set(rows(found.pairs14)) == expected and expected
    # from_bonds without linear atoms keeps those torsions
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    assert len(interactions.from_bonds(mol.GetNumAtoms(), bonds).propers) > 0


def test_from_bonds_ignores_duplicates_and_self_bonds():
    clean = interactions.from_bonds(4, [(0, 1), (1, 2), (2, 3)])
    messy = interactions.from_bonds(4, [(1, 0), (0, 1), (2, 1), (2, 2), (3, 2)])
    for key in ("bonds", "angles", "propers", "impropers", "pairs14", "exclusions"):
        np.testing.assert_array_equal(getattr(clean, key), getattr(messy, key))
    assert rows(clean.propers) == [(0, 1, 2, 3)]
    assert rows(clean.pairs14) == [(0, 3)]


def test_impropers_one_per_axis_neighbour():
    # formaldehyde-like centre 0 with neighbours 1, 2, 3
    found = interactions.from_bonds(4, [(0, 1), (0, 2), (0, 3)])
    improper_rows = set(rows(found.impropers))
    assert improper_rows == {(2, 1, 0, 3), (1, 2, 0, 3), (1, 3, 0, 2)}
    for a, b, c, d in improper_rows:
        assert c == 0 and a < d


def test_interactions_follow_atom_relabelling():
    mol = mol_of("CC(=O)Oc1ccccc1C(=O)O")
    order = np.random.default_rng(1).permutation(mol.GetNumAtoms())
    relabelled = Chem.RenumberAtoms(mol, order.tolist())
    old_of_new = order  # new atom k was old atom order[k]

    def canonical_sets(found, mapping):
        out = {}
        for key in ("bonds", "angles", "propers", "pairs14", "exclusions"):
            out[key] = {min(t, t[::-1]) for t in (tuple(int(mapping[x]) for x in r) for r in rows(getattr(found, key)))}
        out["impropers"] = {
            (frozenset((mapping[a], mapping[d])), mapping[b], mapping[c]) for a, b, c, d in rows(found.impropers)
        }
        return out

    identity = np.arange(mol.GetNumAtoms())
    assert canonical_sets(interactions.from_rdkit(relabelled), old_of_new) == canonical_sets(
        interactions.from_rdkit(mol), identity)
