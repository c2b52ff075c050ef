"""Errors the server answers with an HTTP status (the app maps them; the CLI prints them)."""

from __future__ import annotations

from segany.errors import SegAnyError

__all__ = [
    "BusyError",
    "ConflictError",
    "HttpError",
    "NotFoundError",
    "TooLargeError",
    "UnsupportedError",
]


class HttpError(SegAnyError):
    """An error with the HTTP status it is answered with."""

    status = 400


class NotFoundError(HttpError):
    """No such thing, or not one the caller may see (the two answer alike)."""

    status = 404


class ConflictError(HttpError):
    """The thing changed since the caller read it (optimistic locking lost)."""

    status = 409


class TooLargeError(HttpError):
    """An upload over the byte or pixel limit."""

    status = 413


class UnsupportedError(HttpError):
    """An upload that is not an image of a supported type."""

    status = 415


class BusyError(HttpError):
    """The inference queue is full, or a request waited too long for the model."""

    status = 503
