"""Model files: numpy ``.npz`` archives read without torch and without unpickling, with version and checksum.

Format version 3 (``grappa_like-model-3``): an uncompressed ``.npz`` (zip) archive holding

- ``metadata``: UTF-8 JSON as a uint8 array: ``format_version``, ``config``, ``lj_types``,
  ``validation_molecules``, ``training_data``, ``metrics``, optional ``ensemble_metadata``,
  ``ensemble_size`` and ``sha256``;
- ``state_dict/<name>``: the main network's weights (float32; integer buffers as int64);
- ``ensemble/<k>/<name>``: the weights of ensemble member k (float16, restored to float32 on load;
  they give the out-of-domain score, see :mod:`grappa_like.ood`).

It is read with ``numpy.load(..., allow_pickle=False)``: a model file from someone else can never
run code. The sha256 covers the metadata (canonical JSON) and every array (name, dtype, shape,
bytes). Files of formats 1 and 2 (torch ``.pt`` pickles of the earlier releases) are converted on
load when torch is installed (``pip install grappa_like[train]``); else the error says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

import numpy as np

from grappa_like import errors
from grappa_like.fileio import atomic_write

FORMAT_VERSION = 3
LEGACY_TORCH_VERSIONS = (1, 2)
_METADATA_KEYS = ("format_version", "config", "lj_types", "validation_molecules", "training_data", "metrics")
_OPTIONAL_METADATA_KEYS = ("ensemble_metadata",)
ENSEMBLE_DTYPE = np.float16


def as_arrays(state_dict: dict) -> dict[str, np.ndarray]:
    """Copy of a state dict (numpy arrays or torch tensors) as numpy arrays on the CPU."""
    arrays = {}
    for name, value in state_dict.items():
        if hasattr(value, "detach"):  # a torch tensor: no torch import needed to convert it
            value = value.detach().cpu().numpy()
        arrays[name] = np.array(value)
    return arrays


def _cast_floats(arrays: dict, dtype) -> dict[str, np.ndarray]:
    return {name: value.astype(dtype) if np.issubdtype(value.dtype, np.floating) else value
            for name, value in arrays.items()}


def _metadata(payload: dict) -> dict:
    metadata = {key: payload.get(key) for key in _METADATA_KEYS}
    metadata.update({key: payload[key] for key in _OPTIONAL_METADATA_KEYS if key in payload})
    return metadata


def _hash_arrays(digest, arrays: dict, prefix: str = "") -> None:
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{prefix}{name}|{array.dtype.str}|{tuple(array.shape)}".encode())
        digest.update(array.tobytes())


def checksum(payload: dict) -> str:
    """sha256 over the metadata (canonical JSON) and every array of the state dict and of the
    ensemble members as stored (float16)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(_metadata(payload), sort_keys=True).encode())
    _hash_arrays(digest, as_arrays(payload["state_dict"]))
    for index, member in enumerate(payload.get("ensemble", ())):
        _hash_arrays(digest, _cast_floats(as_arrays(member), ENSEMBLE_DTYPE), prefix=f"ensemble.{index}.")
    return digest.hexdigest()


def write_payload(path: str, payload: dict) -> None:
    """Write ``payload`` as a model archive exactly as given (its ``sha256`` is not recomputed),
    atomically; :func:`save` is the normal way to write a model."""
    metadata = _metadata(payload)
    members = payload.get("ensemble", ())
    metadata.update(ensemble_size=len(members), sha256=payload.get("sha256"))
    entries = {"metadata": np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8)}
    entries.update({f"state_dict/{name}": value for name, value in as_arrays(payload["state_dict"]).items()})
    for index, member in enumerate(members):
        entries.update({f"ensemble/{index}/{name}": value
                        for name, value in _cast_floats(as_arrays(member), ENSEMBLE_DTYPE).items()})

    def write(temporary):
        with open(temporary, "wb") as handle:
            np.savez(handle, **entries)

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, write)


