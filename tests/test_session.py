"""Click sessions (segany.session): the progressive merge of a corrective click's answer,
and a session's clicks, prompts, merging and undo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch

import segany
from segany.models import build_sam
from segany.predictor import Prediction
from segany.session import ClickSession, progressive_merge
from tests.helpers import TINY


def _mask(*rects: tuple[int, int, int, int], shape: tuple[int, int] = (20, 30)) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in rects:
        out[y0:y1, x0:x1] = True
    return out


def test_a_positive_click_adds_only_the_part_around_it() -> None:
    previous = _mask((2, 2, 10, 10))
    # the answer adds two regions and drops a corner the user had accepted
    new = _mask((2, 2, 10, 10), (10, 2, 14, 6), (20, 12, 26, 18))
    new[2:4, 2:4] = False
    merged = progressive_merge(previous, new, (12.5, 3.5), 1)
    assert merged is not None
    assert np.array_equal(merged, _mask((2, 2, 10, 10), (10, 2, 14, 6)))


def test_a_negative_click_removes_only_the_part_around_it() -> None:
    previous = _mask((2, 2, 12, 10), (20, 12, 26, 18))
    new = _mask((2, 2, 8, 10), (22, 14, 24, 16), (0, 0, 2, 2))  # also shrinks the other part
    merged = progressive_merge(previous, new, (10.2, 5.0), 0)
    assert merged is not None
    assert np.array_equal(merged, _mask((2, 2, 8, 10), (20, 12, 26, 18)))


def test_a_merged_change_reaches_a_few_depths_from_the_click() -> None:
    previous = _mask((2, 2, 10, 10), shape=(20, 60))
    new = _mask((2, 2, 10, 10), (10, 4, 58, 8), shape=(20, 60))  # a long bar leaks out
    whole = progressive_merge(previous, new, (11.5, 5.5), 1, reach=None)
    assert whole is not None and np.array_equal(whole, new)
    near = progressive_merge(previous, new, (11.5, 5.5), 1)  # depth 2 px: reach 10 px
    assert near is not None and near[5, 20] and not near[5, 24] and not near[5, 50]
    assert np.array_equal(near & ~new, np.zeros_like(near)) and (near & previous).sum() == 64


def test_an_answer_that_ignores_its_click_is_not_merged() -> None:
    previous = _mask((2, 2, 10, 10))
    assert progressive_merge(previous, previous, (15.0, 5.0), 1) is None
    assert progressive_merge(previous, previous, (5.0, 5.0), 0) is None
    with pytest.raises(segany.InputError, match="outside"):
        progressive_merge(previous, previous, (30.0, 5.0), 1)
    with pytest.raises(segany.InputError, match="outside"):
        progressive_merge(previous, previous, (-0.5, 5.0), 0)


@dataclass
class _Scripted:
    """A predictor stand-in answering each call with the next of ``answers`` (3 masks
    each, the first best-scored), recording the prompts it was given."""

    answers: list[np.ndarray]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def predict(self, **prompt: Any) -> Prediction:
        masks = self.answers[len(self.calls)]
        self.calls.append(prompt)
        logits = np.full((3, 8, 8), float(len(self.calls)), dtype=np.float32)
        return Prediction(np.stack([masks] * 3), np.array([0.9, 0.5, 0.1]), logits)


def test_a_session_merges_corrections_and_undoes_them() -> None:
    first = _mask((2, 2, 10, 10))
    wild = _mask((2, 2, 10, 10), (10, 2, 14, 6), (20, 12, 26, 18))  # adds a stray part
    ignored = _mask((0, 0, 3, 3))  # does not hold the next click
    script = _Scripted([first, wild, ignored])
    session = ClickSession(script)  # type: ignore[arg-type]
    with pytest.raises(segany.InputError, match="positive"):
        session.click(5, 5, positive=False)
    assert np.array_equal(session.click(5, 5).mask, first)
    assert "mask_input" not in script.calls[0] and script.calls[0]["multimask"]
    session.click(12, 3)
    assert np.array_equal(
        session.mask, _mask((2, 2, 10, 10), (10, 2, 14, 6))
    )  # the stray part left out
    call = script.calls[1]
    assert call["points"] == [(5.0, 5.0), (12.0, 3.0)] and call["labels"] == [1, 1]
    assert call["mask_input"].shape == (1, 8, 8) and call["mask_input"].max() == 1.0
    session.click(25, 15, positive=False)  # the answer ignores it: the mask stays
    assert np.array_equal(session.mask, _mask((2, 2, 10, 10), (10, 2, 14, 6)))
    assert session.logits is not None and session.logits.max() == 3.0  # the model's memory
    assert session.labels == [1, 1, 0]
    session.undo()
    assert np.array_equal(
        session.mask, _mask((2, 2, 10, 10), (10, 2, 14, 6))
    ) and session.labels == [1, 1]
    session.undo().undo()
    assert session.mask is None and session.points == []
    with pytest.raises(segany.InputError, match="undo"):
        session.undo()


def test_a_session_without_merging_keeps_the_answers() -> None:
    first, wild = _mask((2, 2, 10, 10)), _mask((10, 2, 14, 6), (20, 12, 26, 18))
    session = ClickSession(_Scripted([first, wild]), merge=False)  # type: ignore[arg-type]
    session.click(5, 5).click(12, 3)
    assert np.array_equal(session.mask, wild)


def test_a_session_on_a_real_predictor() -> None:
    torch.manual_seed(0)
    predictor = segany.Predictor(build_sam(TINY).eval())
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    predictor.set_image(image)
    session = ClickSession(predictor).click(20, 20).click(40, 30, positive=False)
    assert session.mask is not None and session.mask.shape == (48, 64)
    assert session.logits is not None and session.logits.ndim == 2
    unmerged = ClickSession(predictor, merge=False).click(20, 20).click(40, 30, positive=False)
    direct = predictor.predict(
        points=[[20, 20], [40, 30]], labels=[1, 0], mask_input=unmerged.history[0][1][None]
    )
    assert np.array_equal(unmerged.mask, direct.masks[int(np.argmax(direct.scores))])
