"""The digits demo world: real digit images, a zoo of source teachers and target tasks.

It is xdistill's built-in example: ``build_world()`` trains the teachers on first
use (about two minutes on two CPU cores) and caches everything under
``world_home()``; ``export_world(dest)`` copies it out in xdistill's task and zoo
formats.
"""

from xdistill.demo.domains import TARGET_TASKS, build_source_domain, generic_pretraining_data
from xdistill.demo.world import DemoWorld, WorldConfig, build_world, export_world, world_home

__all__ = [
    "TARGET_TASKS",
    "DemoWorld",
    "WorldConfig",
    "build_source_domain",
    "build_world",
    "export_world",
    "generic_pretraining_data",
    "world_home",
]
