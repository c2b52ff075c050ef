"""ONNX export: ONNX Runtime (native and onnxruntime-web) matches the torch exact path."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import segany
from segany.cli.main import main
from segany.engine.onnx_backend import OnnxSam, to_point_format
from segany.engine.onnx_export import OnnxDecoder, export_onnx
from segany.errors import CheckpointError, InputError
from segany.models import build_sam
from segany.registry import get_spec
from segany.weights import save_state_dict_file
from tests.helpers import randomize_state_dict

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "web" / "tools" / "run_decoder.mjs"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[segany.models.Sam, Path]:
    """The segany_shapes architecture with random weights, exported once."""
    torch.manual_seed(0)
    model = build_sam(get_spec("segany_shapes").config)
    model.load_state_dict(randomize_state_dict(model.state_dict(), seed=11))
    model.name = "segany_shapes"
    out = tmp_path_factory.mktemp("onnx")
    export_onnx(model, out)
    return model.eval(), out


def _scene() -> np.ndarray:
    from segany.data.scenes import SceneConfig, generate_scene

    return generate_scene(4, SceneConfig(size=(300, 420))).image


def _decoder_inputs(model, batch: int, points: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    channels = model.prompt_encoder.embed_dim
    side = model.prompt_encoder.image_embedding_size[0]
    low = model.prompt_encoder.mask_input_size[0]
    labels = torch.randint(0, 2, (batch, points), generator=generator).float()
    labels[:, -1] = -1  # SAM's padding point
    return {
        "image_embeddings": torch.randn((1, channels, side, side), generator=generator),
        "point_coords": torch.rand((batch, points, 2), generator=generator) * model.image_size,
        "point_labels": labels,
        "mask_input": torch.randn((batch, 1, low, low), generator=generator),
        "has_mask_input": (torch.arange(batch) % 2).float(),
    }


def test_files_and_metadata(exported) -> None:
    model, out = exported
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["input_size"] == model.image_size and meta["model"] == "segany_shapes"
    assert meta["embedding"] == [128, 32, 32] and meta["low_res_size"] == 128
    assert len(meta["model_sha256"]) == 64 and set(meta["files"]) == {
        "encoder.onnx",
        "decoder.onnx",
    }
    with pytest.raises(InputError, match="--overwrite"):
        export_onnx(model, out)


def test_onnxruntime_matches_torch_exact(exported) -> None:
    import onnxruntime as ort

    model, out = exported
    image = torch.randn((1, 3, model.image_size, model.image_size))
    with torch.no_grad():
        want = model.image_encoder(image)
    got = ort.InferenceSession(str(out / "encoder.onnx")).run(None, {"image": image.numpy()})[0]
    assert np.abs(got - want.numpy()).max() <= 1e-3 * float(want.std())
    session = ort.InferenceSession(str(out / "decoder.onnx"))
    for batch, points in ((1, 2), (5, 4)):  # dynamic numbers of prompts and points
        feeds = _decoder_inputs(model, batch, points, seed=batch)
        with torch.no_grad():
            masks, iou = OnnxDecoder(model)(**feeds)
        got_masks, got_iou = session.run(None, {k: v.numpy() for k, v in feeds.items()})
        assert got_masks.shape == (batch, 4, 128, 128)
        assert np.abs(got_masks - masks.numpy()).max() <= 1e-3
        assert np.abs(got_iou - iou.numpy()).max() <= 1e-3


def test_point_format_decoder_equals_prompt_encoder_path(exported) -> None:
    """SAM's point format (boxes as labelled corners, explicit padding) = the torch path."""
    model, _ = exported
    generator = torch.Generator().manual_seed(3)
    side = model.prompt_encoder.image_embedding_size[0]
    features = torch.randn((1, 128, side, side), generator=generator)
    coords = torch.rand((3, 2, 2), generator=generator) * 400
    labels = torch.tensor([[1, 0], [1, 1], [0, 1]])
    boxes = torch.tensor([[10.0, 20, 200, 300], [50, 60, 90, 100], [0, 0, 511, 511]])
    masks = torch.randn((3, 1, 128, 128), generator=generator)
    decoder = OnnxDecoder(model)
    for use_boxes, use_masks in ((False, False), (True, False), (True, True)):
        box = boxes if use_boxes else None
        mask = masks if use_masks else None
        with torch.no_grad():
            want, want_iou = segany.engine.decode_prompts(
                model, features, coords, labels, box, mask, False
            )
            xy, kinds = to_point_format(coords, labels, box)
            has = torch.ones(3) if use_masks else torch.zeros(3)
            got, got_iou = decoder(
                features, torch.from_numpy(xy), torch.from_numpy(kinds),
                masks if use_masks else torch.zeros_like(masks), has,
            )  # fmt: skip
        assert torch.allclose(got[:, :1], want, atol=1e-4)
        assert torch.allclose(got_iou[:, :1], want_iou, atol=1e-5)


def test_predictor_on_the_onnx_backend(exported) -> None:
    model, out = exported
    image = _scene()
    reference = segany.Predictor(model)
    backend = segany.Predictor(OnnxSam(out))
    reference.set_image(image)
    backend.set_image(image)
    prompts = [
        {"points": [[100, 80]], "labels": [1]},
        {"points": [[100, 80], [200, 150]], "labels": [1, 0]},
        {"box": [[20, 30, 200, 210], [150, 100, 400, 290]]},
        {"box": [30, 40, 300, 250], "points": [[100, 100]], "labels": [1]},
    ]
    for prompt in prompts:
        want = reference.predict(**prompt, return_logits=True)
        got = backend.predict(**prompt, return_logits=True)
        assert np.abs(got.low_res_logits - want.low_res_logits).max() <= 1e-3
        assert np.abs(got.scores - want.scores).max() <= 1e-3
    first = reference.predict(points=[[100, 80]], labels=[1])
    again = backend.predict(points=[[100, 80]], labels=[1], mask_input=first.low_res_logits[:1])
    want = reference.predict(points=[[100, 80]], labels=[1], mask_input=first.low_res_logits[:1])
    assert np.abs(again.low_res_logits - want.low_res_logits).max() <= 1e-3