def read_payload(path: str) -> dict:
    """The payload of a model archive as stored (ensemble in float16), not verified; :func:`load`
    is the normal way to read a model."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        metadata = json.loads(arrays.pop("metadata").tobytes().decode())
    except Exception as error:
        raise errors.ModelFileError(f"{path}: not a readable model file ({type(error).__name__})") from None
    if not isinstance(metadata, dict):
        raise errors.ModelFileError(f"{path}: not a grappa_like model file (metadata is not a JSON object)")
    size = metadata.pop("ensemble_size", 0)
    if not isinstance(size, int) or size < 0:
        raise errors.ModelFileError(f"{path}: the 'ensemble_size' entry is not a whole number")
    payload = dict(metadata, state_dict={})
    members = [{} for _ in range(size)]
    for name, value in arrays.items():
        group, _, key = name.partition("/")
        if group == "state_dict":
            payload["state_dict"][key] = value
        elif group == "ensemble":
            index, _, key = key.partition("/")
            if not index.isdigit() or int(index) >= size:
                raise errors.ModelFileError(f"{path}: ensemble entry {name} does not fit ensemble_size {size}")
            members[int(index)][key] = value
    if members:
        payload["ensemble"] = members
    return payload


def save(path: str, payload: dict) -> None:
    """Write ``payload`` (metadata keys, ``state_dict``, optional ``ensemble`` list of state dicts)
    atomically to ``path`` in the current format with its checksum; ensemble members in float16."""
    payload = dict(payload, format_version=FORMAT_VERSION)
    payload["sha256"] = checksum(payload)
    write_payload(path, payload)


def load(path: str) -> dict:
    """Read and verify a model file (ensemble members come back in float32); raise
    :class:`errors.ModelFileError` naming the file otherwise."""
    path = str(path)
    if not os.path.exists(path):
        raise errors.ModelFileError(f"{path}: model file not found")
    if _is_torch_pickle(path):
        return _load_legacy_torch_file(path)
    payload = read_payload(path)
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise errors.ModelFileError(f"{path}: model format version {version} is not supported "
                                    f"(this grappa_like reads version {FORMAT_VERSION}, and 1-2 with torch)")
    if not payload["state_dict"] or payload.get("sha256") != checksum(payload):
        raise errors.ModelFileError(f"{path}: checksum mismatch, the model file is corrupt")
    if "ensemble" in payload:
        payload["ensemble"] = [_cast_floats(member, np.float32) for member in payload["ensemble"]]
    return payload


def _is_torch_pickle(path: str) -> bool:
    """True for the torch zip files of format versions 1-2 (they hold a ``data.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())


def _load_legacy_torch_file(path: str) -> dict:
    """A verified format 1-2 file, read with torch (``weights_only``: no code runs), as a current payload."""
    try:
        import torch
    except ImportError:
        raise errors.ModelFileError(
            f"{path}: a model file of format 1-2 (torch); install grappa_like[train] to read it, and convert it "
            f"with: python -m grappa_like.model_file {path} NEW.npz") from None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise errors.ModelFileError(f"{path}: not a readable model file ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format_version") not in LEGACY_TORCH_VERSIONS:
        raise errors.ModelFileError(f"{path}: not a grappa_like model file of format 1-2")
    digest = hashlib.sha256()  # the checksum of formats 1-2 names torch dtypes
    digest.update(json.dumps(_metadata(payload), sort_keys=True).encode())
    for prefix, state_dict in [("", payload["state_dict"])] + [
            (f"ensemble.{index}.", member) for index, member in enumerate(payload.get("ensemble", []))]:
        for name in sorted(state_dict):
            tensor = state_dict[name].detach().cpu().contiguous()
            digest.update(f"{prefix}{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
            digest.update(tensor.numpy().tobytes())
    if payload.get("sha256") != digest.hexdigest():
        raise errors.ModelFileError(f"{path}: checksum mismatch, the model file is corrupt")
    converted = {key: value for key, value in payload.items() if key not in ("state_dict", "ensemble", "sha256")}
    converted.update(format_version=FORMAT_VERSION, state_dict=as_arrays(payload["state_dict"]))
    if payload.get("ensemble"):
        converted["ensemble"] = [_cast_floats(as_arrays(member), np.float32) for member in payload["ensemble"]]
    converted["sha256"] = checksum(converted)
    return converted


def main(argv=None) -> int:
    """``python -m grappa_like.model_file OLD.pt NEW.npz``: convert a format 1-2 file to the current format."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("source")
    parser.add_argument("target")
    args = parser.parse_args(argv)
    save(args.target, load(args.source))
    print(f"wrote {args.target} (format {FORMAT_VERSION})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
