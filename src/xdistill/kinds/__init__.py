"""Task kinds beside the stages: each kind is one sub-package that registers
itself in :data:`KINDS` (see :mod:`xdistill.kinds.registry`); every sub-package
here is imported with this one."""

from xdistill.kinds.registry import DEFAULT_KIND, KINDS, TaskKind, kind_name, kind_of, load_task, methods_markdown
from xdistill.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["DEFAULT_KIND", "KINDS", "TaskKind", "kind_name", "kind_of", "load_task", "methods_markdown"]
