"""Helpers shared by the CLI commands."""

from __future__ import annotations

import argparse
import logging


def whole_number_at_least(minimum: int):
    """argparse type: an int >= ``minimum``, with a one-line message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def load_model_or_report(path, log: logging.Logger):
    """The model at ``path`` (None: the shipped one), or None after logging one line naming the problem."""
    from grappa_like import errors
    from grappa_like.api import load_model

    try:
        return load_model(path)
    except errors.ModelFileError as error:
        log.error("error: " + " ".join(str(error).split()))
        return None
