"""``segany everything``: inputs, formats, progress, resume after a kill, and error records.

Most tests replace ``MaskGenerator.generate`` by a fast synthetic one that finds the
coloured rectangles drawn into the test images, so the masks are known; one test runs the
real generator on a tiny random model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from segany.cli import everything as everything_cli
from segany.cli.main import main
from segany.data.rle import mask_to_rle
from segany.everything import MaskGenerator
from segany.models import build_sam
from tests.helpers import TINY

H, W = 24, 32


def _draw(path: Path, seed: int) -> None:
    """An image with 1-3 rectangles of distinct red values on a black background."""
    rng = np.random.default_rng(seed)
    image = np.zeros((H, W, 3), dtype=np.uint8)
    for k in range(1 + seed % 3):
        x0, y0 = int(rng.integers(0, W - 8)), int(rng.integers(0, H - 8))
        image[y0 : y0 + int(rng.integers(3, 8)), x0 : x0 + int(rng.integers(3, 8)), 0] = 50 * (
            k + 1
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def _true_masks(image: np.ndarray) -> list[np.ndarray]:
    """The masks the synthetic generator finds: one per non-zero red value."""
    return [image[..., 0] == v for v in sorted(set(np.unique(image[..., 0]).tolist()) - {0})]


def _fake_generate(
    self: MaskGenerator, image: Any, name: str | None = None
) -> list[dict[str, Any]]:
    records = []
    for i, mask in enumerate(_true_masks(np.asarray(image))):
        ys, xs = np.nonzero(mask)
        records.append(
            {
                "segmentation": mask_to_rle(mask),
                "area": int(mask.sum()),
                "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs)), int(np.ptp(ys))],
                "predicted_iou": 0.5 + 0.1 * i,
                "point_coords": [[float(xs[0]), float(ys[0])]],
                "stability_score": 0.97,
                "crop_box": [0, 0, W, H],
            }
        )
    return records


@pytest.fixture
def tiny_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Any, Any]]]:
    """Make the CLI load a tiny random model; yields the (name, checkpoint) of each load."""
    loads: list[tuple[Any, Any]] = []

    def load(name: Any, checkpoint: Any, mode: str = "exact") -> Any:
        assert mode in ("exact", "fast")
        loads.append((name, checkpoint))
        torch.manual_seed(0)
        return build_sam(TINY)

    monkeypatch.setattr(everything_cli, "_load_model", load)
    yield loads


@pytest.fixture
def fake_generate(monkeypatch: pytest.MonkeyPatch, tiny_model: list) -> list[int]:
    """Use the synthetic generator; yields the list of image widths it was called on."""
    calls: list[int] = []

    def generate(self: MaskGenerator, image: Any, name: str | None = None) -> list[dict[str, Any]]:
        calls.append(1)
        return _fake_generate(self, image)

    monkeypatch.setattr(MaskGenerator, "generate", generate)
    return calls


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Six images in nested folders, two with the same name in different folders."""
    root = tmp_path / "in"
    for seed, rel in enumerate(["a.png", "b.jpg", "sub/a.png", "sub/c.png", "sub/deep/d.png"]):
        _draw(root / rel, seed)
    _draw(root / "e.bmp", 5)
    (root / "notes.txt").write_text("not an image, skipped in folders")
    return root


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_sa1b_outputs_round_trip(
    images: Path, tmp_path: Path, fake_generate: list, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["everything", str(images), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "img/s" in captured.err  # the progress bar
    assert "segmented 6 image(s)" in captured.out
    files = sorted(_tree(out))
    assert files == [
        "a.json", "b.json", "e.json", "errors.jsonl",
        "sub/a.json", "sub/c.json", "sub/deep/d.json",
    ]  # fmt: skip
    seen_ids = []
    for name in files:
        if not name.endswith(".json"):
            continue
        data = json.loads((out / name).read_text())
        info = data["image"]
        seen_ids.append(info["image_id"])
        assert (info["width"], info["height"]) == (W, H)
        image = np.asarray(Image.open(images / info["file_name"]).convert("RGB"))
        expected = _true_masks(image)
        assert len(data["annotations"]) == len(expected) > 0
        for ann, mask in zip(data["annotations"], expected, strict=True):
            rle = ann["segmentation"]
            assert isinstance(rle["counts"], str)
            decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
            np.testing.assert_array_equal(decoded.astype(bool), mask)
    assert sorted(seen_ids) == [1, 2, 3, 4, 5, 6]
    assert (out / "errors.jsonl").read_text() == ""

    # A rerun skips everything and does not even load the model.
    calls = len(fake_generate)
    assert main(["everything", str(images), "-o", str(out), "--quiet"]) == 0
    assert len(fake_generate) == calls


def test_coco_output_loads_in_pycocotools(
    images: Path, tmp_path: Path, fake_generate: list
) -> None:
    out = tmp_path / "out"
    assert main(["everything", str(images), "-o", str(out), "--format", "coco", "--quiet"]) == 0
    coco = COCO(str(out / "coco_instances.json"))
    assert coco.getCatIds() == [1]
    assert len(coco.getImgIds()) == 6
    ann_ids = coco.getAnnIds()
    assert len(ann_ids) == len(set(ann_ids))
    for img in coco.loadImgs(coco.getImgIds()):
        image = np.asarray(Image.open(images / img["file_name"]).convert("RGB"))
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        expected = _true_masks(image)
        assert len(anns) == len(expected)
        for ann, mask in zip(sorted(anns, key=lambda a: a["id"]), expected, strict=True):
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), mask)
            assert ann["score"] == ann["predicted_iou"]


