"""Figures both benches print."""

from __future__ import annotations

import statistics


def paired_ratios(ours: list[float], bare: list[float]) -> str:
    """Each of our rounds over the bare round of the same turn: median (lowest-highest).

    Adjacent rounds see nearly the same machine, so this moves less with the VM's drift than
    the ratio of the two medians."""
    ratios = sorted(mine / theirs for mine, theirs in zip(ours, bare, strict=True))
    return f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"
