"""The object-proposal head: targets, decoding, training from boxes, loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import segany
from segany.errors import CheckpointError, InputError
from segany.models.prompt_head import PromptHead, PromptHeadConfig, decode_boxes
from segany.prompt_heads import load_prompt_head
from segany.train.prompt_head import (
    HeadExample,
    HeadTrainConfig,
    box_recall,
    head_loss,
    head_targets,
    train_prompt_head,
)
from segany.weights import save_state_dict_file

EDGES = (2.0, 6.0)


def _perfect(boxes: torch.Tensor, size: tuple[int, int], cell: float):
    """Head outputs that decode to the targets exactly."""
    heat, reg, at = head_targets(boxes, size, cell, EDGES)
    logits = torch.where(at, torch.tensor(9.0), torch.tensor(-9.0))
    params = reg.clone()
    params[:, :2] = torch.logit(reg[:, :2].clamp(1e-5, 1 - 1e-5))
    return logits[None], params[None], heat, reg, at


def test_targets_decode_back_to_the_boxes() -> None:
    boxes = torch.tensor([[10.0, 12.0, 30.0, 40.0], [100.0, 20.0, 230.0, 200.0],
                          [60.0, 100.0, 110.0, 160.0]])  # fmt: skip
    logits, params, heat, _, at = _perfect(boxes, (16, 16), 16.0)
    assert heat.max() == 1.0 and int(at.sum()) == 3
    slots = at.flatten(1).any(1).tolist()
    assert slots == [True, True, True]  # small, medium, large: one slot each
    found, scores = decode_boxes(logits, params, 16.0, 0.5, 10)[0]
    assert len(found) == 3
    for box in boxes:
        assert torch.isclose(found, box, atol=1e-3).all(1).any()


def test_nested_boxes_with_one_centre_use_different_slots() -> None:
    whole = torch.tensor([[0.0, 0.0, 160.0, 160.0]])
    part = torch.tensor([[64.0, 64.0, 96.0, 96.0]])  # same centre, a fifth of the size
    logits, params, _, _, at = _perfect(torch.cat([whole, part]), (16, 16), 16.0)
    assert int(at.sum()) == 2
    found, _ = decode_boxes(logits, params, 16.0, 0.5, 10)[0]
    assert len(found) == 2


def test_loss_is_lower_for_the_right_answer() -> None:
    boxes = torch.tensor([[10.0, 12.0, 30.0, 40.0]])
    logits, params, heat, reg, at = _perfect(boxes, (8, 8), 16.0)
    right = head_loss(logits, params, heat[None], reg[None], at[None])
    wrong = head_loss(-logits, params + 1, heat[None], reg[None], at[None])
    assert right < 0.01 < wrong


def test_training_from_boxes_finds_them(tmp_path: Path) -> None:
    """A head on embeddings that mark the objects learns to find them."""
    generator = torch.Generator().manual_seed(0)
    examples = []
    for _ in range(24):
        embedding = torch.randn((1, 8, 8, 8), generator=generator) * 0.1
        x0, y0 = (torch.randint(0, 5, (2,), generator=generator) * 16).tolist()
        side = int(torch.randint(1, 4, (1,), generator=generator)) * 16
        embedding[0, 0, y0 // 16 : (y0 + side) // 16, x0 // 16 : (x0 + side) // 16] = 2.0
        box = torch.tensor([[x0, y0, x0 + side, y0 + side]], dtype=torch.float32)
        examples.append(HeadExample(embedding.to(torch.bfloat16), box))
    rows: list[dict[str, float]] = []
    head = train_prompt_head(examples, 128, HeadTrainConfig(epochs=60, batch_size=8, hidden=16),
                             progress=False, log=rows.append)  # fmt: skip
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    recall = box_recall(head, examples, 128, conf=0.3)
    assert recall["recall@0.5"] >= 0.9
    path = save_state_dict_file(head.state_dict(), tmp_path / "head.safetensors")
    again = load_prompt_head(path=path)
    with torch.no_grad():
        x = examples[0].embedding.float()
        assert torch.equal(again(x)[0], head(x)[0])


def test_loading_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no trained prompt head"):
        load_prompt_head("mobile_sam")
    not_head = save_state_dict_file({"w": torch.zeros(2)}, tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="not a prompt head"):
        load_prompt_head(path=not_head)
    head = PromptHead(PromptHeadConfig(in_chans=4, hidden=4))
    state = head.state_dict()
    state["boxes.weight"] = torch.zeros((3, 4, 1, 1))
    bad = save_state_dict_file(state, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="not a prompt head"):
        load_prompt_head(path=bad)


def test_head_cost_is_small_next_to_the_encoder() -> None:
    """FLOPs, not time: the head's convolutions against the encoder's matmuls."""
    model = segany.load_model("segany_shapes", pretrained=False)
    head = PromptHead(PromptHeadConfig(in_chans=model.prompt_encoder.embed_dim))
    cells = int(np.prod(model.prompt_encoder.image_embedding_size))
    head_macs = sum(p.numel() for p in head.parameters()) * cells
    encoder_params = sum(p.numel() for p in model.image_encoder.parameters())
    tokens = (model.image_size // 16) ** 2
    assert head_macs < 0.1 * encoder_params * tokens
