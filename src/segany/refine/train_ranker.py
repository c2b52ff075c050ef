"""Training the :class:`~segany.refine.ranker.MaskRanker` on a frozen pipeline.

A click ranker (``prompts="clicks"``): for every object of generated training scenes,
two single clicks (the object's most interior pixel, as the evaluation's centre click,
and a uniformly random pixel of it), and corrective clicks after the centre one, go
through the model and its refiner (3 candidates each). A box ranker
(``prompts="boxes"``): every object's tight box and a noisy copy of it (as the
evaluation draws them, :func:`~segany.eval.promptable.prompt_boxes`), each answered
with 3 masks (a box-cut ranker, ``prompts="box_cut"``: the same boxes, the second mask
replaced by the box's own cut, :func:`~segany.refine.ranker.box_cut_candidates`). Every
candidate is snapped by the graph cut; the example is the
candidates' :func:`ranking_features` (with the prompt's clicks or box) and the target
the IoU of each snapped mask with the object. The ranker then regresses those IoUs (MSE on
the sigmoid), so its output stays a predicted IoU and its argmax picks the mask.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..data.masks import binary_iou, corrective_click, interior_point
from ..data.scenes import EVAL_BASE_SEED, Scene, SceneDataset
from ..errors import InputError
from ..eval.promptable import prompt_boxes
from ..eval.workers import map_scenes
from ..predictor import Predictor
from ..train.config import require_at_least
from .graph_cut import GraphCut
from .predictor import StagedPredictor
from .ranker import (
    NUM_FEATURES,
    MaskRanker,
    RankerConfig,
    box_cut_candidates,
    ranking_features,
)

__all__ = [
    "PROMPT_KINDS",
    "RankerTrainConfig",
    "box_examples",
    "collect_ranking_examples",
    "fit_ranker",
    "object_examples",
    "train_ranker",
]

# what a ranker is trained to rank (see the module doc)
PROMPT_KINDS = ("clicks", "boxes", "box_cut")


@dataclass(frozen=True)
class RankerTrainConfig:
    """Options of :func:`train_ranker`: ``scenes`` training scenes of base seed ``seed``
    (never the evaluation's), prompted with ``prompts`` (one of :data:`PROMPT_KINDS`;
    ``clicks`` corrective clicks after each centre click), then ``epochs`` over their
    examples."""

    scenes: int = 600
    epochs: int = 60
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-3
    hidden: int = 64
    seed: int = 7
    clicks: int = 2
    prompts: str = "clicks"

    def __post_init__(self) -> None:
        require_at_least(self, 1, ("scenes", "epochs", "batch_size", "hidden"))
        require_at_least(self, 0, ("clicks",))
        if self.prompts not in PROMPT_KINDS:
            raise InputError(f"prompts must be one of {PROMPT_KINDS}, got {self.prompts!r}")
        if self.lr <= 0:
            raise InputError(f"lr must be positive, got {self.lr}")
        if self.seed == EVAL_BASE_SEED or self.seed < 0:
            raise InputError(
                f"seed {self.seed} is not allowed: the ranker must not see the evaluation's "
                f"scenes (base seed {EVAL_BASE_SEED})"
            )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _candidates(
    predictor: Predictor | StagedPredictor,
    graph_cut: GraphCut,
    image: np.ndarray,
    prompt: tuple[list[tuple[float, float]], list[int], np.ndarray | None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 3 low-res logits 3xhxw, snapped masks 3xHxW and a click ranker's features
    (30,) of a prompt (points Nx2, labels N, previous low-res logits hxw or None)."""
    points, labels, previous = prompt
    coords, classes = np.array(points, dtype=np.float64), np.array(labels)
    mask_input = None if previous is None else previous[None]
    out = predictor.predict(points=coords, labels=classes, mask_input=mask_input)
    snapped = np.stack([graph_cut(image, m, coords, classes) for m in out.masks])
    features = ranking_features(out.scores, out.masks, snapped, clicks=(coords, classes))
    return out.low_res_logits, snapped, features


