"""The CLI with the real loader: bad checkpoints and odd images end in one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import segany
from segany.cli.main import main


@pytest.fixture(scope="module")
def mobile_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "mobile.pth"
    torch.save(segany.load_model("mobile_sam", pretrained=False).state_dict(), path)
    return path


def _image(tmp_path: Path, mode: str) -> Path:
    array = np.random.default_rng(0).integers(0, 255, (40, 60, 4), dtype=np.uint8)
    path = tmp_path / f"img_{mode}.png"
    Image.fromarray(array, "RGBA").convert(mode).save(path)
    return path


def _run_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("segany: error: ")
    assert "Traceback" not in err
    return err


def test_truncated_checkpoint(tmp_path, mobile_pth, capsys) -> None:
    cut = tmp_path / "cut.pth"
    cut.write_bytes(mobile_pth.read_bytes()[:100_000])
    err = _run_error(
        capsys, ["segment", str(_image(tmp_path, "RGB")), "--point", "5,5",
                 "--checkpoint", str(cut), "-o", str(tmp_path / "o")],
    )  # fmt: skip
    assert "truncated" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_checkpoint_of_another_model(tmp_path, mobile_pth, capsys) -> None:
    err = _run_error(
        capsys, ["segment", str(_image(tmp_path, "RGB")), "--point", "5,5", "--model",
                 "sam_vit_b", "--checkpoint", str(mobile_pth), "-o", str(tmp_path / "o")],
    )  # fmt: skip
    assert "does not fit model 'sam_vit_b'" in err and "looks like a 'mobile_sam'" in err


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_grayscale_rgba_palette_images_are_converted(tmp_path, mobile_pth, capsys, mode) -> None:
    out = tmp_path / "out"
    argv = ["segment", str(_image(tmp_path, mode)), "--point", "30,20",
            "--checkpoint", str(mobile_pth), "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert Image.open(out / "overlay.png").size == (60, 40)
    assert Image.open(out / "mask_0.png").size == (60, 40)
