"""The errors a user can fix. Each message names the file, flag or value at fault and what would work.

The CLI prints a `SsganError` as one line (or, with `--debug`, with its traceback) and exits with
its `exit_code`. Every other exception is a bug in ssgan or its libraries and keeps its traceback.
"""
from __future__ import annotations


class SsganError(Exception):
    """Base of every user-facing error."""
    exit_code = 2


class ConfigError(SsganError):
    """An option, config key or value that cannot be used (unknown key, wrong type, impossible label count)."""


class DataError(SsganError):
    """A data file or folder that is missing, corrupt or unusable; the message names it."""


class OutputError(SsganError):
    """An output that cannot be written: a folder where a file should go, no space left, no permission."""


class CheckpointError(SsganError):
    """A file that is not a usable ssgan checkpoint, or one made with another configuration."""


class NonFiniteLoss(SsganError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""
    exit_code = 3


class Interrupted(SsganError):
    """Ctrl-C or SIGTERM: the run saved its state after the current step; the message says how to resume."""
    exit_code = 130
