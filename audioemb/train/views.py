"""Moved to :mod:`audioemb.nn.views` (objectives must not import the trainer); kept for ``package.py``."""

from ..nn.views import Views

__all__ = ["Views"]