def test_png_label_maps_rederive_masks(images: Path, tmp_path: Path, fake_generate: list) -> None:
    out = tmp_path / "out"
    assert main(["everything", str(images / "sub"), "-o", str(out), "--format", "png"]) == 0
    for rel in ["a", "c", "deep/d"]:
        labels = np.asarray(Image.open(out / f"{rel}.labels.png"))
        image = np.asarray(Image.open(images / "sub" / f"{rel}.png").convert("RGB"))
        assert labels.shape == (H, W)
        for k, mask in enumerate(_true_masks(image), start=1):
            np.testing.assert_array_equal(labels == k, mask)  # the rectangles are disjoint
        assert Image.open(out / f"{rel}.overlay.png").size == (W, H)


@pytest.mark.parametrize("fmt", ["sa1b", "coco", "png"])
def test_killed_run_resumes_to_clean_result(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: list, fmt: str
) -> None:
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    calls: list[str] = []

    def dying(self: MaskGenerator, image: Any, name: str | None = None) -> list[dict[str, Any]]:
        calls.append("x")
        if len(calls) == 4:  # half-written file, then killed (Ctrl-C) on image 4
            (resumed / ".c.json.deadbeef.tmp").write_text('{"image": {"ima')
            raise KeyboardInterrupt
        return _fake_generate(self, image)

    monkeypatch.setattr(MaskGenerator, "generate", dying)
    args = ["everything", str(images), "--format", fmt, "--quiet"]
    assert main([*args, "-o", str(resumed)]) == 130
    partial = _tree(resumed)
    assert "coco_instances.json" not in partial
    assert ".c.json.deadbeef.tmp" in partial
    assert sum(name.endswith(".json") and "tmp" not in name for name in partial) == 3

    calls.clear()
    monkeypatch.setattr(MaskGenerator, "generate", _counting(calls))
    assert main([*args, "-o", str(resumed)]) == 0
    assert len(calls) == 3  # only the unfinished images are redone
    assert main([*args, "-o", str(clean)]) == 0
    assert _tree(resumed) == _tree(clean)
    if fmt == "coco":
        data = json.loads((clean / "coco_instances.json").read_text())
        ids = [a["id"] for a in data["annotations"]]
        assert ids == list(range(1, len(ids) + 1))
        assert sorted(i["id"] for i in data["images"]) == [1, 2, 3, 4, 5, 6]


def _counting(calls: list[str]) -> Any:
    def generate(self: MaskGenerator, image: Any, name: str | None = None) -> list[dict[str, Any]]:
        calls.append("x")
        return _fake_generate(self, image)

    return generate


