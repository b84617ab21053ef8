"""The classification kind's methods, one declaration per file.

Importing this package imports every module in it, and each registers its
method in :data:`METHODS`: a new method is one more file here.
"""

from xdistill.registry import Registry, import_submodules
from xdistill.train.method import Method

METHODS: Registry[Method] = Registry("classification method")

import_submodules(__name__, __path__)

__all__ = ["METHODS", "Method"]
