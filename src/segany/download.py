"""Verified downloads into the weights cache, with the standard library only.

* :func:`cache_dir` says where downloaded weights live.
* :func:`download` fetches a URL, resumes interrupted transfers with HTTP ``Range``
  requests, verifies size and SHA-256, and only then moves the file into place, so the
  cache never holds a partial or corrupt file under its final name.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from segany.errors import DownloadError, InputError

__all__ = ["cache_dir", "download", "sha256_file"]

_CHUNK = 1 << 20  # 1 MiB: read/write/hash granularity
_USER_AGENT = "segany (Python urllib)"
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# Cache directory
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Return the directory where segany caches downloaded weights.

    ``$SEGANY_CACHE`` wins if set (and non-empty). Otherwise ``$XDG_CACHE_HOME/segany`` if
    ``XDG_CACHE_HOME`` is set to an absolute path (the XDG spec says relative values are
    ignored), else ``~/.cache/segany``. The directory is not created here.
    """
    override = os.environ.get("SEGANY_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(os.path.expanduser(xdg)):
        return Path(xdg).expanduser() / "segany"
    return Path.home() / ".cache" / "segany"


# --------------------------------------------------------------------------------------------
# Hashing and downloading
# --------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    """Return the lowercase hex SHA-256 of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _part_path(dest: Path) -> Path:
    """Return the ``.part`` file a download of ``dest`` is streamed into."""
    return dest.with_suffix(dest.suffix + ".part")


def _is_http(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme.lower() in ("http", "https")


def _open_url(url: str, offset: int, timeout: float) -> Any:
    """Open ``url``, asking for the bytes from ``offset`` on if it is > 0 and HTTP(S)."""
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset > 0 and _is_http(url):
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, timeout=timeout)


def _status_of(response: Any) -> int | None:
    """HTTP status of an urlopen response; ``None`` for non-HTTP (e.g. ``file://``) ones."""
    status = getattr(response, "status", None)
    if status is None:
        status = response.getcode()
    return int(status) if status is not None else None


def _int_header(response: Any, name: str) -> int | None:
    value = response.headers.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _network_error(url: str, exc: BaseException, part: Path) -> DownloadError:
    """Build the DownloadError for a failure after which the ``.part`` file is kept."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason: object = exc.reason
    else:
        reason = exc
    if isinstance(reason, (TimeoutError, socket.timeout)):
        what = "the connection timed out"
    else:
        what = str(reason) or type(reason).__name__
    kept = ""
    if part.exists() and part.stat().st_size > 0:
        kept = f"; {part.stat().st_size} bytes were kept in {part} and a rerun will resume"
    return DownloadError(f"cannot download {url}: {what}{kept}")


def _stream_to_file(
    response: Any,
    fh: IO[bytes],
    *,
    initial: int,
    total: int | None,
    progress: bool,
    desc: str,
) -> int:
    """Copy the response body to ``fh``; return the number of bytes written."""
    written = 0
    with tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        disable=not progress,
        leave=True,
    ) as bar:
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            fh.write(chunk)
            written += len(chunk)
            bar.update(len(chunk))
    return written


def _fetch_into_part(
    url: str, part: Path, *, size: int | None, progress: bool, timeout: float, desc: str
) -> None:
    """Fetch ``url`` into ``part``, resuming if possible. Leaves ``part`` for verification.

    Raises DownloadError (keeping ``part``) for network errors and early-closed transfers.
    """
    # At most two rounds: a resume attempt, then (if the server sent an unusable partial
    # response) one restart from byte zero.
    for _ in range(2):
        offset = part.stat().st_size if part.exists() else 0
        if size is not None and offset > size:
            part.unlink()  # cannot be a prefix of the wanted file
            offset = 0
        if size is not None and offset == size and offset > 0:
            return  # looks complete: verify it without asking the server

        try:
            response = _open_url(url, offset, timeout)
        except ValueError as exc:  # raised by urllib for a malformed or scheme-less URL
            raise InputError(f"cannot download {url!r}: {exc}") from exc
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset > 0:
                # "Range not satisfiable": the .part is already complete (or corrupt);
                # verification decides which.
                exc.close()
                return
            exc.close()
            raise DownloadError(
                f"cannot download {url}: the server answered HTTP {exc.code} {exc.reason}"
            ) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _network_error(url, exc, part) from exc

        with response:
            status = _status_of(response)
            if status == 206 and offset > 0:
                match = _CONTENT_RANGE_RE.match(response.headers.get("Content-Range", ""))
                if match is None or int(match.group(1)) != offset:
                    # A partial response we cannot append: drop what we have and restart.
                    part.unlink(missing_ok=True)
                    continue
                mode = "ab"
                full = match.group(3)
                total = int(full) if full != "*" else size
                body_length: int | None = int(match.group(2)) - offset + 1
            elif status is None or 200 <= status < 300:
                # 200 (server ignored Range) or a non-HTTP URL: the body is the whole file.
                offset = 0
                mode = "wb"
                body_length = _int_header(response, "Content-Length")
                total = body_length if body_length is not None else size
            else:
                raise DownloadError(f"cannot download {url}: unexpected HTTP status {status}")

            try:
                with open(part, mode) as fh:
                    received = _stream_to_file(
                        response, fh, initial=offset, total=total, progress=progress, desc=desc
                    )
            except (OSError, http.client.HTTPException) as exc:
                raise _network_error(url, exc, part) from exc

        if body_length is not None and received != body_length:
            raise DownloadError(
                f"cannot download {url}: the connection closed after {received} of "
                f"{body_length} bytes; {part.stat().st_size} bytes were kept in {part} and a "
                "rerun will resume"
            )
        return
    raise DownloadError(f"cannot download {url}: the server keeps sending unusable ranges")


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest``, verify it, and return ``dest``.

    The body is streamed into ``dest`` + ``".part"``. If that file already exists (from an
    interrupted earlier run) the transfer resumes with an HTTP ``Range: bytes=N-`` request:
    a ``206`` answer is appended, a ``200`` answer (a server that ignores ranges) restarts
    from byte zero, and ``416`` means the part is already whole, so it is just verified.
    ``file://`` URLs (a local mirror) work too; they are always copied from the start.

    When the transfer is complete the file's size (if ``size`` is given) and SHA-256 (if
    ``sha256`` is given; the whole file is hashed, resumed bytes included) are checked. On a
    mismatch the ``.part`` file is deleted and :class:`DownloadError` names the expected and
    actual values. On success the ``.part`` file is atomically renamed to ``dest``.

    If ``dest`` already exists and matches ``sha256`` (and ``size``), nothing is downloaded.

    Args:
        url: ``http://``, ``https://`` or ``file://`` URL.
        dest: final path of the file; its parent directory is created if needed.
        sha256: expected lowercase or uppercase hex SHA-256, or ``None`` to skip the check.
        size: expected size in bytes, or ``None``.
        progress: show a tqdm progress bar on stderr.
        timeout: seconds to wait for the connection and for each read.

    Raises:
        InputError: ``sha256`` is not 64 hex digits or ``size`` is negative.
        DownloadError: HTTP error status, network failure or timeout (the ``.part`` file is
            kept so that a rerun resumes), or a size/checksum mismatch (nothing is kept).
    """
    if sha256 is not None:
        if not _SHA256_RE.fullmatch(sha256.strip()):
            raise InputError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
        sha256 = sha256.strip().lower()
    if size is not None and size < 0:
        raise InputError(f"size must be >= 0, got {size}")

    dest = Path(dest)
    if (
        sha256 is not None
        and dest.is_file()
        and (size is None or dest.stat().st_size == size)
        and sha256_file(dest) == sha256
    ):
        return dest  # already downloaded and verified

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    _fetch_into_part(url, part, size=size, progress=progress, timeout=timeout, desc=dest.name)

    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        if actual_size < size:
            raise DownloadError(
                f"download of {url} is incomplete: got {actual_size} of {size} bytes; they were "
                f"kept in {part} and a rerun will resume"
            )
        part.unlink()
        raise DownloadError(
            f"download of {url} has the wrong size: expected {size} bytes, got {actual_size}; "
            "the file was deleted"
        )
    if sha256 is not None:
        actual = sha256_file(part)
        if actual != sha256:
            part.unlink()
            raise DownloadError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; "
                "the downloaded file was deleted"
            )
    os.replace(part, dest)
    return dest
