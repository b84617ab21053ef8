"""Human tables (rich) and machine-readable JSON for the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from xdistill.io import atomic_write_json
from xdistill.report.console import console, err_console, fmt, print_table

__all__ = ["console", "emit_json", "err_console", "fmt", "print_table"]


def emit_json(obj: Any, path: Path | None) -> None:
    """Write ``obj`` as JSON to ``path`` ('-' prints it to stdout)."""
    if path is None:
        return
    if str(path) == "-":
        sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    else:
        atomic_write_json(path, obj)
