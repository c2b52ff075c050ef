"""segany's Predictor equals the official SamPredictor on the same random weights.

Both sides load one checkpoint saved in the official format with every tensor
randomised. Compared on logits and scores, not only on thresholded masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import segany
from segany.models import TinyViTConfig
from tests.reference.official import SMALL_VIT, official_sam, random_checkpoint

CONFIGS = {
    "small_vit": SMALL_VIT,
    "sam_vit_b": segany.get_spec("sam_vit_b").config,
    "mobile_sam": segany.get_spec("mobile_sam").config,
}
# (height, width): non-square both ways, large, tiny.
IMAGE_SIZES = [(480, 640), (1500, 1000), (32, 48)]

EMBED_TOL = 1e-4  # max |Δ| relative to the embedding's std
IOU_TOL = 1e-4
LOGIT_TOL = 1e-3  # max |Δ| of low-res logits relative to their std
MASK_FRACTION_TOL = 1e-4  # 0.01 % of pixels


def _image(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth structure plus noise so the encoder sees something image-like
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack(
        [(xx * 255 // max(width - 1, 1)), (yy * 255 // max(height - 1, 1)), (xx + yy) % 256], -1
    )
    noise = rng.integers(0, 60, (height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


# ViT-B at 1024 px: over a minute per image on one thread; it differs from the small ViT
# only in its config, so it runs in `make test-all`
_FULL = {"sam_vit_b"}


@pytest.fixture(
    scope="module",
    params=[pytest.param(n, marks=[pytest.mark.full] * (n in _FULL)) for n in CONFIGS],
)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """(official SamPredictor, segany Predictor) on one random checkpoint."""
    name = request.param
    config = CONFIGS[name]
    path = tmp_path_factory.mktemp(name) / f"{name}.pth"
    random_checkpoint(config, path, seed=1234)
    official = official_sam(config)
    official.load_state_dict(torch.load(path, weights_only=True))
    if isinstance(config.encoder, TinyViTConfig):
        from mobile_sam import SamPredictor  # type: ignore[import-untyped]
    else:
        from segment_anything import SamPredictor  # type: ignore[import-untyped]
    spec_name = None if name == "small_vit" else name
    if spec_name is None:
        ours_model = segany.models.build_sam(config)
        state = segany.weights.load_state_dict_file(path)
        segany.loading.load_weights(ours_model, state, name, str(path))
    else:
        ours_model = segany.load_model(checkpoint=path)  # architecture recognised from tensors
        assert ours_model.name == name
    return SamPredictor(official.eval()), segany.Predictor(ours_model)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / (np.abs(b).std() + 1e-12))


def _compare(official_out, ours: segany.Prediction) -> None:
    masks, iou, low_res = official_out
    assert ours.masks.shape == masks.shape
    assert ours.masks.dtype == bool
    assert np.abs(ours.scores - iou).max() <= IOU_TOL
    assert _rel(ours.low_res_logits, low_res) <= LOGIT_TOL
    differing = np.mean(ours.masks != masks)
    assert differing <= MASK_FRACTION_TOL, f"{differing:.6%} of mask pixels differ"


@pytest.mark.parametrize("size", IMAGE_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_equivalence(pair, size: tuple[int, int]) -> None:
    official, ours = pair
    height, width = size
    image = _image(height, width, seed=height * width)
    official.set_image(image)
    ours.set_image(image)

    # image embedding
    emb_official = official.get_image_embedding().numpy()
    emb_ours = ours.get_image_embedding().numpy()
    assert emb_ours.shape == emb_official.shape
    assert _rel(emb_ours, emb_official) <= EMBED_TOL

    points = np.array([[width * 0.3, height * 0.4], [width * 0.7, height * 0.6]])
    labels = np.array([1, 0])
    box = np.array([width * 0.1, height * 0.2, width * 0.8, height * 0.9])

    for multimask in (True, False):
        # positive + negative points
        expected = official.predict(points, labels, multimask_output=multimask)
        got = ours.predict(points=points, labels=labels, multimask=multimask)
        _compare(expected, got)
        assert got.masks.shape[0] == (3 if multimask else 1)
        # a box
        _compare(
            official.predict(box=box, multimask_output=multimask),
            ours.predict(box=box, multimask=multimask),
        )
        # box + points
        _compare(
            official.predict(points, labels, box=box, multimask_output=multimask),
            ours.predict(points=points, labels=labels, box=box, multimask=multimask),
        )

    # mask_input from a previous call (the best of three), refined with one more click
    first = ours.predict(points=points[:1], labels=labels[:1])
    previous = first.low_res_logits[int(np.argmax(first.scores))][None]
    _compare(
        official.predict(points, labels, mask_input=previous, multimask_output=False),
        ours.predict(points=points, labels=labels, mask_input=previous, multimask=False),
    )

    # many boxes at once, compared box by box with separate official calls
    rng = np.random.default_rng(7)
    x0 = rng.uniform(0, width * 0.5, 5)
    y0 = rng.uniform(0, height * 0.5, 5)
    boxes = np.stack([x0, y0, x0 + width * 0.4, y0 + height * 0.4], axis=1)
    ours.box_batch_size = 2  # exercise the batching across decoder calls
    many = ours.predict(box=boxes)
    ours.box_batch_size = 64
    assert many.masks.shape == (5, 3, height, width)
    for i, one_box in enumerate(boxes):
        single = segany.Prediction(many.masks[i], many.scores[i], many.low_res_logits[i])
        _compare(official.predict(box=one_box), single)


def test_embedding_cache_reuses_encoder() -> None:
    ours = segany.Predictor(segany.models.build_sam(SMALL_VIT))
    calls = []
    hook = ours.model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        a = _image(40, 30, seed=1)
        b = _image(40, 30, seed=2)
        ours.set_image(a)
        ours.set_image(b)
        ours.set_image(a.copy())  # same content, new array: served from the cache
        assert len(calls) == 2
    finally:
        hook.remove()


def test_official_checkpoint_file_roundtrip(tmp_path: Path) -> None:
    """A safetensors copy of an official-format checkpoint gives the same model."""
    path = random_checkpoint(CONFIGS["mobile_sam"], tmp_path / "m.pth", seed=3)
    model_pth = segany.load_model("mobile_sam", checkpoint=path)
    st = tmp_path / "m.safetensors"
    segany.weights.save_state_dict_file(model_pth.state_dict(), st)
    model_st = segany.load_model(checkpoint=st)
    for key, value in model_pth.state_dict().items():
        assert torch.equal(value, model_st.state_dict()[key]), key
