"""Exceptions that segany raises for problems a user can act on.

Every error a user can cause (a bad image, a bad prompt, a checkpoint for another model,
a failed download) derives from :class:`SegAnyError`, so front ends (the CLI, later the
server) can turn it into one readable line instead of a traceback.
"""


class SegAnyError(Exception):
    """Base class of all user-facing segany errors."""


class InputError(SegAnyError, ValueError):
    """An image, prompt or argument cannot be used as given."""


class CheckpointError(SegAnyError, ValueError):
    """A weights file is unreadable, truncated, unsafe, or belongs to another model."""


class DownloadError(SegAnyError, RuntimeError):
    """Weights could not be downloaded or failed their checksum."""


class NoImageError(SegAnyError, RuntimeError):
    """A prompt was given before an image was set (``Predictor.set_image``)."""
