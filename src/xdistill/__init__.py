"""xdistill: cross-domain knowledge distillation from a zoo of pretrained teachers."""

__version__ = "0.1.0"
