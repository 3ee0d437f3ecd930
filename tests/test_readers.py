"""Data readers: SPICE HDF5 and Grappa npz read with their units converted once; FILE[:LABELS[:WEIGHT]] specs.

The SPICE and Grappa fixtures are written here, by the tests, in the formats' own units (bohr and
hartree; Å and kcal/mol), with numbers chosen so that a missed or doubled conversion shows.
"""

import logging

import h5py
import numpy as np
import pytest
import torch

from grappa_like import errors
from grappa_like.data import (BOHR_TO_NM, HARTREE_TO_KJ, DataSpec, available_labels, detect_format, parse_data_spec,
                              read_data, read_records, read_records_by_id)

WATER_MAPPED = "[H:2][O:1][H:3]"  # map order O, H, H differs from the SMILES order H, O, H
WATER_ANGSTROM = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])
RNG = np.random.default_rng(5)


def _spice_file(path, with_bad_molecules=True):
    """A SPICE-like file: water with 3 conformations (one with a NaN gradient) plus molecules to skip."""
    conformations_bohr = np.stack([WATER_ANGSTROM / 0.529177210903 + RNG.normal(0, 0.05, (3, 3)) for _ in range(3)])
    energies_hartree = np.array([-76.40, -76.39, -76.38])
    gradients = RNG.normal(0, 0.02, (3, 3, 3))
    gradients[2, 0, 0] = np.nan
    with h5py.File(path, "w") as handle:
        group = handle.create_group("water")
        group.create_dataset("smiles", data=np.array([WATER_MAPPED.encode()], dtype=object), dtype=h5py.string_dtype())
        group.create_dataset("subset", data=np.array([b"SPICE Water Clusters"], dtype=object), dtype=h5py.string_dtype())
        group.create_dataset("atomic_numbers", data=np.array([8, 1, 1], dtype=np.int16))
        group.create_dataset("conformations", data=conformations_bohr.astype(np.float32))
        group.create_dataset("dft_total_energy", data=energies_hartree)
        group.create_dataset("dft_total_gradient", data=gradients.astype(np.float32))
        group.create_dataset("formation_energy", data=energies_hartree + 1.0)
        if with_bad_molecules:
            sodium = handle.create_group("sodium")
            sodium.create_dataset("smiles", data=np.array([b"[Na+:1]"], dtype=object), dtype=h5py.string_dtype())
            sodium.create_dataset("atomic_numbers", data=np.array([11], dtype=np.int16))
            sodium.create_dataset("conformations", data=np.zeros((1, 1, 3), dtype=np.float32))
            sodium.create_dataset("dft_total_energy", data=np.array([-162.0]))
            sodium.create_dataset("dft_total_gradient", data=np.zeros((1, 1, 3), dtype=np.float32))
    return conformations_bohr.astype(np.float32), energies_hartree, gradients.astype(np.float32)


def test_spice_reader_converts_bohr_and_hartree(tmp_path, caplog):
    path = tmp_path / "spice.h5"
    conformations, energies, gradients = _spice_file(path)
    assert detect_format(str(path)) == "spice"
    assert available_labels(str(path)) == ["dft"]
    with caplog.at_level(logging.WARNING):
        records = list(read_records(str(path), ("dft",)))
    assert [r.mol_id for r in records] == ["water"]
    assert "skipped 1 molecules" in caplog.text and "UnsupportedElementError" in caplog.text
    record = records[0]
    assert record.label == "dft" and record.subset == "SPICE Water Clusters"
    assert list(record.molecule.atomic_numbers) == [8, 1, 1]
    # the conformation with a NaN gradient is dropped, the others converted
    assert record.positions.shape == (2, 3, 3)
    np.testing.assert_allclose(record.positions, conformations[:2].astype(np.float64) * 0.0529177210903, rtol=1e-12)
    np.testing.assert_allclose(record.energies, energies[:2] * 2625.4996394798254, rtol=1e-12)
    np.testing.assert_allclose(record.forces, -gradients[:2].astype(np.float64) * 2625.4996394798254 / 0.0529177210903,
                               rtol=1e-12)
    # the O-H distance comes out in nm
    assert 0.08 < np.linalg.norm(record.positions[0, 0] - record.positions[0, 1]) < 0.12
    assert BOHR_TO_NM == pytest.approx(0.0529177210903) and HARTREE_TO_KJ == pytest.approx(2625.4996, rel=1e-6)


def test_spice_needs_its_label(tmp_path):
    path = tmp_path / "spice.h5"
    _spice_file(path, with_bad_molecules=False)
    assert list(read_records(str(path), ("ani2x", "gfn2"))) == []
    with pytest.raises(errors.DataFileError, match="labels in this file: dft"):
        read_data([str(path)], ("ani2x", "gfn2"))
    pairs = read_data([f"{path}:dft:2.5"], ("ani2x", "gfn2"))
    assert [(record.mol_id, weight) for record, weight in pairs] == [("water", 2.5)]


def _grappa_arrays(energy_key="energy_qm", gradient_key="gradient_qm"):
    xyz = np.stack([WATER_ANGSTROM + RNG.normal(0, 0.02, (3, 3)) for _ in range(4)])
    return {
        "xyz": xyz,
        energy_key: np.array([10.0, 11.5, 9.0, 12.25]),
        gradient_key: RNG.normal(0, 5.0, (4, 3, 3)),
        "atomic_numbers": np.array([8, 1, 1]),
        "mapped_smiles": np.array(WATER_MAPPED),
        "mol_id": np.array("O"),
        "partial_charges": np.array([-0.8, 0.4, 0.4]),
    }


