"""Errors shared by the inference modules, for messages the CLI prints as one line."""

from __future__ import annotations


class AudioembError(Exception):
    """Base of every error caused by the user's input (a path, a model, an option).

    The CLI prints it as one ``error: ...`` line and exits with ``exit_code`` (2: usage or input error).
    """

    exit_code = 2


class MissingExtraError(AudioembError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""

    def __init__(self, feature: str, module: str, extra: str):
        self.extra = extra
        super().__init__(f"{feature} needs {module}, which is not installed: pip install 'audioemb[{extra}]'")


def require(module: str, feature: str, extra: str):
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(feature, module, extra) from None
