"""The exceptions featx raises for problems a user can fix."""
from __future__ import annotations


class FeatxError(Exception):
    """Base class: a problem with the user's input or settings.

    The message says what was received, what was expected and, where possible,
    how to fix it. The command line prints it as a one-line error.

    Parameters
    ----------
    message : str
        The one-line message. Library code names parameters as in Python
        (``folds=0``), never command-line flags.
    param : str, optional
        The parameter the message is about (``"folds"``). The command line
        writes it as its option (``--folds``) when it prints the message.
    """

    def __init__(self, message: str = "", *, param: str | None = None):
        super().__init__(message)
        self.param = param


class AudioError(FeatxError):
    """An audio file cannot be decoded or is unusable (empty, too short)."""


class AudioTooLongError(AudioError):
    """An audio file holds more samples (or seconds) than may be analysed."""


class AudioValueError(AudioError, ValueError):
    """An array of samples given to featx has the wrong shape, type or values."""


class ConfigError(FeatxError, ValueError):
    """An option or setting has an invalid value."""


class DataError(FeatxError, ValueError):
    """A feature table or mapping file is malformed."""


class OutputError(FeatxError):
    """An output location is unusable or holds results made with other settings."""


class BundleError(FeatxError):
    """A saved model bundle is missing, corrupt or does not match the data."""


class TrainingError(FeatxError):
    """Training failed in a way the settings can fix (e.g. the loss diverged)."""
