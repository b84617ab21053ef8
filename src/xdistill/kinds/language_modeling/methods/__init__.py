"""The language-modeling kind's methods, one file each; every module here registers into :data:`METHODS`."""

from xdistill.registry import Registry, import_submodules

METHODS = Registry("language-modeling method")

import_submodules(__name__, __path__)

__all__ = ["METHODS"]
