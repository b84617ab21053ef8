"""Every condensation method, one module each; importing the package registers them all."""

from xdistill.registry import import_submodules

import_submodules(__name__, __path__)