def object_examples(
    predictor: Predictor | StagedPredictor,
    graph_cut: GraphCut,
    image: np.ndarray,
    truth: np.ndarray,
    rng: np.random.Generator,
    clicks: int,
) -> Iterator[tuple[int, np.ndarray, list[float]]]:
    """(clicks so far, features (30,), snapped candidates' IoUs (3,)) of one object.

    A random click (0), the centre click (0), then ``clicks`` corrective clicks after
    it, each from the candidate that is best (or, half of the time, a random one) with
    that candidate's low-res logits as mask input, as an interactive session does.
    """
    ys, xs = np.nonzero(truth)
    pick = rng.integers(len(ys))
    _, snapped, features = _candidates(
        predictor, graph_cut, image, ([(xs[pick] + 0.5, ys[pick] + 0.5)], [1], None)
    )
    yield 0, features, [binary_iou(m, truth) for m in snapped]
    points, labels = [interior_point(truth)], [1]
    previous = None
    for k in range(clicks + 1):
        logits, snapped, features = _candidates(
            predictor, graph_cut, image, (points, labels, previous)
        )
        ious = [binary_iou(m, truth) for m in snapped]
        yield k, features, ious
        chosen = int(np.argmax(ious)) if rng.random() < 0.5 else int(rng.integers(len(ious)))
        click = corrective_click(truth, snapped[chosen])
        if click is None:
            return
        points.append(click[0])
        labels.append(click[1])
        previous = logits[chosen]


def box_examples(
    predictor: Predictor | StagedPredictor,
    graph_cut: GraphCut,
    scene: Scene,
    rng: np.random.Generator,
    box_cut: bool = False,
) -> Iterator[tuple[np.ndarray, list[float]]]:
    """(features (30,), snapped candidates' IoUs (3,)) of every object's tight box, then
    of every object's noisy box, each answered with 3 masks (``predictor`` has the image);
    with ``box_cut`` the second of them is the box's own cut."""
    for boxes in prompt_boxes(scene, rng):
        out = predictor.predict(box=boxes, multimask=True)
        answers = zip(boxes, out.masks, out.scores, scene.masks, strict=True)
        for box, masks, scores, truth in answers:
            if box_cut:
                masks, snapped = box_cut_candidates(graph_cut, scene.image, masks, box)
            else:
                snapped = np.stack([graph_cut(scene.image, m, box=box) for m in masks])
            features = ranking_features(scores, masks, snapped, box)
            yield features, [binary_iou(m, truth) for m in snapped]


