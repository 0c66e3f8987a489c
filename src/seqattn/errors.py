"""Errors a user can cause and fix: the command line prints them as one line and exits non-zero."""


class SeqattnError(Exception):
    """Base class for user-facing errors (bad option, bad file, unreachable server)."""


class ConfigError(SeqattnError, ValueError):
    """An option or configuration value is invalid."""


class DataError(SeqattnError, ValueError):
    """A data file is missing, corrupt, or does not have the expected layout."""


class TrackingError(SeqattnError):
    """The MLflow tracking store cannot be reached or written."""


class RunInUseError(SeqattnError):
    """Another process is running the same run: its state folder is locked."""
