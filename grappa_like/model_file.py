"""Model files: a plain dict that ``torch.load(..., weights_only=True)`` reads, with version and checksum."""

from __future__ import annotations

import hashlib
import json
import os

import torch

from grappa_like import errors
from grappa_like.fileio import atomic_write

FORMAT_VERSION = 1
_METADATA_KEYS = ("format_version", "config", "lj_types", "validation_molecules", "training_data", "metrics")


def checksum(payload: dict) -> str:
    """sha256 over the metadata (canonical JSON) and every state-dict tensor (name, dtype, shape, bytes)."""
    digest = hashlib.sha256()
    metadata = {key: payload.get(key) for key in _METADATA_KEYS}
    digest.update(json.dumps(metadata, sort_keys=True).encode())
    for name in sorted(payload["state_dict"]):
        tensor = payload["state_dict"][name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def save(path: str, payload: dict) -> None:
    """Write ``payload`` (plus format version and checksum) atomically to ``path``."""
    payload = dict(payload, format_version=FORMAT_VERSION)
    payload["state_dict"] = {k: v.detach().cpu().clone() for k, v in payload["state_dict"].items()}
    payload["sha256"] = checksum(payload)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda temporary: torch.save(payload, temporary))


def load(path: str) -> dict:
    """Read and verify a model file; raise :class:`errors.ModelFileError` naming the file otherwise."""
    if not os.path.exists(path):
        raise errors.ModelFileError(f"{path}: model file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise errors.ModelFileError(f"{path}: not a readable model file ({type(error).__name__})") from None
    if not isinstance(payload, dict) or "format_version" not in payload or "state_dict" not in payload:
        raise errors.ModelFileError(f"{path}: not a grappa_like model file (no format_version / state_dict)")
    if payload["format_version"] != FORMAT_VERSION:
        raise errors.ModelFileError(
            f"{path}: model format version {payload['format_version']} is not supported "
            f"(this grappa_like reads version {FORMAT_VERSION})"
        )
    if payload.get("sha256") != checksum(payload):
        raise errors.ModelFileError(f"{path}: checksum mismatch, the model file is corrupt")
    return payload