def collect_ranking_examples(
    predictor: Predictor | StagedPredictor,
    graph_cut: GraphCut,
    scenes: SceneDataset,
    clicks: int = 2,
    progress: bool = True,
    prompts: str = "clicks",
    jobs: int = 1,
    build: Callable[[], Predictor | StagedPredictor] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Features Nx30 and targets Nx3 (IoU of each snapped candidate)
    from every object's :func:`object_examples` (``prompts="clicks"``) or
    :func:`box_examples` (``prompts="boxes"`` or ``"box_cut"``).

    ``predictor`` runs no stage but a refiner (a :class:`Predictor`, or a
    :class:`~segany.refine.StagedPredictor` with ``Stages(refiner=...)``): the cut is
    applied here, so the masks before and after it are both at hand. With ``jobs`` > 1
    the scenes are shared among that many worker processes
    (:func:`~segany.eval.workers.map_scenes`), each with the predictor ``build`` makes
    (picklable; the same as ``predictor``); the examples are the same as in one process.
    """
    stages = predictor.stages.names if isinstance(predictor, StagedPredictor) else ()
    if set(stages) - {"refiner"}:
        raise ValueError("collect_ranking_examples needs a predictor with a refiner at most")
    if prompts not in PROMPT_KINDS:
        raise ValueError(f"prompts must be one of {PROMPT_KINDS}, got {prompts!r}")
    if jobs > 1 and build is None:
        raise ValueError("jobs > 1 needs build, the predictor's maker for the workers")
    work = functools.partial(scene_examples, graph_cut=graph_cut, clicks=clicks, prompts=prompts)
    maker = build if build is not None and jobs > 1 else lambda: predictor
    per_scene = map_scenes(maker, work, scenes, jobs, progress)
    features = [feature for part, _ in per_scene for feature in part]
    if not features:
        width = RankerConfig(kind=prompts).features
        return np.zeros((0, width), np.float32), np.zeros((0, 3), np.float32)
    targets = [target for _, part in per_scene for target in part]
    return np.stack(features), np.asarray(targets, dtype=np.float32)


def scene_examples(
    predictor: Predictor | StagedPredictor,
    index: int,
    scene: Scene,
    graph_cut: GraphCut,
    clicks: int = 2,
    prompts: str = "clicks",
) -> tuple[list[np.ndarray], list[list[float]]]:
    """The features and targets of scene ``index`` of :func:`collect_ranking_examples`
    (its random choices drawn from a generator seeded with ``index``)."""
    predictor.set_image(scene.image)
    rng = np.random.default_rng(index)
    if prompts != "clicks":
        examples: Iterable[tuple[np.ndarray, list[float]]] = box_examples(
            predictor, graph_cut, scene, rng, box_cut=prompts == "box_cut"
        )
    else:
        examples = (
            (feature, target)
            for truth in scene.masks
            for _, feature, target in object_examples(
                predictor, graph_cut, scene.image, truth, rng, clicks
            )
        )
    features, targets = [], []
    for feature, target in examples:
        features.append(feature)
        targets.append(target)
    return features, targets


def fit_ranker(
    features: np.ndarray,
    targets: np.ndarray,
    config: RankerTrainConfig = RankerTrainConfig(),
    log: Callable[[dict[str, float]], object] | None = None,
) -> MaskRanker:
    """A ranker fitted to Nx30 ``features`` of ``config.prompts`` (a click or a box
    ranker, see :class:`~segany.refine.ranker.RankerConfig`; Nx18: a mask ranker) and
    Nx3 ``targets`` (eval mode out).

    ``log`` receives per epoch the mean squared error and the mean target IoU of the
    mask the ranker picks (on the training examples).
    """
    if len(features) == 0:
        raise InputError("no examples to fit the ranker on (scenes without objects?)")
    kind = config.prompts  # the prompt kinds are ranker kinds
    if np.ndim(features) == 2 and features.shape[1] == NUM_FEATURES:
        kind = "masks"
    elif np.ndim(features) != 2 or features.shape[1] != RankerConfig(kind=kind).features:
        raise InputError(
            f"features must be Nx18 (a mask ranker's) or Nx30 ({config.prompts}), "
            f"got {np.shape(features)}"
        )
    torch.manual_seed(config.seed)
    ranker = MaskRanker(RankerConfig(hidden=config.hidden, kind=kind))
    x = torch.from_numpy(np.asarray(features, dtype=np.float32))
    y = torch.from_numpy(np.asarray(targets, dtype=np.float32))
    ranker.mean.copy_(x.mean(0))
    ranker.std.copy_(x.std(0, unbiased=False) + 1e-6)
    optimizer = torch.optim.AdamW(
        ranker.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs)
    ranker.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(x))
        total = 0.0
        for start in range(0, len(x), config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = ((ranker(x[batch]) - y[batch]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        schedule.step()
        if log is not None:
            with torch.no_grad():
                picked = y[torch.arange(len(y)), ranker(x).argmax(1)].mean()
            log({"epoch": epoch + 1, "mse": total / len(x), "picked_iou": float(picked)})
    return ranker.eval()


def train_ranker(
    predictor: Predictor | StagedPredictor,
    graph_cut: GraphCut,
    config: RankerTrainConfig = RankerTrainConfig(),
    progress: bool = True,
    log: Callable[[dict[str, float]], object] | None = None,
    jobs: int = 1,
    build: Callable[[], Predictor | StagedPredictor] | None = None,
) -> MaskRanker:
    """Collect examples on ``config.scenes`` training scenes (in ``jobs`` processes, see
    :func:`collect_ranking_examples`), then fit a ranker."""
    scenes = SceneDataset(config.scenes, config.seed)
    features, targets = collect_ranking_examples(
        predictor, graph_cut, scenes, config.clicks, progress, config.prompts, jobs, build
    )
    return fit_ranker(features, targets, config, log)
