"""Errors that users can cause and fix.

Every exception here carries one sentence that says what is wrong and how to fix it.
The command-line layer prints that sentence and exits non-zero without a traceback;
any other exception is a bug and still raises.
"""


class VisionDLError(Exception):
    """Base class of the errors a user can cause (bad data, bad path, bad argument)."""


class DataError(VisionDLError):
    """The data set could not be found, read or validated."""


class UnsafePickleError(DataError):
    """A pickle file asked for something the official CIFAR-10 release never contains."""


class ModelError(VisionDLError):
    """A model, checkpoint or weights file could not be built or loaded."""


class ConfigError(VisionDLError):
    """An argument or configuration value is invalid."""
