"""The training loop: AdamW with warm-up and cosine decay, checkpoints, resume, a log."""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..data.scenes import TRAIN_BASE_SEED, SceneConfig, generate_scene, scene_seed
from ..engine.hardware import native_bf16
from ..errors import CheckpointError, InputError
from ..fileio import atomic_path
from ..models.prompt_head import PromptHead, PromptHeadConfig
from ..models.sam import Sam, build_sam
from ..registry import get_spec
from ..weights import save_state_dict_file
from .config import TrainConfig
from .crops import zoom_crop
from .grouping import GroupingProbe
from .localise import align_attention, warm_up_decoder
from .step import train_step
from .targets import SceneTensors, scene_to_tensors

CHECKPOINT = "checkpoint.pt"
SEED_STRIDE = 1 << 24  # scenes per training seed: 2**24 (2 million steps of 8)
ZOOM_CROP_STREAM = 2  # a scene's crop is drawn from its own random stream (seed, 2)
LOG = "log.jsonl"
FINAL = "model.safetensors"
HEAD = "prompt_head.safetensors"


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the base learning rate at ``step``: warm-up, stable, cosine decay."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    decay_steps = max(1, round(config.decay_fraction * config.steps))
    decay_from = max(config.warmup_steps, config.steps - decay_steps)
    if step < decay_from:
        return 1.0
    progress = (step - decay_from) / max(1, config.steps - decay_from)
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine


def make_optimizer(
    model: Sam, config: TrainConfig, *extra: torch.nn.Module | None
) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases, norms, embeddings and position tables.

    ``extra`` modules (the grouping probe, the prompt head, if used) are trained too,
    without decay.
    """
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        flat = param.ndim < 2 or "pos" in name or "token" in name or "embed" in name
        (no_decay if flat else decay).append(param)
    for module in extra:
        if module is not None:
            no_decay.extend(module.parameters())
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.999))


def freeze(model: Sam, trainable: str) -> None:
    """Leave only the ``trainable`` part of ``model`` learning (see :class:`TrainConfig`).

    Frozen parts get ``requires_grad=False`` and eval mode (no BatchNorm statistics move).
    """
    if trainable == "all":
        return
    learning: list[torch.nn.Module] = (
        [model.mask_decoder.iou_prediction_head]
        if trainable == "iou_head"
        else [model.prompt_encoder, model.mask_decoder]
    )
    model.eval()
    model.requires_grad_(False)
    for module in learning:
        module.train()
        module.requires_grad_(True)


def step_scenes(step: int, config: TrainConfig, model: Sam) -> list[SceneTensors]:
    """The generated scenes of ``step`` (fixed by step and seed, so resume is exact)."""
    low_res = model.prompt_encoder.mask_input_size[0]
    out = []
    for i in range(config.images_per_step):
        # Runs with different seeds draw from disjoint stretches of the training range
        # (never from the evaluation range: the base seed stays TRAIN_BASE_SEED).
        index = config.seed * SEED_STRIDE + step * config.images_per_step + i
        seed = scene_seed(TRAIN_BASE_SEED, index)
        scene = generate_scene(seed, SceneConfig())
        if config.zoom_crops > 0:
            rng = np.random.default_rng([seed, ZOOM_CROP_STREAM])
            if rng.random() < config.zoom_crops:
                scene = zoom_crop(scene, rng)
        out.append(
            scene_to_tensors(
                scene.image, scene.masks, scene.boxes, model.image_size, low_res, scene.parent
            )
        )
    return out


def _trim_log(path: Path, step: int) -> None:
    """Drop log rows written after the checkpoint at ``step`` (they are trained again)."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= step
    ]
    path.write_text("".join(line + "\n" for line in kept))


