"""Atomic file writing: write to a temporary name in the target folder, then rename.

A reader (or a crash) never sees a half-written output file.
"""

from __future__ import annotations

import os
import secrets


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
