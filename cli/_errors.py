"""The command line's one error handler, and the two ways a command reports a user's mistake into it."""

from __future__ import annotations

import contextlib
import errno
import functools
from typing import NoReturn

import typer

# a disk that cannot take what a command writes: a full disk or quota, no permission, a read-only file system
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)
# a path the user gave is a file where a folder must be, or the other way round: their mistake (exit code 2)
PATH_ERRORS = (errno.EEXIST, errno.ENOTDIR, errno.EISDIR)


def one_line_errors(command):
    """Run ``command``; an :class:`~audioemb.errors.AudioembError` becomes one ``error:`` line on stderr and
    the process exits with its ``exit_code`` (2: usage or input error). A disk that is full, read-only or
    not writable (:data:`DISK_ERRORS`) is one line too, naming the file, with exit code 1. Every writer is
    atomic, so what was written before stays whole, and a re-run goes on from it. A file given where a
    folder must be, or the other way round (:data:`PATH_ERRORS`), is one line with exit code 2. Ctrl-C is
    one line, ``interrupted``, with exit code 130."""

    @functools.wraps(command)  # typer reads the wrapped signature
    def run(*args, **kwargs):
        from audioemb.errors import AudioembError

        try:
            return command(*args, **kwargs)
        except AudioembError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:  # Ctrl-C: every writer is atomic, so what was written stays whole
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except OSError as e:
            if e.errno not in DISK_ERRORS + PATH_ERRORS:
                raise
            where = e.filename2 or e.filename  # a rename names the path it could not replace second
            typer.echo(f"error: {e.strerror}" + (f": {where}" if where else ""), err=True)
            raise typer.Exit(1 if e.errno in DISK_ERRORS else 2) from None

    return run


def fail(message: str, exit_code: int = 2) -> NoReturn:
    """Stop the command with this one-line message: a usage or input error (2), or some inputs failed (1)."""
    from audioemb.errors import AudioembError

    err = AudioembError(message)
    err.exit_code = exit_code
    raise err


@contextlib.contextmanager
def input_errors(*types: type[BaseException], exit_code: int = 2):
    """Inside the block, treat ``types`` (e.g. ``FileNotFoundError`` from a path the user gave) as input errors."""
    try:
        yield
    except types as e:
        fail(str(e), exit_code)
