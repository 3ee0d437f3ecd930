"""Model files: round trip, loading without torch or pickle, and a clear ModelFileError for every bad file."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import grappa_like
from grappa_like import errors, model_file


def test_round_trip_identical_state_dict_and_metadata(model_file_path, random_payload):
    payload = model_file.load(model_file_path)
    assert payload["format_version"] == model_file.FORMAT_VERSION
    assert payload["state_dict"].keys() == random_payload["state_dict"].keys()
    for key, tensor in random_payload["state_dict"].items():
        expected = tensor.numpy()
        assert payload["state_dict"][key].dtype == expected.dtype
        np.testing.assert_array_equal(payload["state_dict"][key], expected, err_msg=key)
    for key in ("config", "lj_types", "validation_molecules", "training_data", "metrics"):
        assert payload[key] == random_payload[key], key
    assert isinstance(payload["sha256"], str) and len(payload["sha256"]) == 64


def test_readable_by_numpy_without_pickle(model_file_path):
    with np.load(model_file_path, allow_pickle=False) as archive:
        names = set(archive.files)
        assert all(archive[name].dtype != object for name in names)
    assert "metadata" in names and any(name.startswith("state_dict/") for name in names)


def test_loaded_model_predicts_like_the_in_memory_model(model_file_path, random_model):
    loaded = grappa_like.load_model(model_file_path)
    assert loaded.path == model_file_path
    assert loaded.checksum == model_file.read_payload(model_file_path)["sha256"]
    assert loaded.metadata["validation_molecules"] == ["validation-molecule-a", "validation-molecule-b"]
    mol = grappa_like.molecule.from_smiles("CC(=O)Oc1ccccc1C(=O)O")
    (a,), (b,) = loaded.predict([mol]), random_model.predict([mol])
    np.testing.assert_array_equal(a.bond_k, b.bond_k)
    np.testing.assert_array_equal(a.proper_k, b.proper_k)
    np.testing.assert_array_equal(a.charges, b.charges)
    assert a.lj_types == b.lj_types


def test_model_file_is_small(model_file_path):
    assert os.path.getsize(model_file_path) < 5 * 1024 * 1024


def test_save_leaves_no_temporary_files(random_payload, tmp_path):
    path = tmp_path / "sub" / "model.npz"
    model_file.save(str(path), random_payload)
    assert os.listdir(path.parent) == ["model.npz"]
    # and it does not modify the caller's payload
    assert "sha256" not in random_payload and "format_version" not in random_payload


def test_checksum_depends_on_arrays_and_metadata(random_payload):
    base = dict(random_payload, format_version=model_file.FORMAT_VERSION)
    reference = model_file.checksum(base)
    assert model_file.checksum(dict(base)) == reference
    key = next(iter(base["state_dict"]))
    tweaked = dict(base, state_dict=dict(base["state_dict"]))
    tweaked["state_dict"][key] = base["state_dict"][key].clone() + 1e-6
    assert model_file.checksum(tweaked) != reference
    assert model_file.checksum(dict(base, metrics={"other": 1})) != reference


def _largest_float_key(payload) -> str:
    return max((k for k, v in payload["state_dict"].items() if np.issubdtype(v.dtype, np.floating)),
               key=lambda k: payload["state_dict"][k].size)


def test_corrupt_array_in_payload_is_detected(model_file_path, tmp_path):
    payload = model_file.read_payload(model_file_path)
    array = payload["state_dict"][_largest_float_key(payload)].copy()
    array.view(np.uint8).reshape(-1)[3] ^= 0x10  # one byte; the stored checksum is kept
    payload["state_dict"][_largest_float_key(payload)] = array
    bad = tmp_path / "corrupt.npz"
    model_file.write_payload(str(bad), payload)
    with pytest.raises(errors.ModelFileError, match="checksum") as info:
        model_file.load(str(bad))
    assert str(bad) in str(info.value)


def test_flipped_byte_in_file_array_data_is_detected(model_file_path, tmp_path):
    payload = model_file.read_payload(model_file_path)
    array = payload["state_dict"][_largest_float_key(payload)]
    data = open(model_file_path, "rb").read()
    position = data.find(array.tobytes()[:256])
    assert position > 0, "array bytes not found stored uncompressed in the file"
    corrupted = bytearray(data)
    corrupted[position + 101] ^= 0x01
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(corrupted))
    with pytest.raises(errors.ModelFileError) as info:
        model_file.load(str(bad))
    assert str(bad) in str(info.value)


def test_tampered_metadata_is_detected(model_file_path, tmp_path):
    payload = model_file.read_payload(model_file_path)
    payload["lj_types"]["sigma_nm"][0] *= 1.01
    bad = tmp_path / "tampered.npz"
    model_file.write_payload(str(bad), payload)
    with pytest.raises(errors.ModelFileError, match="checksum"):
        model_file.load(str(bad))


@pytest.mark.parametrize("recompute_checksum", [False, True])
def test_wrong_format_version(model_file_path, tmp_path, recompute_checksum):
    payload = model_file.read_payload(model_file_path)
    payload["format_version"] = model_file.FORMAT_VERSION + 98
    if recompute_checksum:
        payload["sha256"] = model_file.checksum(payload)
    bad = tmp_path / "future.npz"
    model_file.write_payload(str(bad), payload)
    with pytest.raises(errors.ModelFileError, match="version") as info:
        model_file.load(str(bad))
    assert str(bad) in str(info.value)


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(errors.ModelFileError) as info:
        model_file.load(str(missing))
    assert str(missing) in str(info.value)
    with pytest.raises(errors.ModelFileError):
        grappa_like.load_model(str(missing))


def test_random_bytes_file(tmp_path):
    bad = tmp_path / "noise.npz"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(errors.ModelFileError) as info:
        model_file.load(str(bad))
    assert str(bad) in str(info.value)


def test_npz_that_is_not_a_model(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(errors.ModelFileError, match="other.npz"):
        model_file.load(str(other))


def test_file_needing_unpickling_is_refused(tmp_path):
    bad = tmp_path / "pickle.npz"
    np.savez(bad, metadata=np.array([{"format_version": 3}], dtype=object))
    with pytest.raises(errors.ModelFileError, match="pickle.npz"):
        model_file.load(str(bad))


def test_legacy_torch_file_converts_and_predicts_the_same(random_payload, random_model, tmp_path):
    torch = pytest.importorskip("torch")
    import hashlib
    import json

    legacy = dict(random_payload, format_version=2)
    digest = hashlib.sha256()  # format 2's checksum, written independently of the loader
    digest.update(json.dumps({k: legacy.get(k) for k in (
        "format_version", "config", "lj_types", "validation_molecules", "training_data", "metrics")},
        sort_keys=True).encode())
    for name in sorted(legacy["state_dict"]):
        tensor = legacy["state_dict"][name]
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    legacy["sha256"] = digest.hexdigest()
    old = tmp_path / "old.pt"
    torch.save(legacy, str(old))
    converted = tmp_path / "new.npz"
    assert model_file.main([str(old), str(converted)]) == 0
    mol = grappa_like.molecule.from_smiles("c1ccccc1O")
    for path in (old, converted):
        (a,), (b,) = grappa_like.load_model(str(path)).predict([mol]), random_model.predict([mol])
        np.testing.assert_array_equal(a.proper_k, b.proper_k)
    torch.save(dict(legacy, sha256="0" * 64), str(tmp_path / "bad.pt"))
    with pytest.raises(errors.ModelFileError, match="checksum"):
        model_file.load(str(tmp_path / "bad.pt"))


def test_legacy_torch_file_without_torch_says_what_to_install(random_payload, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    old = tmp_path / "old.pt"
    torch.save(dict(random_payload, format_version=2, sha256=""), str(old))
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(errors.ModelFileError, match=r"grappa_like\[train\]") as info:
        model_file.load(str(old))
    assert str(old) in str(info.value)


def test_model_file_error_is_a_grappa_like_error():
    assert issubclass(errors.ModelFileError, errors.GrappaLikeError)