def test_onnxruntime_web_runs_the_decoder(exported, tmp_path: Path) -> None:
    """The browser runtime (onnxruntime-web, WebAssembly) under Node gives the same logits."""
    model, out = exported
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the onnxruntime-web test"
    assert (ROOT / "web" / "node_modules" / "onnxruntime-web").is_dir(), "run: make web"
    feeds = _decoder_inputs(model, batch=3, points=3, seed=7)
    given = {k: {"dims": list(v.shape), "data": v.flatten().tolist()} for k, v in feeds.items()}
    (tmp_path / "in.json").write_text(json.dumps(given))
    subprocess.run(
        [node, str(RUNNER), str(out / "decoder.onnx"), str(tmp_path / "in.json"),
         str(tmp_path / "out.json")],
        check=True, cwd=ROOT / "web", timeout=300,
    )  # fmt: skip
    result = json.loads((tmp_path / "out.json").read_text())
    with torch.no_grad():
        masks, iou = OnnxDecoder(model)(**feeds)
    got = np.array(result["low_res_masks"]["data"]).reshape(result["low_res_masks"]["dims"])
    assert got.shape == tuple(masks.shape)
    assert np.abs(got - masks.numpy()).max() <= 1e-3
    got_iou = np.array(result["iou_predictions"]["data"]).reshape(iou.shape)
    assert np.abs(got_iou - iou.numpy()).max() <= 1e-3


def test_tampered_files_are_refused(exported, tmp_path: Path) -> None:
    _, out = exported
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with (copy / "decoder.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(CheckpointError, match="sha256"):
        OnnxSam(copy)
    with pytest.raises(InputError, match="metadata.json"):
        OnnxSam(tmp_path)


def test_cli_export(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    model = build_sam(get_spec("segany_shapes").config)
    checkpoint = tmp_path / "shapes.safetensors"
    save_state_dict_file(model.state_dict(), checkpoint)
    out = tmp_path / "exported"
    argv = ["export", "onnx", "--checkpoint", str(checkpoint), "-o", str(out)]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "segany_shapes"
    assert main(argv) == 2  # never overwritten silently
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert main(["export", "onnx", "--model", "nope", "-o", str(out)]) == 2


def test_folded_decoder_on_mobile_sam_blob_weights(tmp_path: Path) -> None:
    """On MobileSAM's architecture (256 wide, 8 heads) with the structured random weights of
    the parity tests, the exported graph's masks are the official decoder's: the folded
    attention and matrix upscaling change rounding only. Up to 20 points (more than the
    16 tokens where folding stops paying) stay equal too."""
    import onnxruntime as ort

    from tests.everything.structured import blob_models, scene

    official, ours = blob_models(  # as tests/everything/test_parity.py's MobileSAM case
        get_spec("mobile_sam").config,
        tmp_path / "blob.pth",
        areas=(0.004, 0.012, 0.035),
        frequency=1.5,
        sharpness=0.5,
    )
    export_onnx(ours.eval(), tmp_path / "onnx")
    session = ort.InferenceSession(str(tmp_path / "onnx" / "decoder.onnx"))
    generator = torch.Generator().manual_seed(5)
    side = ours.prompt_encoder.image_embedding_size[0]
    image = torch.from_numpy(scene(200, 300, seed=5)).permute(2, 0, 1)[None].float()
    image = torch.nn.functional.interpolate(image, size=(683, 1024), mode="bilinear")
    with torch.no_grad():  # a real (blob-scaled) embedding of a generated scene
        embedding = official.image_encoder(official.preprocess(image))
    ious = []
    for points in (2, 3, 6, 21):
        coords = torch.rand((4, points, 2), generator=generator) * torch.tensor([1024, 683])
        labels = torch.randint(0, 2, (4, points), generator=generator).float()
        labels[:, 0], labels[:, -1] = 1, -1
        with torch.no_grad():
            # the official encoder appends the padding point itself
            prompt = (coords[:, :-1], labels[:, :-1])
            sparse, dense = official.prompt_encoder(points=prompt, boxes=None, masks=None)
            want, want_iou = official.mask_decoder.predict_masks(
                embedding, official.prompt_encoder.get_dense_pe(), sparse, dense
            )
        feeds = {
            "image_embeddings": embedding.numpy(),
            "point_coords": coords.numpy(),
            "point_labels": labels.numpy(),
            "mask_input": np.zeros((4, 1, 4 * side, 4 * side), np.float32),
            "has_mask_input": np.zeros(4, np.float32),
        }
        got, got_iou = session.run(None, feeds)
        assert np.abs(got_iou - want_iou.numpy()).max() <= 1e-4
        scale = float(want.abs().max())
        assert np.abs(got - want.numpy()).max() <= 1e-4 * scale
        pixels = (4 * side) ** 2
        for a, b in zip(
            got.reshape(-1, pixels) > 0, want.numpy().reshape(-1, pixels) > 0, strict=True
        ):
            if a.any() or b.any():
                ious.append((a & b).sum() / (a | b).sum())
    assert len(ious) >= 24 and min(ious) >= 0.99  # 30 of the 64 masks are non-empty
