"""The MD check's geometry checks (grappa_like.md_check) on hand-made geometries, and one short run."""

from __future__ import annotations

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

from grappa_like import md_check


def _embedded(smiles: str) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=3) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return mol


def test_ring_planarity_check():
    mol = _embedded("Cc1ccccc1")
    positions = mol.GetConformer().GetPositions()
    rings = md_check.aromatic_rings(mol)
    assert len(rings) == 1
    assert md_check.ring_out_of_plane(positions, rings) < 0.02
    puckered = positions.copy()
    puckered[rings[0][0]] += 1.0 * np.linalg.svd(positions[rings[0]] - positions[rings[0]].mean(0))[2][-1]
    assert md_check.ring_out_of_plane(puckered, rings) > md_check.THRESHOLDS["ring_out_of_plane_angstrom"]
    assert md_check.ring_out_of_plane(positions, []) == 0.0


def test_sp2_planarity_check_sees_a_pyramidal_carbonyl_carbon():
    mol = _embedded("CC(=O)C")  # acetone: one sp2 carbon with three neighbours
    positions = mol.GetConformer().GetPositions()
    centres = md_check.sp2_centres(mol)
    assert [centre for centre, _ in centres] == [1]
    assert md_check.sp2_out_of_plane(positions, centres)[0] < 0.02
    neighbours = centres[0][1]
    normal = np.cross(positions[neighbours[1]] - positions[neighbours[0]],
                      positions[neighbours[2]] - positions[neighbours[0]])
    pushed = positions.copy()
    pushed[1] += 0.5 * normal / np.linalg.norm(normal)
    assert abs(md_check.sp2_out_of_plane(pushed, centres)[0] - 0.5) < 1e-3


def test_chirality_checks_see_a_mirror_image():
    mol = _embedded("C[C@H](N)C(=O)O")  # L-alanine (S)
    positions = mol.GetConformer().GetPositions()
    centres = md_check.stereocentres(mol)
    assert [index for index, _ in centres] == [1]
    mirrored = positions * np.array([-1.0, 1.0, 1.0])
    assert np.sign(md_check.signed_volumes(mirrored, centres)) == -np.sign(md_check.signed_volumes(positions, centres))
    assert md_check.cip_labels(mol, positions) == {1: "S"}
    assert md_check.cip_labels(mol, mirrored) == {1: "R"}


def test_unassigned_stereocentres_are_checked_too():
    mol = _embedded("CC(N)C(=O)O")  # no stereo in the SMILES: the centre is still watched
    assert [index for index, _ in md_check.stereocentres(mol)] == [1]


def test_short_run_reports_every_metric(random_model):
    import grappa_like

    (result,) = grappa_like.parameterize(["CC(=O)Nc1ccc(O)cc1"], model=random_model, progress=False)
    record = md_check.run_md_check(
        result.to_openmm(), result.molecule.rdkit_mol, result.parameters.interactions.bonds,
        result.parameters.bond_r0 * 10.0, result.molecule.conformer_positions(), time_ps=0.3)
    assert record["n_aromatic_rings"] == 1 and record["n_sp2_centres"] == 8  # 6 ring C, carbonyl C, amide N
    assert record["status"] in ("ran", "blow-up")
    if record["status"] == "ran":
        assert record["simulated_ps"] == 0.3 and record["mean_temperature_k"] > 0
    assert set(record["sp2_outliers"]) <= {centre for centre, _ in md_check.sp2_centres(result.molecule.rdkit_mol)}
