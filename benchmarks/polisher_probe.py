"""Probe: a learnt full-resolution polish after the graph cut (a negative result).

Does a small U-Net that sees each snapped mask up close fix what GrabCut gets wrong
(rings' holes, thin strokes past a colour change, textured fills)? Per mask, a square
window around the graph cut's region (its longer side x 1.2 + 8 px) is resized to 64x64
and the net reads the colours, the snapped mask, the model's mask before the cut, the
region and the clicks (8 channels) plus each pixel's colour distance to the mean of the
snapped mask and of the region's rest, and adds a residual logit to 4 x (2 x snapped - 1).

    collect N0 N1 OUT.npz   windows of training scenes [N0, N1) of base seed 21, every
                            mask of every prompt the evaluation uses (the default pipeline)
    fit OUT.pt A.npz ...    800 steps of 64 windows (boxes, and click masks whose window
                            IoU with the object is >= 0.5)
    eval N0 N1 OUT.json CKPT [--paste residual|logits]
                            held-out scenes' rows (segany.eval.promptable), polished

docs/training.md, "A learnt polish after the graph cut", has the result: in the window
it gains (tight box 0.739 -> 0.763), at full resolution on 20 held-out scenes it does not
(box 0.794 -> 0.796, 3 clicks 0.787 -> 0.783).

    .venv/bin/python benchmarks/polisher_probe.py collect 0 150 a.npz  # (two shards)
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import segany
from segany.data.masks import corrective_click, interior_point
from segany.data.scenes import EVAL_BASE_SEED, SceneDataset
from segany.eval.promptable import evaluate_scene, noisy_box
from segany.models.graph_cut import GraphCut
from segany.models.sam import Sam

S, BASE, SEED = 64, 4.0, 21
Region = tuple[int, int, int, int]


def window(region: Region) -> tuple[int, int, int]:
    left, top, right, bottom = region
    side = int(max(right - left + 1, bottom - top + 1) * 1.2) + 8
    cx, cy = (left + right + 1) / 2, (top + bottom + 1) / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def cut(array: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    height, width = array.shape[:2]
    out = np.zeros((side, side) + array.shape[2:], array.dtype)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(width, x0 + side), min(height, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = array[sy0:sy1, sx0:sx1]
    return out


def resized(array: np.ndarray, side: int) -> np.ndarray:
    mode = cv2.INTER_AREA if side > S else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(array, (S, S), interpolation=mode))


def inputs(image, raw, snapped, region, points, labels) -> np.ndarray:  # type: ignore[no-untyped-def]
    """8xSxS uint8: colour, snapped, raw, region, positive and negative click bumps."""
    x0, y0, side = window(region)
    inside = np.zeros(raw.shape, np.uint8)
    inside[region[1] : region[3] + 1, region[0] : region[2] + 1] = 255
    colour = resized(cut(image, x0, y0, side), side)
    planes = [colour[..., c] for c in range(3)]
    for plane in (snapped.astype(np.uint8) * 255, raw.astype(np.uint8) * 255, inside):
        planes.append(resized(cut(plane, x0, y0, side), side))
    bumps = np.zeros((2, S, S), np.float32)
    ys, xs = np.mgrid[0:S, 0:S] + 0.5
    for (x, y), label in zip(*(() if points is None else (points, labels)), strict=True):
        u, v = (x - x0) / side * S, (y - y0) / side * S
        k = 0 if label == 1 else 1
        bumps[k] = np.maximum(bumps[k], np.exp(-((xs - u) ** 2 + (ys - v) ** 2) / 4.5))
    return np.stack(planes + list((bumps * 255).astype(np.uint8)))


def block(c_in: int, c_out: int, dilation: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation)
    return nn.Sequential(conv, nn.GroupNorm(8, c_out), nn.GELU())


class Polisher(nn.Module):
    """A 4-level U-Net (32/48/64/96 wide, 0.64 M parameters): Bx8xSxS -> Bx1xSxS residual."""

    def __init__(self) -> None:
        super().__init__()
        self.e0 = nn.Sequential(block(10, 32), block(32, 32))
        self.e1 = nn.Sequential(nn.Conv2d(32, 48, 3, 2, 1), block(48, 48), block(48, 48))
        self.e2 = nn.Sequential(nn.Conv2d(48, 64, 3, 2, 1), block(64, 64), block(64, 64, 2))
        self.e3 = nn.Sequential(
            nn.Conv2d(64, 96, 3, 2, 1), block(96, 96), block(96, 96, 2), block(96, 96, 4)
        )
        self.d2, self.d1 = block(160, 64), block(112, 48)
        self.d0 = nn.Sequential(block(80, 32), nn.Conv2d(32, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        colour, mask, region = x[:, :3], x[:, 3:4], x[:, 5:6]
        extra = []
        for weight in (mask, (1 - mask) * region):
            mean = (colour * weight).sum((2, 3), keepdim=True)
            mean = mean / weight.sum((2, 3), keepdim=True).clamp(min=1e-3)
            extra.append(((colour - mean) ** 2).sum(1, keepdim=True).sqrt())
        a = self.e0(torch.cat([x, *extra], 1))
        b = self.e1(a)
        c = self.e2(b)
        d = self.e3(c)

        def up(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, size=like.shape[-2:], mode="bilinear", align_corners=False)

        c = self.d2(torch.cat([up(d, c), c], 1))
        b = self.d1(torch.cat([up(c, b), b], 1))
        return self.d0(torch.cat([up(b, a), a], 1))


def load_model() -> Sam:
    """The bundled model, torch and OpenCV on one thread (two shards share the CPU)."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    return segany.load_model("segany_shapes")


