"""Atomic file writing: write to a temporary name in the target folder, then rename.

A reader (or a crash) never sees a half-written output file.
"""

from __future__ import annotations

import os
import re
import secrets

MAX_FILE_NAME_LENGTH = 100


def atomic_write(path, writer) -> str:
    """Call ``writer(temporary_path)`` in the folder of ``path``, then rename it to ``path``; return ``path``."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        writer(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def atomic_write_text(path, text: str) -> str:
    """Write ``text`` to ``path`` atomically; return ``path``."""
    def write(temporary):
        with open(temporary, "x") as handle:
            handle.write(text)
    return atomic_write(path, write)


class UniqueNamer:
    """File-system-safe, unique output names, assigned in input order: characters outside
    [A-Za-z0-9_.-] become '_', names are cut to MAX_FILE_NAME_LENGTH, and a name already given
    (case-insensitively) gets a suffix _2, _3, ..."""

    def __init__(self):
        self._seen: dict[str, int] = {}

    def __call__(self, name: str) -> str:
        seen = self._seen
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._-")[:MAX_FILE_NAME_LENGTH].strip("._-") or "mol"
        candidate = safe
        while candidate.lower() in seen:
            seen[safe.lower()] += 1
            candidate = f"{safe}_{seen[safe.lower()]}"
        seen.setdefault(safe.lower(), 1)
        seen.setdefault(candidate.lower(), 1)
        return candidate