def _save_atomic(obj: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    model: Sam | None = None,
    steps: int | None = None,
    scenes: Callable[[int], list[SceneTensors]] | None = None,
) -> dict[str, float]:
    """Train a model promptably on generated scenes; returns the last logged metrics.

    Arguments:
      config: the run's settings. out_dir: where checkpoint.pt, log.jsonl, config.json
        and, at the end, model.safetensors go.
      resume: continue from out_dir/checkpoint.pt (the config saved there is used).
      overwrite: start afresh even if out_dir holds a checkpoint (never implied).
      model: start from this model instead of a fresh one of ``config.model``.
      steps: with ``resume``, a new total number of steps (the saved config's otherwise);
        it must lie beyond the checkpoint's step.
      scenes: the images of each step, ``scenes(step)``, instead of generated scenes
        (:func:`step_scenes`), e.g. recorded annotations (:class:`.records.RecordSource`).
        It must be a function of the step alone for a resumed run to equal an
        uninterrupted one; a resumed run is given the same source again.
    """
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT
    existing = [name for name in (CHECKPOINT, LOG, FINAL) if (out / name).exists()]
    if existing and not (resume or overwrite):
        raise InputError(
            f"{out} already holds a training run ({', '.join(existing)}): pass --resume to "
            "continue it or --overwrite to start again"
        )
    if resume and not ckpt_path.exists():
        raise InputError(f"nothing to resume: {ckpt_path} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] | None = None
    if resume:
        try:
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or foreign file
            raise CheckpointError(f"cannot resume from {ckpt_path}: {exc}") from exc
        config = TrainConfig.from_dict(state["config"])
        if steps is not None:
            if steps <= int(state["step"]):
                raise InputError(
                    f"--steps {steps} is not beyond the checkpoint's step {int(state['step'])}"
                )
            config = TrainConfig.from_dict({**config.to_dict(), "steps": steps})
    fresh = model is None and state is None  # built here: gets the decoder warm-up
    if state is None:
        (out / LOG).write_text("")
    if model is None:
        torch.manual_seed(config.seed)  # PyTorch's default init: see docs/training.md
        model = build_sam(get_spec(config.model).config)
    if fresh:
        if config.attention_gain > 0:
            align_attention(model, config.attention_gain)
        if config.decoder_warmup_steps > 0:
            history = warm_up_decoder(
                model, config.decoder_warmup_steps, seed=config.seed, progress=progress
            )
            tail = history[-20:]
            with (out / LOG).open("a") as log:
                log.write(json.dumps({"decoder_warmup_box_iou": sum(tail) / len(tail)}) + "\n")
    if config.bf16 and not native_bf16():
        warnings.warn(
            "this CPU has no native bf16 (AVX-512 BF16 or AMX): training in fp32, which is "
            "several times faster here than emulated bf16",
            stacklevel=2,
        )
    model.train()
    freeze(model, config.trainable)
    probe = None
    if config.grouping_weight > 0:
        torch.manual_seed(config.seed)
        probe = GroupingProbe(model.prompt_encoder.embed_dim)
    head = None
    if config.prompt_head_weight > 0:
        torch.manual_seed(config.seed)
        head = PromptHead(PromptHeadConfig(in_chans=model.prompt_encoder.embed_dim))
    optimizer = make_optimizer(model, config, probe, head)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    generator = torch.Generator().manual_seed(config.seed)
    start = 0
    if state is not None:
        model.load_state_dict(state["model"])
        if probe is not None:
            probe.load_state_dict(state["probe"])
        if head is not None:
            head.load_state_dict(state["prompt_head"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        start = int(state["step"])
        _trim_log(out / LOG, start)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))

    def checkpoint(step: int) -> None:
        _save_atomic(
            {
                "model": model.state_dict(),
                "probe": None if probe is None else probe.state_dict(),
                "prompt_head": None if head is None else head.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(),
                "step": step,
                "config": config.to_dict(),
            },
            ckpt_path,
        )

    last: dict[str, float] = {}
    window: list[dict[str, float]] = []
    bar = tqdm(total=config.steps, initial=start, disable=not progress, unit="step")
    began = time.perf_counter()
    for step in range(start, config.steps):
        batch = step_scenes(step, config, model) if scenes is None else scenes(step)
        loss, metrics = train_step(model, batch, config, generator, step, probe, head)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(
            [p for p in model.parameters() if p.requires_grad], config.grad_clip
        )
        optimizer.step()
        scheduler.step()
        window.append({"loss": float(loss.detach()), **metrics})
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            # a metric is averaged over the steps that have it (a step may, e.g., draw no box)
            keys = dict.fromkeys(k for w in window for k in w)
            last = {
                k: sum(w[k] for w in window if k in w) / sum(k in w for w in window) for k in keys
            }
            last.update(step=step + 1, lr=float(scheduler.get_last_lr()[0]))
            last["elapsed_s"] = round(time.perf_counter() - began, 1)
            with (out / LOG).open("a") as log:
                log.write(json.dumps(last) + "\n")
            bar.set_postfix(loss=f"{last['loss']:.3f}", iou=f"{last.get('iou_click0', 0):.3f}")
            window = []
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            checkpoint(step + 1)
        bar.update(1)
    bar.close()
    model.eval()
    save_state_dict_file(model.state_dict(), out / FINAL)
    if head is not None:
        save_state_dict_file(head.state_dict(), out / HEAD)
    return last


def export_weights(
    checkpoint: str | Path, out_file: str | Path, head_file: str | Path | None = None
) -> Path:
    """Write the model weights of a training checkpoint as a ``.safetensors`` file.

    This is how a run's weights become a model file (``segany.load_model(checkpoint=...)``,
    or the package's bundled ``segany_shapes``); optimizer and sampler state are dropped.
    With ``head_file``, the run's prompt head (if it trained one) is written there too.
    """
    path = Path(checkpoint)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file
        raise CheckpointError(f"cannot read training checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a segany training checkpoint (no 'model' entry)")
    out = Path(out_file)
    save_state_dict_file(state["model"], out)
    if head_file is not None:
        if state.get("prompt_head") is None:
            raise CheckpointError(f"{path} holds no prompt head (prompt_head_weight was 0)")
        save_state_dict_file(state["prompt_head"], head_file)
    return out
