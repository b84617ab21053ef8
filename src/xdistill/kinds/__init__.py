"""Task kinds beside the stages: each kind is one sub-package that registers
itself in :data:`KINDS` (see :mod:`xdistill.kinds.registry`)."""

from xdistill.kinds import classification  # noqa: E402,F401  (registers the built-in kind)
from xdistill.kinds.registry import DEFAULT_KIND, KINDS, TaskKind, kind_name, kind_of, load_task

__all__ = ["DEFAULT_KIND", "KINDS", "TaskKind", "kind_name", "kind_of", "load_task"]
