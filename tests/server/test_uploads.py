"""Bad uploads get a 4xx and leave no partial rows or files; only members see a project.

Every test runs on SQLite and on PostgreSQL (the ``served`` fixture). After each refused
upload the project holds the same image rows as before and the data dir's ``images/``
holds the same files (hidden temporary files included).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import struct
import time
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from segany.server.auth import issue_token, revoke_tokens
from segany.server.tables import Image, User
from tests.server.conftest import Served, make_served, png_bytes

BOMB_SIDE = 20_000


# ------------------------------------------------------------------------------ helpers


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


@functools.cache
def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid ``side`` x ``side`` 8-bit grayscale PNG of zeros, built by hand.

    Each row is a filter byte (0, None) and ``side`` zero bytes; the rows go through one
    zlib stream, fed in blocks of rows, so 400 MB of pixels compress to about 400 kB.
    """
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit, grayscale
    packer = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    rows_per_block = 500
    block = (b"\x00" + bytes(side)) * rows_per_block
    parts = []
    done = 0
    while done < side:
        count = min(rows_per_block, side - done)
        parts.append(
            packer.compress(block if count == rows_per_block else block[: count * (side + 1)])
        )
        done += count
    parts.append(packer.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def all_files(folder: Path) -> list[str]:
    """Every file under ``folder``, hidden ones too, relative to it."""
    found = []
    for root, _, names in os.walk(folder):
        found += [str(Path(root, name).relative_to(folder)) for name in names]
    return sorted(found)


def image_rows(served: Served, project: int) -> list[tuple[int, str]]:
    with served.db.read() as session:
        rows = session.execute(
            select(Image.id, Image.sha256).where(Image.project_id == project).order_by(Image.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def all_image_rows(served: Served) -> int:
    with served.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Image)) or 0)


class Unchanged:
    """Asserts that the block added no image row and no file (temporary ones included)."""

    def __init__(self, served: Served, project: int) -> None:
        self.served = served
        self.project = project

    def __enter__(self) -> Unchanged:
        self.rows = image_rows(self.served, self.project)
        self.count = all_image_rows(self.served)
        self.files = all_files(self.served.config.images_dir)
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            return
        assert image_rows(self.served, self.project) == self.rows
        assert all_image_rows(self.served) == self.count
        assert all_files(self.served.config.images_dir) == self.files


def refused(answer: Any, status: int | tuple[int, ...], words: str = "") -> str:
    """The answer's ``detail`` after checking its status and that the detail reads well."""
    expected = (status,) if isinstance(status, int) else status
    assert answer.status_code in expected, (answer.status_code, answer.text)
    detail = answer.json()["detail"]
    assert detail, answer.text
    if isinstance(detail, str):
        assert words.lower() in detail.lower(), detail
    return str(detail)


def user_row(served: Served, name: str) -> Any:
    with served.db.read() as session:
        return session.scalar(select(User).where(User.name == name))


# --------------------------------------------------------------------- refused uploads


def test_png_bomb_is_a_real_png() -> None:
    data = png_bomb()
    assert len(data) < 1_000_000
    limit = PILImage.MAX_IMAGE_PIXELS
    PILImage.MAX_IMAGE_PIXELS = None
    try:
        with PILImage.open(io.BytesIO(data)) as header:
            assert (header.format, header.mode, header.size) == ("PNG", "L", (20_000, 20_000))
    finally:
        PILImage.MAX_IMAGE_PIXELS = limit
    # the pixel stream starts with rows of a 0 filter byte and zeros
    idat = data[33 + 8 : -12 - 4]
    start = zlib.decompressobj().decompress(idat, 3 * (BOMB_SIDE + 1))
    assert start == bytes(3 * (BOMB_SIDE + 1))


