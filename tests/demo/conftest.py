from __future__ import annotations

import pytest

from xdistill.demo import world

TINY = world.WorldConfig(domain_size=60, epochs=1)  # every teacher trained for one epoch on 60 images per domain


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """One tiny demo world shared by the demo tests (none of them changes it): (home, world, build log)."""
    home = tmp_path_factory.mktemp("home")
    lines: list[str] = []
    built = world.build_world(home, progress=False, log=lines.append, config=TINY)
    return home, built, lines
