"""Model files: a plain dict that ``torch.load(..., weights_only=True)`` reads, with version and checksum.

Version 2 adds two optional entries: ``ensemble`` (a list of state dicts of extra networks of the
same config, stored in float16, restored to float32 on load; they give the out-of-domain score,
see :mod:`grappa_like.ood`) and ``ensemble_metadata`` (where the members came from, the score's
settings and its threshold). Version 1 files (no ensemble) still load.
"""

from __future__ import annotations

import hashlib
import json
import os

import torch

from grappa_like import errors
from grappa_like.fileio import atomic_write

FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
_METADATA_KEYS = ("format_version", "config", "lj_types", "validation_molecules", "training_data", "metrics")
_OPTIONAL_METADATA_KEYS = ("ensemble_metadata",)  # hashed only when present, so v1 checksums stay valid
ENSEMBLE_DTYPE = torch.float16


def _hash_state_dict(digest, state_dict: dict, prefix: str = "") -> None:
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{prefix}{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())


def _cast_floats(state_dict: dict, dtype: torch.dtype) -> dict:
    """Copy of ``state_dict`` with its floating-point tensors in ``dtype`` (integer buffers unchanged)."""
    return {name: tensor.detach().cpu().to(dtype) if tensor.is_floating_point() else tensor.detach().cpu().clone()
            for name, tensor in state_dict.items()}


def checksum(payload: dict) -> str:
    """sha256 over the metadata (canonical JSON) and every tensor (name, dtype, shape, bytes) of the
    state dict and of the ensemble members as stored (float16)."""
    digest = hashlib.sha256()
    metadata = {key: payload.get(key) for key in _METADATA_KEYS}
    metadata.update({key: payload[key] for key in _OPTIONAL_METADATA_KEYS if key in payload})
    digest.update(json.dumps(metadata, sort_keys=True).encode())
    _hash_state_dict(digest, payload["state_dict"])
    for index, member in enumerate(payload.get("ensemble", ())):
        _hash_state_dict(digest, member, prefix=f"ensemble.{index}.")
    return digest.hexdigest()


def save(path: str, payload: dict) -> None:
    """Write ``payload`` (plus format version and checksum) atomically to ``path``; ensemble members
    (optional list of state dicts) are stored in float16."""
    payload = dict(payload, format_version=FORMAT_VERSION)
    payload["state_dict"] = {k: v.detach().cpu().clone() for k, v in payload["state_dict"].items()}
    if "ensemble" in payload:
        payload["ensemble"] = [_cast_floats(member, ENSEMBLE_DTYPE) for member in payload["ensemble"]]
    payload["sha256"] = checksum(payload)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda temporary: torch.save(payload, temporary))


def load(path: str) -> dict:
    """Read and verify a model file (ensemble members come back in float32); raise
    :class:`errors.ModelFileError` naming the file otherwise."""
    if not os.path.exists(path):
        raise errors.ModelFileError(f"{path}: model file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise errors.ModelFileError(f"{path}: not a readable model file ({type(error).__name__})") from None
    if not isinstance(payload, dict) or "format_version" not in payload or "state_dict" not in payload:
        raise errors.ModelFileError(f"{path}: not a grappa_like model file (no format_version / state_dict)")
    if payload["format_version"] not in SUPPORTED_VERSIONS:
        raise errors.ModelFileError(
            f"{path}: model format version {payload['format_version']} is not supported "
            f"(this grappa_like reads versions {', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    ensemble = payload.get("ensemble", [])
    if not isinstance(ensemble, list) or not all(
            isinstance(member, dict) and all(isinstance(t, torch.Tensor) for t in member.values()) for member in ensemble):
        raise errors.ModelFileError(f"{path}: the 'ensemble' entry is not a list of state dicts")
    if payload.get("sha256") != checksum(payload):
        raise errors.ModelFileError(f"{path}: checksum mismatch, the model file is corrupt")
    if ensemble:
        payload["ensemble"] = [_cast_floats(member, torch.float32) for member in ensemble]
    return payload
