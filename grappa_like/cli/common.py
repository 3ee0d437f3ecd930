"""Helpers shared by the CLI commands."""

from __future__ import annotations

import logging


def load_model_or_report(path, log: logging.Logger):
    """The model at ``path`` (None: the shipped one), or None after logging one line naming the problem."""
    from grappa_like import errors
    from grappa_like.api import load_model

    try:
        return load_model(path)
    except errors.ModelFileError as error:
        log.error("error: " + " ".join(str(error).split()))
        return None