def answer(stages, image, truth, prompt, multimask, sink):  # type: ignore[no-untyped-def]
    """One prompt through model, refiner, cut (and ranker); every mask's window to
    ``sink``; returns the best-scored snapped mask and its low-res logits."""
    predictor, cut_, ranker = stages
    points, labels, box, previous = prompt
    out = predictor.predict(points, labels, box, previous, multimask)
    snapped = np.stack([cut_(image, m, points, labels, box) for m in out.masks])
    for raw, snap in zip(out.masks, snapped, strict=True):
        region = cut_.region(raw, points, labels, box)
        if region is not None and snap.any():
            x0, y0, side = window(region)
            target = resized(cut(truth.astype(np.uint8) * 255, x0, y0, side), side)
            sink.append((inputs(image, raw, snap, region, points, labels), target, box is None))
    clicks = None if points is None else (points, labels)
    scores = ranker.rank(out.scores, out.masks, snapped, box, clicks) if multimask else out.scores
    best = int(np.argmax(scores))
    return snapped[best], out.low_res_logits[best]


def collect(n0: int, n1: int, out: str) -> None:
    predictor = segany.Predictor(load_model(), cache_size=0, graph_cut=None, ranker=None)
    stages = (predictor, GraphCut(), segany.load_ranker())
    scenes, sink = SceneDataset(n1, SEED), []  # type: ignore[var-annotated]
    for i in range(n0, n1):
        scene, rng = scenes[i], np.random.default_rng(SEED * 100_000 + i)
        image = scene.image
        predictor.set_image(image)
        for truth, box in zip(scene.masks, scene.boxes.astype(np.float64), strict=True):
            answer(stages, image, truth, (None, None, box, None), False, sink)
            noisy = noisy_box(box, truth.shape, rng)
            answer(stages, image, truth, (None, None, noisy, None), False, sink)
            yy, xx = np.nonzero(truth)
            pick = rng.integers(len(yy))
            click = np.array([[xx[pick] + 0.5, yy[pick] + 0.5]]), np.array([1])
            answer(stages, image, truth, (*click, None, None), True, sink)
            points, labels, previous = np.array([interior_point(truth)], float), np.array([1]), None
            for _ in range(3):
                prompt = (points, labels, None, previous)
                mask, logits = answer(stages, image, truth, prompt, True, sink)
                correction = corrective_click(truth, mask)
                if correction is None:
                    break
                points = np.vstack([points, [correction[0]]])
                labels, previous = np.append(labels, correction[1]), logits[None]
        print(i, len(sink), flush=True)
    x, y, click_ = zip(*sink, strict=True)
    np.savez_compressed(out, x=np.stack(x), y=np.stack(y), click=np.array(click_))


