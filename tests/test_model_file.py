"""Model files: round trip, weights_only loading, and a clear ModelFileError for every bad file."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import grappa_like
from grappa_like import errors, model_file


def load_raw(path) -> dict:
    return torch.load(str(path), map_location="cpu", weights_only=True)


def test_round_trip_identical_state_dict_and_metadata(model_file_path, random_payload):
    payload = model_file.load(model_file_path)
    assert payload["format_version"] == model_file.FORMAT_VERSION
    assert payload["state_dict"].keys() == random_payload["state_dict"].keys()
    for key, tensor in random_payload["state_dict"].items():
        assert payload["state_dict"][key].dtype == tensor.dtype
        assert torch.equal(payload["state_dict"][key], tensor), key
    for key in ("config", "lj_types", "validation_molecules", "training_data", "metrics"):
        assert payload[key] == random_payload[key], key
    assert isinstance(payload["sha256"], str) and len(payload["sha256"]) == 64


def test_loadable_with_weights_only_as_plain_dict(model_file_path):
    payload = load_raw(model_file_path)
    assert type(payload) is dict
    for key in ("format_version", "config", "state_dict", "lj_types", "validation_molecules",
                "training_data", "metrics", "sha256"):
        assert key in payload


def test_loaded_model_predicts_like_the_in_memory_model(model_file_path, random_model):
    loaded = grappa_like.load_model(model_file_path)
    assert loaded.path == model_file_path
    assert loaded.checksum == load_raw(model_file_path)["sha256"]
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
    path = tmp_path / "sub" / "model.pt"
    model_file.save(str(path), random_payload)
    assert os.listdir(path.parent) == ["model.pt"]
    # and it does not modify the caller's payload
    assert "sha256" not in random_payload and "format_version" not in random_payload


def test_checksum_depends_on_tensors_and_metadata(random_payload):
    base = dict(random_payload, format_version=model_file.FORMAT_VERSION)
    reference = model_file.checksum(base)
    assert model_file.checksum(dict(base)) == reference
    key = next(iter(base["state_dict"]))
    tweaked_tensor = dict(base, state_dict=dict(base["state_dict"]))
    tweaked_tensor["state_dict"][key] = base["state_dict"][key].clone() + 1e-6
    assert model_file.checksum(tweaked_tensor) != reference
    assert model_file.checksum(dict(base, metrics={"other": 1})) != reference


def _tensor_key(payload) -> str:
    """A floating-point weight tensor with many elements."""
    return max((k for k, v in payload["state_dict"].items() if v.is_floating_point()),
               key=lambda k: payload["state_dict"][k].numel())


def test_corrupt_tensor_in_payload_is_detected(model_file_path, tmp_path):
    payload = load_raw(model_file_path)
    tensor = payload["state_dict"][_tensor_key(payload)]
    tensor.view(torch.uint8).view(-1)[3] ^= 0x10  # one byte, in place, checksum left as it was
    bad = tmp_path / "corrupt.pt"
    torch.save(payload, str(bad))
    with pytest.raises(errors.ModelFileError, match="checksum") as info:
        model_file.load(str(bad))
    assert str(bad) in str(info.value)


def test_flipped_byte_in_file_tensor_data_is_detected(model_file_path, tmp_path):
    payload = load_raw(model_file_path)
    tensor = payload["state_dict"][_tensor_key(payload)]
    data = open(model_file_path, "rb").read()
    position = data.find(tensor.contiguous().numpy().tobytes()[:256])
    assert position > 0, "tensor bytes not found stored uncompressed in the file"
    corrupted = bytearray(data)
    corrupted[position + 101] ^= 0x01
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(corrupted))
    with pytest.raises(errors.ModelFileError) as info:
        model_file.load(str(bad))
    assert str(bad) in str(info.value)


def test_tampered_metadata_is_detected(model_file_path, tmp_path):
    payload = load_raw(model_file_path)
    payload["lj_types"]["sigma_nm"][0] *= 1.01
    bad = tmp_path / "tampered.pt"
    torch.save(payload, str(bad))
    with pytest.raises(errors.ModelFileError, match="checksum"):
        model_file.load(str(bad))


@pytest.mark.parametrize("recompute_checksum", [False, True])
def test_wrong_format_version(model_file_path, tmp_path, recompute_checksum):
    payload = load_raw(model_file_path)
    payload["format_version"] = model_file.FORMAT_VERSION + 98
    if recompute_checksum:
        payload["sha256"] = model_file.checksum(payload)
    bad = tmp_path / "future.pt"
    torch.save(payload, str(bad))
    with pytest.raises(errors.ModelFileError, match="version") as info:
        model_file.load(str(bad))
    assert str(bad) in str(info.value)


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(errors.ModelFileError) as info:
        model_file.load(str(missing))
    assert str(missing) in str(info.value)
    with pytest.raises(errors.ModelFileError):
        grappa_like.load_model(str(missing))


def test_random_bytes_file(tmp_path):
    bad = tmp_path / "noise.pt"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(errors.ModelFileError) as info:
        model_file.load(str(bad))
    assert str(bad) in str(info.value)


def test_torch_file_that_is_not_a_model(tmp_path):
    not_a_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], str(not_a_dict))
    with pytest.raises(errors.ModelFileError, match="list.pt"):
        model_file.load(str(not_a_dict))
    no_state = tmp_path / "dict.pt"
    torch.save({"format_version": model_file.FORMAT_VERSION}, str(no_state))
    with pytest.raises(errors.ModelFileError, match="dict.pt"):
        model_file.load(str(no_state))


class _NotAllowed:  # an arbitrary class: weights_only loading must refuse it
    pass


def test_file_needing_arbitrary_unpickling_is_refused(tmp_path):
    bad = tmp_path / "pickle.pt"
    torch.save({"format_version": model_file.FORMAT_VERSION, "state_dict": {}, "x": _NotAllowed()}, str(bad))
    with pytest.raises(errors.ModelFileError, match="pickle.pt"):
        model_file.load(str(bad))


def test_model_file_error_is_a_grappa_like_error():
    assert issubclass(errors.ModelFileError, errors.GrappaLikeError)
