"""One round of the data engine, driven through the server's API by a simulated annotator.

SA-1B's stages, as a person would go through them with ``segany serve``, with
:mod:`segany.eval.annotator` (SAM's protocol: centre click, corrective clicks at the centre
of the largest error region, accept at IoU ≥ 0.9 with the ground truth, give up after 5)
playing the person and the scenes' ground truth playing their eyes:

1. :func:`manual_stage`: every object is clicked until accepted; the accepted masks (the
   model's, decoded by ``POST /api/images/{id}/decode``) are committed with their prompts;
2. retraining happens between stages (:func:`segany.server.retrain.retrain`);
3. :func:`semi_stage`: the server proposes masks (``…/proposals``); a proposal that matches
   an object at IoU ≥ 0.9 is accepted, any other rejected, then the objects still missing
   are annotated by hand as in 1;
4. :func:`auto_stage`: an automatic job runs over the project and is followed to its end.

Each stage answers its figures: masks per image, clicks per accepted mask. The client is
any object with httpx's ``get``/``post`` that carries the user's token (an
``httpx.Client`` or FastAPI's ``TestClient`` with the header set).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segany.data.masks import binary_iou
from segany.data.rle import mask_to_rle, rle_to_mask
from segany.eval.annotator import ACCEPT_IOU, annotate_scene, summarize_annotations

__all__ = ["ApiDecoder", "Item", "auto_stage", "manual_stage", "semi_stage"]


@dataclass(frozen=True)
class Item:
    """An uploaded image (its row from the API) and its objects' ``HxW`` bool masks."""

    row: dict[str, Any]
    truths: Sequence[np.ndarray]


def _ok(answer: Any) -> Any:
    if answer.status_code >= 400:
        raise RuntimeError(f"{answer.request.method} {answer.request.url}: {answer.text[:300]}")
    return answer.json()


class ApiDecoder:
    """The annotator's ``decode(points, labels)`` through the server, as the page decodes:
    one click answered with the best of the multimask outputs, more with the single mask.
    Remembers the last answer's model and weights (the provenance to commit)."""

    def __init__(self, http: Any, image_id: int) -> None:
        self.http, self.image_id = http, image_id
        self.model: str | None = None
        self.weights: str | None = None

    def __call__(self, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        body = {
            "points": np.asarray(points, dtype=float).tolist(),
            "labels": [int(v) for v in labels],
            "multimask": len(labels) == 1,
        }
        answer = _ok(self.http.post(f"/api/images/{self.image_id}/decode", json=body))
        self.model, self.weights = answer["model"], answer["weights_sha256"]
        return rle_to_mask(answer["masks"][answer["best"]]).astype(bool)


def _annotate(
    http: Any, project: int, item: Item, truths: Sequence[np.ndarray], accept_iou: float
) -> list[Any]:
    """Annotate ``truths`` of ``item`` by clicking; commit each accepted mask."""
    decode = ApiDecoder(http, item.row["id"])
    done = annotate_scene(decode, truths, accept_iou)
    for result in done:
        if result.accepted:
            body = {
                "image_id": item.row["id"],
                "category_id": 1,
                "segmentation": mask_to_rle(result.mask),
                "stage": "manual",
                "prompts": {"points": result.points.tolist(), "labels": result.labels.tolist()},
                "model_name": decode.model,
                "weights_sha256": decode.weights,
            }
            _ok(http.post(f"/api/projects/{project}/annotations", json=body))
    return done


def _masks_per_image(http: Any, project: int, items: Sequence[Item]) -> float:
    counts = []
    for item in items:
        params = {"image_id": item.row["id"]}
        counts.append(len(_ok(http.get(f"/api/projects/{project}/annotations", params=params))))
    return float(np.mean(counts)) if counts else 0.0


def manual_stage(
    http: Any, project: int, items: Sequence[Item], accept_iou: float = ACCEPT_IOU
) -> dict[str, float]:
    """Stage 1 on ``items``: every object clicked until accepted (or given up)."""
    results = [r for item in items for r in _annotate(http, project, item, item.truths, accept_iou)]
    return {
        **summarize_annotations(results),
        "masks_per_image": _masks_per_image(http, project, items),
    }


def semi_stage(
    http: Any, project: int, items: Sequence[Item], accept_iou: float = ACCEPT_IOU
) -> dict[str, float]:
    """Stage 2 on ``items``: proposals reviewed (accepted when they match a still
    unmatched object at IoU ≥ ``accept_iou``, else rejected), then the missing objects by
    hand."""
    accepted = rejected = 0
    manual: list[Any] = []
    for item in items:
        url = f"/api/projects/{project}/images/{item.row['id']}/proposals"
        proposals = _ok(http.post(url))["proposals"]
        missing = list(range(len(item.truths)))
        for row in proposals:
            mask = rle_to_mask(row["segmentation"]).astype(bool)
            scores = [binary_iou(mask, item.truths[k]) for k in missing]
            best = int(np.argmax(scores)) if scores else -1
            verdict = "accept" if best >= 0 and scores[best] >= accept_iou else "reject"
            _ok(http.post(f"/api/projects/{project}/annotations/{row['id']}/{verdict}", json={}))
            if verdict == "accept":
                accepted += 1
                missing.pop(best)
            else:
                rejected += 1
        manual += _annotate(http, project, item, [item.truths[k] for k in missing], accept_iou)
    by_hand = summarize_annotations(manual)
    return {
        "proposals_accepted": float(accepted),
        "proposals_rejected": float(rejected),
        "manual_objects": by_hand["objects"],
        "manual_accepted": by_hand["accepted"],
        "clicks_per_accepted": by_hand["clicks_per_accepted"],
        "masks_per_image": _masks_per_image(http, project, items),
    }


def auto_stage(
    http: Any, project: int, items: Sequence[Item], timeout_s: float = 3600
) -> dict[str, float]:
    """Stage 3: an automatic job over the project, followed until it ends; the masks per
    image of ``items`` (the images no earlier stage touched) afterwards."""
    job = _ok(http.post(f"/api/projects/{project}/jobs", json={"kind": "auto"}))
    deadline = time.monotonic() + timeout_s
    while job["state"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the automatic job did not finish in {timeout_s} s: {job}")
        time.sleep(0.2)
        job = _ok(http.get(f"/api/jobs/{job['id']}"))
    if job["state"] != "done":
        raise RuntimeError(f"the automatic job ended {job['state']}: {job.get('error')}")
    return {
        "job_images": float(job["total"]),
        "job_masks": float(job["masks"]),
        "masks_per_image": _masks_per_image(http, project, items),
    }
