"""Tiny condensation settings: every method runs in well under a second on the 8x8 tiny task."""

from __future__ import annotations

TINY = {"iterations": 2, "real_batch": 4, "embedder_width": 8, "net_steps": 1, "progress": False}
