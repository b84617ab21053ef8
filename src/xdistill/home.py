"""Where xdistill keeps what it builds: ``$XDISTILL_HOME``, else the user cache dir."""

from __future__ import annotations

import os
from pathlib import Path


def xdistill_home() -> Path:
    env = os.environ.get("XDISTILL_HOME")
    if env:
        return Path(env).expanduser()
    try:
        from platformdirs import user_cache_dir

        return Path(user_cache_dir("xdistill"))
    except ImportError:  # platformdirs is a declared dependency; this keeps odd installs working
        return Path.home() / ".cache" / "xdistill"


def default_cache_dir() -> Path:
    return xdistill_home() / "cache"
