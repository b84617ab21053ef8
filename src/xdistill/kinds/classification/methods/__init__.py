"""The classification kind's methods, one declaration per file.

Importing this package registers them all in :data:`METHODS`; a new method is
one more file here (and its test), named in the import list below.
"""

from xdistill.registry import Registry
from xdistill.train.method import Method

METHODS: Registry[Method] = Registry("classification method")

from xdistill.kinds.classification.methods import (  # noqa: E402,F401  (each module registers its method)
    ensemble,
    finetune,
    fixmatch,
    nearest,
    partition,
    supervised,
    weighted,
)

__all__ = ["METHODS", "Method"]
