"""Fine-tuning the active model version on a project's accepted annotations.

Closing the data engine's loop: the masks annotators accepted become training records
(:class:`~segany.train.AnnotatedImage`: the image and its accepted masks), the active
version's weights are fine-tuned on them by :func:`segany.train.train` (clicks and boxes
simulated from the masks, as on generated scenes), and the result is stored in the data
dir and registered as the next version, its parent the version it started from.

The recipe differs from training from scratch only where a trained model needs it to: a
lower learning rate (2e-4) with a short warm-up, no size curriculum and no BCE-to-focal
ramp (they keep a fresh model from collapsing), corrective clicks from the first step,
200 steps unless told otherwise. Any :class:`~segany.train.TrainConfig` setting given
overrides these.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from segany.data.images import load_image
from segany.data.rle import rle_to_mask
from segany.errors import InputError
from segany.registry import DEFAULT_MODEL, get_spec
from segany.server import editing, store, versions
from segany.server.config import ServerConfig
from segany.server.database import Database
from segany.server.tables import ModelVersion
from segany.server.versions import VersionSource
from segany.server.weights_store import load_version, store_weights
from segany.train import AnnotatedImage, RecordSource, TrainConfig, train
from segany.train.loop import FINAL

__all__ = ["FINE_TUNE", "Retrained", "fine_tune_config", "project_records", "retrain"]

#: What fine-tuning changes of TrainConfig's defaults (see the module's docstring).
FINE_TUNE: dict[str, Any] = {
    "steps": 200,
    "lr": 2e-4,
    "decay_fraction": 0.4,
    "easy_steps": 0,
    "focal_from_step": 0,
    "focal_ramp_steps": 0,
    "clicks_from_step": 0,
    "checkpoint_every": 50,
    "log_every": 10,
}
WARMUP_STEPS = 20  # at most; a tenth of a shorter run


@dataclass(frozen=True)
class Retrained:
    """A finished fine-tune: the version registered (``created`` False when the weights
    were registered already), the one it started from, and what it trained on."""

    version: ModelVersion
    created: bool
    parent: ModelVersion
    images: int
    masks: int
    metrics: dict[str, float]

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version.label,
            "id": self.version.id,
            "weights_sha256": self.version.weights_sha256,
            "path": self.version.path,
            "parent": self.parent.label,
            "active": self.version.active,
            "new": self.created,
            "images": self.images,
            "masks": self.masks,
            "metrics": self.metrics,
        }


def project_records(
    db: Database, config: ServerConfig, project_id: int, progress: bool = False
) -> list[AnnotatedImage]:
    """The project's images that have accepted annotations, each with those masks (empty
    masks and masks of another size than the image are left out).

    Raises:
        NotFoundError: no such project. InputError: it has no accepted annotations.
    """
    with db.read() as session:
        project = store.get_project(session, None, project_id)
        images = {image.id: image for image in store.list_images(session, project)}
        by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for annotation in editing.list_annotations(session, project, status="accepted"):
            by_image[annotation.image_id].append(annotation.rle)
    if not by_image:
        raise InputError(f"project {project_id} has no accepted annotations to train on")
    records = []
    bar = not progress or len(by_image) < 2
    for image_id in tqdm(sorted(by_image), desc="images", unit="image", disable=bar):
        image = images[image_id]
        array = load_image(config.images_dir / image.stored_as, max_pixels=None)
        masks = [rle_to_mask(rle) for rle in by_image[image_id]]
        kept = [m for m in masks if m.shape == array.shape[:2] and m.any()]
        if kept:
            records.append(AnnotatedImage(image=array, masks=np.stack(kept)))
    if not records:
        raise InputError(f"project {project_id}'s accepted annotations are all empty")
    return records


def fine_tune_config(name: str, settings: dict[str, Any]) -> TrainConfig:
    """The fine-tuning recipe for architecture ``name``, ``settings`` overriding it."""
    values = {**FINE_TUNE, **settings, "model": name}
    values.setdefault("warmup_steps", min(WARMUP_STEPS, max(1, int(values["steps"]) // 10)))
    return TrainConfig.from_dict(values)


def start_version(db: Database, config: ServerConfig) -> ModelVersion:
    """The active version; with none registered yet, the registry's weights of the
    configured model (the server's default) are registered as v1 first."""
    with db.session() as session:
        active = versions.active_version(session)
        if active is not None:
            return active
        spec = get_spec(config.model or DEFAULT_MODEL)
        if spec.weights is None or not spec.weights.sha256:
            raise InputError(f"model {spec.name!r} has no registered weights to start from")
        source = VersionSource(name=spec.name, weights_sha256=spec.weights.sha256)
        row, _ = versions.register(session, source, active=True)
        return row


def retrain(
    db: Database,
    config: ServerConfig,
    project_id: int,
    out: Path,
    settings: dict[str, Any],
    *,
    activate: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Retrained:
    """Fine-tune the active version on project ``project_id``'s accepted annotations into
    the run folder ``out`` (``out/model.safetensors``, as ``segany train`` writes), store
    the weights in the data dir and register them as a new version (``activate``: the
    active one, which a running server picks up within ``version_poll_s`` seconds)."""
    with db.read() as session:
        active = versions.active_version(session)
    name = active.name if active is not None else get_spec(config.model or DEFAULT_MODEL).name
    train_config = fine_tune_config(name, settings)  # bad settings fail before any work
    records = project_records(db, config, project_id, progress)
    parent = start_version(db, config)
    if parent.name != name:  # another architecture was activated meanwhile
        train_config = fine_tune_config(parent.name, settings)
    model, _ = load_version(config, parent)
    source = RecordSource.for_model(records, model, train_config)
    metrics = train(
        train_config, out, model=model, scenes=source, progress=progress, overwrite=overwrite
    )
    path, sha = store_weights(config, out / FINAL)
    masks = sum(len(r.masks) for r in records)
    described = {
        **metrics,
        "steps": train_config.steps,
        "peak_lr": train_config.lr,
        "images": len(records),
        "masks": masks,
    }
    new = VersionSource(
        name=parent.name,
        weights_sha256=sha,
        path=path,
        parent_sha256=parent.weights_sha256,
        project_id=project_id,
        metrics=described,
    )
    with db.session() as session:
        row, created = versions.register(session, new, active=activate)
    return Retrained(row, created, parent, len(records), masks, metrics)