def test_unreadable_image_is_recorded_and_batch_continues(
    images: Path, tmp_path: Path, fake_generate: list, capsys: pytest.CaptureFixture[str]
) -> None:
    (images / "broken.png").write_text("this is text, not a PNG")
    out = tmp_path / "out"
    assert main(["everything", str(images), "-o", str(out), "--format", "coco"]) == 1
    err = capsys.readouterr().err
    assert f"segany: 1 of 7 images failed, see {out / 'errors.jsonl'}" in err.splitlines()
    lines = (out / "errors.jsonl").read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["file_name"] == "broken.png"
    assert record["file"] == str((images / "broken.png").resolve())
    assert "not an image" in record["error"]
    coco = json.loads((out / "coco_instances.json").read_text())
    assert len(coco["images"]) == 6  # the others are done
    assert "broken.png" not in {i["file_name"] for i in coco["images"]}

    # Fixed file: a rerun does only that image and clears the error record.
    _draw(images / "broken.png", 9)
    calls = len(fake_generate)
    assert main(["everything", str(images), "-o", str(out), "--format", "coco", "--quiet"]) == 0
    assert len(fake_generate) == calls + 1
    assert (out / "errors.jsonl").read_text() == ""


def test_globs_files_and_duplicates(images: Path, tmp_path: Path, fake_generate: list) -> None:
    out = tmp_path / "out"
    pattern = str(images / "**" / "a.png")
    args = ["everything", pattern, str(images / "a.png"), str(images / "e.bmp"), "-o", str(out)]
    assert main([*args, "--quiet"]) == 0
    assert sorted(_tree(out)) == ["a.json", "e.json", "errors.jsonl", "sub/a.json"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "tiff"], "invalid choice"),
        (["--points-per-side", "x"], "invalid int"),
        (["{empty}"], "no image files found"),
        (["{missing}"], "does not exist"),
        (["{nomatch}"], "no files match"),
    ],
)
def test_usage_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_model: list, args: list, message: str
) -> None:
    (tmp_path / "empty").mkdir()
    fill = {
        "empty": str(tmp_path / "empty"),
        "missing": str(tmp_path / "missing.png"),
        "nomatch": str(tmp_path / "*.jpg"),
    }
    args = [a.format(**fill) for a in args]
    if not any(a.startswith(str(tmp_path)) for a in args):
        args.append(str(tmp_path / "empty"))
    assert main(["everything", *args, "-o", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("segany: error: "), lines
    assert message in lines[0]
    assert tiny_model == []  # failed before loading a model


def test_missing_checkpoint_is_a_usage_error(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["everything", str(images / "a.png"), "-o", str(tmp_path / "o")]
    assert main([*args, "--checkpoint", str(tmp_path / "nope.pth")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_end_to_end_with_real_generator(images: Path, tmp_path: Path, tiny_model: list) -> None:
    out = tmp_path / "out"
    args = [
        "everything", str(images / "a.png"), str(images / "b.jpg"), "-o", str(out),
        "--points-per-side", "2", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
        "--model", "tiny", "--quiet",
    ]  # fmt: skip
    assert main(args) == 0
    assert tiny_model == [("tiny", None)]
    total = 0
    for name in ["a.json", "b.json"]:
        data = json.loads((out / name).read_text())
        total += len(data["annotations"])
        for ann in data["annotations"]:
            rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
            assert int(mask_utils.area(rle)) == ann["area"]
            assert mask_utils.decode(rle).shape == (H, W)
    assert total > 0


def test_the_bundled_demo_model_says_what_it_is(
    images: Path,
    tmp_path: Path,
    fake_generate: list,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a user's images the bundled weights (and only they) bring one line naming the
    command that gets a published model."""
    bundled = build_sam(TINY)
    bundled.name, bundled.weights_sha256 = "segany_shapes", "0" * 64
    monkeypatch.setattr(everything_cli, "_load_model", lambda *args, **kwargs: bundled)
    assert main(["everything", str(images / "a.png"), "-o", str(tmp_path / "one")]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "demo model" in line]
    assert len(notes) == 1 and "--model mobile_sam" in notes[0]
    bundled.weights_sha256 = None  # the same network with weights of the user's own
    assert main(["everything", str(images / "b.jpg"), "-o", str(tmp_path / "two")]) == 0
    assert "demo model" not in capsys.readouterr().err