@pytest.mark.parametrize("keys", [("energy_qm", "gradient_qm"), ("energy_qm_total", "gradient_qm_total")])
def test_grappa_npz_reader_converts_angstrom_and_kcal(tmp_path, keys):
    arrays = _grappa_arrays(*keys)
    path = tmp_path / "3.npz"
    np.savez(path, **arrays)
    assert detect_format(str(path)) == "grappa-npz"
    [record] = read_records(str(path), ("qm",))
    assert record.mol_id == "O" and record.label == "qm"
    np.testing.assert_allclose(record.positions, arrays["xyz"] * 0.1, rtol=1e-12)
    np.testing.assert_allclose(record.energies, arrays[keys[0]] * 4.184, rtol=1e-12)
    np.testing.assert_allclose(record.forces, -arrays[keys[1]] * 41.84, rtol=1e-12)
    assert record.am1bcc_charges is None  # Grappa's partial charges are of unknown origin: not used as AM1-BCC


def test_grappa_npz_folder_skips_bad_files(tmp_path, caplog):
    folder = tmp_path / "grappa"
    folder.mkdir()
    np.savez(folder / "0.npz", **_grappa_arrays())
    broken = _grappa_arrays()
    broken["atomic_numbers"] = np.array([1, 8, 1])  # disagrees with the mapped SMILES
    np.savez(folder / "1.npz", **broken)
    (folder / "2.npz").write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING):
        records = list(read_records(str(folder), ("qm",)))
    assert len(records) == 1
    assert "skipped 2 molecules" in caplog.text
    with pytest.raises(errors.DataFileError, match="element order"):
        list(read_records(str(folder / "1.npz"), ("qm",)))


def test_unknown_files_are_refused(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(errors.DataFileError, match="neither an HDF5"):
        list(read_records(str(text)))
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle.create_group("x").create_dataset("y", data=[1])
    with pytest.raises(errors.DataFileError, match="not a known QM data file"):
        list(read_records(str(other)))
    with pytest.raises(errors.DataFileError, match="no such file"):
        list(read_records(str(tmp_path / "missing.h5")))


def _qm_v1_file(path, names_and_energies):
    """A grappa_like-qm-v1 file of water molecules, one conformation each, labelled 'dft'."""
    with h5py.File(path, "w") as handle:
        handle.attrs["layout"] = "grappa_like-qm-v1"
        for mol_id, energy in names_and_energies:
            group = handle.create_group(mol_id)
            group.attrs.update(smiles=WATER_MAPPED, name=mol_id, subset="test", total_charge=0)
            group["atomic_numbers"] = np.array([8, 1, 1], dtype=np.int8)
            group["conformations"] = WATER_ANGSTROM[None].astype(np.float32)
            group.create_dataset("energy/dft", data=[energy])


def test_records_by_id_first_file_wins_and_missing_ids_are_left_out(tmp_path):
    first, second = tmp_path / "first.h5", tmp_path / "second.h5"
    _qm_v1_file(first, [("w2", 1.0), ("w1", 2.0)])
    _qm_v1_file(second, [("w1", 3.0), ("w3", 4.0), ("w4", 5.0)])
    records = read_records_by_id([str(first), str(second)], ["w3", "w1", "w2", "absent"], ("dft",))
    assert [r.mol_id for r in records] == ["w1", "w2", "w3"]
    assert [r.energies[0] for r in records] == pytest.approx([2.0 * 4.184, 1.0 * 4.184, 4.0 * 4.184])


def test_parse_data_spec(tmp_path):
    assert parse_data_spec("train-v0.h5") == DataSpec("train-v0.h5")
    assert parse_data_spec("spice.h5:dft:2.0") == DataSpec("spice.h5", ("dft",), 2.0)
    assert parse_data_spec("a.h5:ani2x,gfn2") == DataSpec("a.h5", ("ani2x", "gfn2"), 1.0)
    assert parse_data_spec("a.h5::0.5") == DataSpec("a.h5", None, 0.5)
    assert str(parse_data_spec("spice.h5:dft:2.0")) == "spice.h5:dft:2"
    existing = tmp_path / "odd:name.h5"
    existing.write_text("")
    assert parse_data_spec(str(existing)) == DataSpec(str(existing))
    for bad in ("a.h5:dft:-1", "a.h5:dft:x", "a.h5:dft:1:2", ":dft", "a.h5:dft:0", "a.h5:dft:nan"):
        with pytest.raises(ValueError):
            parse_data_spec(bad)


def test_weight_multiplies_the_loss_terms(tmp_path, lj_table):
    from conftest import build_random_network

    from grappa_like.training import TrainingConfig, batch_loss, lj_tensors, prepare

    path = tmp_path / "spice.h5"
    _spice_file(path, with_bad_molecules=False)
    [record] = read_records(str(path), ("dft",))
    record.am1bcc_charges = np.array([-0.8, 0.4, 0.4])
    record.gaff2_types = ["oh", "ho", "ho"]  # types every LJ table here knows
    network = build_random_network(lj_table)
    config = TrainingConfig()
    tables = lj_tensors(lj_table)
    with torch.no_grad():
        total_1, parts_1 = batch_loss(network, [prepare(record, lj_table)], config, tables, create_graph=False)
        total_3, parts_3 = batch_loss(network, [prepare(record, lj_table, 3.0)], config, tables, create_graph=False)
    for key in ("energy", "force", "charge", "lj"):
        assert parts_3[key] == pytest.approx(3.0 * parts_1[key], rel=1e-6)
    assert parts_3["torsion_prior"] == parts_1["torsion_prior"]
    prior = config.torsion_prior_weight * parts_1["torsion_prior"]
    assert float(total_3) - prior == pytest.approx(3.0 * (float(total_1) - prior), rel=1e-6)
    assert prepare(record, lj_table).weight == 1.0
