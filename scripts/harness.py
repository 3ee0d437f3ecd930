"""Shared timing harness of the benchmark scripts: warm-up, repeats, median; printing a table."""

from __future__ import annotations

import statistics
import time


def median_seconds(function, repeats: int, warmup: int = 1) -> float:
    """Median wall time (s) of ``function()`` over ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def publish(lines: list[str], output: str | None) -> None:
    """Print the table and, if ``output`` is given, write it there."""
    text = "\n".join(lines) + "\n"
    print(text)
    if output:
        with open(output, "w") as handle:
            handle.write(text)