def test_refused_images(served: Served) -> None:
    project = served.project()
    with Unchanged(served, project):
        answer = served.upload(project, b"hello, not a png", "a.png")
        refused(answer, 415, "not an image")

    with Unchanged(served, project):
        start = time.perf_counter()
        answer = served.upload(project, png_bomb(), "bomb.png")
        elapsed = time.perf_counter() - start
        refused(answer, 413, "pixels")
        assert elapsed < 5, f"the bomb took {elapsed:.1f} s: was it decoded?"

    whole = png_bytes(64, 80, seed=1)
    with Unchanged(served, project):
        answer = served.upload(project, whole[: len(whole) // 2], "half.png")
        assert 400 <= answer.status_code < 500, answer.text
        refused(answer, answer.status_code)


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_oversized_body(db_url: str, tmp_path: Path, chunked: bool) -> None:
    served, db = make_served(db_url, tmp_path / "data", None, max_upload_bytes=100_000)
    try:
        with served.client:
            project = served.project()
            big = png_bytes(16, 16) + bytes(3_000_000)
            with Unchanged(served, project):
                if not chunked:
                    answer = served.upload(project, big, "big.png")
                else:
                    boundary = "segany-test-boundary"
                    body = (
                        (
                            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                            f'filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
                        ).encode()
                        + big
                        + f"\r\n--{boundary}--\r\n".encode()
                    )

                    def pieces() -> Iterator[bytes]:
                        for start in range(0, len(body), 64 << 10):
                            yield body[start : start + (64 << 10)]

                    answer = served.client.post(
                        f"/api/projects/{project}/images",
                        content=pieces(),
                        headers={
                            **served.auth(),
                            "Content-Type": f"multipart/form-data; boundary={boundary}",
                        },
                    )
                    assert "content-length" not in {k.lower() for k in answer.request.headers}
                refused(answer, 413, "limit")
            # a small image still goes in
            assert served.upload(project, png_bytes(16, 16), "small.png").status_code == 201
    finally:
        db.close()


BAD_NAMES = ["../../evil.png", "/etc/passwd.png", "..\\..\\evil.png", "a/b.png", ""]


def test_file_names_with_paths(served: Served) -> None:
    project = served.project()
    data = png_bytes(40, 48, seed=2)
    for name in BAD_NAMES:
        with Unchanged(served, project):
            answer = served.upload(project, data, name)
            if name:
                refused(answer, 400, "file name")
            else:  # FastAPI may refuse a part without a file name first
                refused(answer, (400, 422))
    data_dir = served.config.data_dir
    assert not [p for p in all_files(data_dir.parent) if Path(p).name == "evil.png"]
    for folder in list(data_dir.parents)[:3]:
        assert not (folder / "evil.png").exists()
        assert not (folder / "b.png").exists()


# ------------------------------------------------------------------------ who may ask


def test_bad_tokens(served: Served) -> None:
    project = served.project()
    data = png_bytes(40, 48, seed=3)
    ann = user_row(served, "ann")
    with served.db.session() as session:
        revoked = issue_token(session, ann).token
        expired = issue_token(session, ann, expires_in=timedelta(seconds=-1)).token
    with served.db.session() as session:
        assert revoke_tokens(session, ann, revoked) == 1
    cases: dict[str, dict[str, str]] = {
        "wrong": {"Authorization": "Bearer not-a-token"},
        "none": {},
        "revoked": {"Authorization": f"Bearer {revoked}"},
        "expired": {"Authorization": f"Bearer {expired}"},
    }
    for case, headers in cases.items():
        with Unchanged(served, project):
            answer = served.client.post(f"/api/projects/{project}/images",
                                        files={"file": ("a.png", data, "image/png")},
                                        headers=headers)  # fmt: skip
            refused(answer, 401, "token")
            assert answer.headers.get("www-authenticate") == "Bearer", case
        listing = served.client.get("/api/projects", headers=headers)
        assert listing.status_code == 401, case
    # ann's own token still works
    assert served.client.get("/api/projects", headers=served.auth()).status_code == 200


def test_other_users_project(served: Served) -> None:
    project = served.project("ann's")
    image = served.upload(project, png_bytes(40, 48, seed=4), "mine.png")
    assert image.status_code == 201, image.text
    image_id = image.json()["id"]
    bob = served.auth("bob")
    with Unchanged(served, project):
        answer = served.upload(project, png_bytes(40, 48, seed=5), "bobs.png", user="bob")
        refused(answer, 404, f"no project {project}")
    for path in (f"/api/projects/{project}", f"/api/projects/{project}/annotations",
                 f"/api/projects/{project}/images", f"/api/images/{image_id}"):  # fmt: skip
        refused(served.client.get(path, headers=bob), 404, "no ")
    assert served.client.get("/api/projects", headers=bob).json() == []

    answer = served.client.post(f"/api/projects/{project}/members", json={"user": "bob"},
                                headers=served.auth("ann"))  # fmt: skip
    assert answer.status_code == 204, answer.text
    for path in (f"/api/projects/{project}", f"/api/projects/{project}/annotations",
                 f"/api/images/{image_id}"):  # fmt: skip
        assert served.client.get(path, headers=bob).status_code == 200, path
    assert [p["id"] for p in served.client.get("/api/projects", headers=bob).json()] == [project]
    answer = served.upload(project, png_bytes(40, 48, seed=5), "bobs.png", user="bob")
    assert answer.status_code == 201, answer.text


# ------------------------------------------------------------------------ a good upload


def test_valid_upload_is_stored_once(served: Served) -> None:
    project = served.project()
    data = png_bytes(72, 88, seed=6)
    first = served.upload(project, data, "cat.png")
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["width"], body["height"]) == (88, 72)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    files = all_files(served.config.images_dir)
    assert len(files) == 1 and files[0].endswith(f"{body['sha256']}.png")
    with Unchanged(served, project):
        again = served.upload(project, data, "cat-again.png")
        assert again.status_code == 200, again.text
        assert again.json()["id"] == body["id"]
    assert image_rows(served, project) == [(body["id"], body["sha256"])]
    answer = served.client.get(f"/api/images/{body['id']}/file", headers=served.auth())
    assert answer.status_code == 200 and answer.content == data


def test_text_is_refused_even_after_ultralytics_patched_pillow(served: Served) -> None:
    """Ultralytics replaces PIL.Image.open on import; uploads must still answer 415."""
    pytest.importorskip("ultralytics")
    import ultralytics.utils.patches  # noqa: F401  (the patch is applied on import)

    project = served.project()
    with Unchanged(served, project):
        answer = served.upload(project, b"hello, not a png", "a.png")
        refused(answer, 415, "not an image")