def fit(out: str, shards: list[str], steps: int = 800, batch: int = 64) -> None:
    torch.set_num_threads(2)
    data = [np.load(s) for s in shards]
    x, y = (np.concatenate([d[k] for d in data]) for k in ("x", "y"))
    click = np.concatenate([d["click"] for d in data])
    snap, truth = x[:, 3] > 127, y > 127
    overlap = (snap & truth).sum((1, 2)) / np.maximum((snap | truth).sum((1, 2)), 1)
    keep = ~click | (overlap >= 0.5)
    x_t, y_t = torch.from_numpy(x[keep]), torch.from_numpy(y[keep])
    torch.manual_seed(0)
    order = torch.randperm(len(x_t))
    held_out = min(1000, len(order) // 5)  # windows kept out, scored every 100 steps
    held, train = order[:held_out], order[held_out:]
    net, rng = Polisher(), np.random.default_rng(0)
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, 2e-3, total_steps=steps, pct_start=0.05
    )

    def loss_of(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xb, yb = xb.float() / 255, yb.float()[:, None] / 255
        logits = (xb[:, 3:4] * 2 - 1) * BASE + net(xb)
        prob = logits.sigmoid()
        dice = 1 - (2 * (prob * yb).sum((1, 2, 3)) + 1) / (prob + yb).sum((1, 2, 3)).add(1)
        return 5 * F.binary_cross_entropy_with_logits(logits, yb) + dice.mean(), logits

    def window_iou(found: torch.Tensor, truth: torch.Tensor) -> float:
        union = (found | truth).sum((1, 2)).clamp(min=1)
        return float(((found & truth).sum((1, 2)) / union).mean())

    start = time.time()
    for step in range(steps):
        idx = train[torch.randint(len(train), (batch,))]
        xb, yb = x_t[idx], y_t[idx]
        for dim in (-1, -2):
            if rng.random() < 0.5:
                xb, yb = xb.flip(dim), yb.flip(dim)
        if rng.random() < 0.5:
            xb, yb = xb.transpose(-1, -2), yb.transpose(-1, -2)
        loss, _ = loss_of(xb, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            with torch.no_grad():
                net.eval()
                _, logits = loss_of(x_t[held], y_t[held])
                net.train()
            truth = y_t[held] > 127
            before, after = (
                window_iou(x_t[held][:, 3] > 127, truth),
                window_iou(logits[:, 0] > 0, truth),
            )
            took = time.time() - start
            line = f"loss {float(loss.detach()):.4f} window IoU {before:.3f} -> {after:.3f}"
            print(step, line, f"{took:.0f}s", flush=True)
    torch.save(net.state_dict(), out)


class Polished(segany.Predictor):
    """The default pipeline with every snapped mask polished."""

    net: Polisher
    paste: str

    def _snap(self, masks, prompts, start):  # type: ignore[no-untyped-def]
        raw = masks.copy()
        snapped = super()._snap(masks, prompts, start)
        image, cut_ = self._require_image().image, self.graph_cut
        assert image is not None and cut_ is not None
        points, labels = prompts.points, prompts.labels
        for b, c in np.ndindex(*snapped.shape[:2]):
            box = prompts.boxes[start + b] if prompts.boxes is not None else None
            region = cut_.region(raw[b, c], points, labels, box)
            if region is None or not snapped[b, c].any():
                continue
            x = torch.from_numpy(inputs(image, raw[b, c], snapped[b, c], region, points, labels))
            with torch.inference_mode():
                x = x[None].float() / 255
                res = self.net(x) + ((x[:, 3:4] * 2 - 1) * BASE if self.paste == "logits" else 0)
            x0, y0, side = window(region)
            up = cv2.resize(res[0, 0].numpy(), (side, side), interpolation=cv2.INTER_LINEAR)
            if self.paste == "residual":  # the snapped edge, pixel for pixel, plus the residual
                up = up + (cut(snapped[b, c], x0, y0, side) * 2.0 - 1) * BASE
            left, top, right, bottom = region
            snapped[b, c, top : bottom + 1, left : right + 1] = (
                up[top - y0 : bottom + 1 - y0, left - x0 : right + 1 - x0] > 0
            )
        return snapped


def evaluate(n0: int, n1: int, out: str, ckpt: str, paste: str) -> None:
    predictor = Polished(load_model(), cache_size=0)
    predictor.net, predictor.paste = Polisher().eval(), paste
    predictor.net.load_state_dict(torch.load(ckpt, weights_only=True))
    scenes, rows = SceneDataset(200, EVAL_BASE_SEED), []
    for i in range(n0, n1):
        rows.extend(evaluate_scene(predictor, scenes[i], 3, np.random.default_rng(1000 + i), 3))
    with open(out, "w") as f:
        json.dump(rows, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("collect", "fit", "eval"))
    parser.add_argument("args", nargs="+")
    parser.add_argument("--paste", choices=("residual", "logits"), default="residual")
    a = parser.parse_args()
    if a.command == "collect":
        collect(int(a.args[0]), int(a.args[1]), a.args[2])
    elif a.command == "fit":
        fit(a.args[0], a.args[1:])
    else:
        evaluate(int(a.args[0]), int(a.args[1]), a.args[2], a.args[3], a.paste)


if __name__ == "__main__":
    main()
