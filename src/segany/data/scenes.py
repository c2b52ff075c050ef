"""Procedural scenes with exact instance masks and a whole -> part -> sub-part hierarchy.

No pretrained weights can be downloaded on our machines, so segany trains its own small
SAM on scenes drawn here, on the fly, with unlimited exact ground truth.

A scene is painted back to front:

1. a textured background (noise, gradient, stripes or checkers, lightly mottled);
2. clutter: small blobs, specks and short lines (``config.clutter`` per 256x256 pixels);
3. 3 to 10 objects (polygons, ellipses, stars, blobs, thin curves and sticks, rings),
   roughly largest first, each partly hiding what is under it. Each object has a texture;
   with probability ``similar_colour_probability`` its colours are close to the
   background's and only its texture sets it apart. With probability
   ``part_probability`` an object is cut into 2 to 4 parts by straight or curved lines, or
   gets 1 to 3 inner shapes as parts; each part has its own texture and may get sub-parts
   the same way;
4. optionally a slight blur, and luminance noise, over the whole image.

Ground truth: every object, part and sub-part is an instance if its *visible* area is at
least ``min_area`` pixels (100 by default: smaller ones cannot be resolved by a model whose
mask logits have a quarter of the input's resolution, see docs/training.md); clutter is
unlabelled background texture unless ``label_clutter`` is set. Masks are visible
masks: later objects occlude earlier ones, so the whole objects' masks (``parent == -1``)
are pairwise disjoint and partition the labelled pixels, and a part's mask is a subset of
its parent's. A part whose visible mask equals its parent's (the rest is hidden) is
dropped as a duplicate, and its sub-parts are re-parented to the nearest kept ancestor; a
part of a dropped object is itself smaller than ``min_area`` and dropped too.

Generation cost grows with the objects' sizes more than with the image's (each shape is
rasterised and textured in its clipped bounding box only, and no BLAS call is made), so
scenes are cheap enough to draw on the fly during training (``test_generation_time`` in
``tests/data/test_scenes.py`` prints the cost; docs/training.md, 'The scenes it learns
from').
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter
from torch.utils.data import Dataset

from segany.data.canvas import Canvas
from segany.data.domains import DOMAINS, Domain
from segany.data.shapes import inner_shape, rasterize_shape, split_by_cuts
from segany.data.textures import Style
from segany.errors import InputError

__all__ = [
    "EVAL_BASE_SEED",
    "TRAIN_BASE_SEED",
    "Scene",
    "SceneConfig",
    "SceneDataset",
    "generate_scene",
    "scene_seed",
]

#: Base seed of training scenes: :class:`SceneDataset` ``(length, TRAIN_BASE_SEED)``.
TRAIN_BASE_SEED = 0
#: Base seed of evaluation scenes; disjoint from training scenes (see :func:`scene_seed`).
EVAL_BASE_SEED = 1

_MAX_INDEX = 2**32
_CLUTTER_KINDS = ("ellipse", "polygon", "blob", "thin")


@dataclass(frozen=True)
class SceneConfig:
    """Parameters of :func:`generate_scene`.

    Attributes:
        min_size, max_size: Range of the image height and width (each drawn independently,
            inclusive), used when ``size`` is ``None``.
        size: Fixed ``(height, width)``, or ``None`` to draw sizes from the range.
        min_objects, max_objects: Range of the number of objects drawn (inclusive). Objects
            hidden below ``min_area`` pixels are dropped, so scenes may have fewer.
        object_scale: Range of an object's diameter as a fraction of ``min(H, W)`` (drawn
            log-uniformly).
        part_probability: Probability that an object is given parts.
        subpart_probability: Probability that a part is given sub-parts.
        clutter: Mean number of clutter items (small blobs and lines on the background)
            per 256x256 pixels.
        similar_colour_probability: Probability that an object takes colours close to the
            background's, so only its texture sets it apart.
        blur_probability: Probability of a slight blur (a box blur of radius 0.3 to 0.8
            px) of the finished image; masks are unaffected.
        noise: Amplitude of the luminance noise: a uniform integer in ``[-noise, noise]``
            added to all three channels of every pixel (0 for none).
        min_area: Smallest visible area, in pixels, of an instance; smaller ones are
            dropped (their pixels stay unlabelled or belong to their parent).
        label_clutter: Whether clutter items large enough are instances (kind
            ``"clutter"``); by default clutter is unlabelled background texture.
        thin_width: Range (inclusive) of the line width of thin objects, in pixels.
        domain: Which shapes, fills and colours are drawn (:mod:`segany.data.domains`):
            ``"default"``, the scenes the bundled model learnt from, or ``"shifted"``
            (:mod:`segany.data.shifted`), which it never saw.
    """

    min_size: int = 256
    max_size: int = 512
    size: tuple[int, int] | None = None
    min_objects: int = 3
    max_objects: int = 10
    object_scale: tuple[float, float] = (0.12, 0.75)
    part_probability: float = 0.35
    subpart_probability: float = 0.4
    clutter: float = 8.0
    similar_colour_probability: float = 0.25
    blur_probability: float = 0.3
    noise: int = 3
    min_area: int = 100
    label_clutter: bool = False
    thin_width: tuple[int, int] = (4, 10)
    domain: str = "default"

    def __post_init__(self) -> None:
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 16):
            raise InputError(f"size must be (height, width), each >= 16; got {self.size}")
        if not 16 <= self.min_size <= self.max_size:
            raise InputError(
                f"need 16 <= min_size <= max_size; got {self.min_size} and {self.max_size}"
            )
        if not 0 <= self.min_objects <= self.max_objects:
            raise InputError(
                f"need 0 <= min_objects <= max_objects; got {self.min_objects} "
                f"and {self.max_objects}"
            )
        low, high = self.object_scale
        if not 0 < low <= high:
            raise InputError(f"object_scale must be (low, high), 0 < low <= high; got {low, high}")
        for name in (
            "part_probability",
            "subpart_probability",
            "similar_colour_probability",
            "blur_probability",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"{name} must lie in [0, 1]; got {getattr(self, name)}")
        if self.clutter < 0 or self.noise < 0:
            raise InputError(f"clutter and noise must be >= 0; got {self.clutter}, {self.noise}")
        if self.noise > 64:
            raise InputError(f"noise must be at most 64; got {self.noise}")
        if not 1 <= self.thin_width[0] <= self.thin_width[1]:
            raise InputError(
                f"thin_width must be (low, high), 1 <= low <= high; got {self.thin_width}"
            )
        if self.min_area < 1:
            raise InputError(f"min_area must be at least 1 pixel; got {self.min_area}")
        if self.domain not in DOMAINS:
            known = ", ".join(DOMAINS)
            raise InputError(f"domain must be one of {known}; got {self.domain!r}")


@dataclass(frozen=True, eq=False)
class Scene:
    """A generated image with its instances (``N`` of them, possibly 0).

    Attributes:
        image: ``HxWx3`` uint8 RGB.
        masks: ``NxHxW`` bool, the visible part of each instance.
        parent: ``N`` int64; -1 for a whole object, else the index of the instance this one
            is a part of (which always comes earlier). ``masks[i]`` is a subset of
            ``masks[parent[i]]``.
        boxes: ``Nx4`` float64 XYXY tight boxes of the masks, in pixel indices with
            inclusive maxima (as SAM's ``batched_mask_to_box``): a single pixel at
            ``(x, y)`` has box ``(x, y, x, y)``.
        kinds: ``N`` names: the shape (one of ``SHAPE_KINDS``, or of ``SHIFTED_SHAPE_KINDS``
            in the shifted domain) or ``"clutter"`` for whole objects, ``"part"`` for
            parts of a whole object, ``"subpart"`` for parts of a part.
        seed: The seed the scene was generated from.
    """

    image: npt.NDArray[np.uint8]
    masks: npt.NDArray[np.bool_]
    parent: npt.NDArray[np.int64]
    boxes: npt.NDArray[np.float64]
    kinds: list[str] = field(default_factory=list)
    seed: int = 0

    @property
    def areas(self) -> npt.NDArray[np.int64]:
        """``N`` visible areas in pixels."""
        return self.masks.sum(axis=(1, 2), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.masks)


def generate_scene(seed: int, config: SceneConfig = SceneConfig()) -> Scene:
    """Generate one scene, deterministically from ``seed``.

    All randomness comes from ``numpy.random.default_rng(seed)``, so the same seed and
    config give an identical scene whatever the global random state.

    Args:
        seed: Non-negative integer.
        config: Scene parameters.

    Returns:
        The scene (see :class:`Scene`).

    Raises:
        InputError: ``seed`` is not a non-negative integer.
    """
    _check_seed(seed, "a scene seed")
    rng = np.random.default_rng(int(seed))
    if config.size is not None:
        height, width = (int(v) for v in config.size)
    else:
        height, width = (int(v) for v in rng.integers(config.min_size, config.max_size + 1, 2))
    domain = DOMAINS[config.domain]
    background = domain.background_style(rng)
    canvas = Canvas(rng, height, width, background)
    _add_clutter(rng, canvas, config, domain, background)
    _add_objects(rng, canvas, config, domain, background)
    image = canvas.image
    if rng.random() < config.blur_probability:
        blur = ImageFilter.BoxBlur(rng.uniform(0.3, 0.8))
        image = np.array(Image.fromarray(image).filter(blur))
    if config.noise > 0:
        amplitude = config.noise
        noise = rng.integers(-amplitude, amplitude + 1, (height, width, 1), dtype=np.int16)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    skip = () if config.label_clutter else ("clutter",)
    masks, parent, boxes, kinds = canvas.instances(config.min_area, skip)
    return Scene(image, masks, parent, boxes, kinds, int(seed))


def scene_seed(base_seed: int, index: int) -> int:
    """The seed of scene ``index`` of a dataset with ``base_seed``: ``base * 2**32 + index``.

    Distinct ``(base_seed, index)`` pairs (with ``0 <= index < 2**32``) give distinct
    seeds, so datasets with different base seeds share no scene. Training uses
    :data:`TRAIN_BASE_SEED` (0) and evaluation :data:`EVAL_BASE_SEED` (1).

    Raises:
        InputError: ``base_seed`` is negative or ``index`` outside ``[0, 2**32)``.
    """
    if base_seed < 0 or not 0 <= index < _MAX_INDEX:
        raise InputError(f"need base_seed >= 0 and 0 <= index < 2**32; got {base_seed} and {index}")
    return int(base_seed) * _MAX_INDEX + int(index)


class SceneDataset(Dataset[Scene]):
    """A map-style torch dataset of ``length`` scenes; item ``i`` is generated on access.

    Item ``i`` is ``generate_scene(scene_seed(seed, i), config)``, so it is the same in
    every epoch and every worker process. Use ``seed=TRAIN_BASE_SEED`` for training and
    ``seed=EVAL_BASE_SEED`` for evaluation: different base seeds never share a scene.
    Scenes differ in size, so a ``DataLoader`` needs ``collate_fn=list`` (or a collate
    function that crops, resizes or pads).
    """

    def __init__(self, length: int, seed: int, config: SceneConfig = SceneConfig()) -> None:
        _check_seed(seed, "a dataset's base seed")
        if not 0 <= length <= _MAX_INDEX:
            raise InputError(f"a dataset's length must lie in [0, 2**32]; got {length}")
        self.length = int(length)
        self.seed = int(seed)
        self.config = config

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Scene:
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"scene index {index} out of range for {self.length} scenes")
        return generate_scene(scene_seed(self.seed, index), self.config)


def _add_clutter(
    rng: np.random.Generator, canvas: Canvas, config: SceneConfig, domain: Domain, background: Style
) -> None:
    """Paint small blobs and short lines on the background (instances only if large)."""
    count = int(rng.poisson(config.clutter * canvas.height * canvas.width / 65536))
    for _ in range(count):
        kind = _CLUTTER_KINDS[int(rng.integers(len(_CLUTTER_KINDS)))]
        radius = rng.uniform(4, 16) if kind == "thin" else math.exp(rng.uniform(0.4, 2.2))
        cy, cx = rng.uniform(0, canvas.height), rng.uniform(0, canvas.width)
        region = rasterize_shape(kind, rng, cy, cx, radius, canvas.height, canvas.width)
        if region is not None:
            style = domain.object_style(rng, background, similar=rng.random() < 0.5, solid=True)
            canvas.place(region, np.where(region.mask, 0, -1), [-1], ["clutter"], [style])


def _add_objects(
    rng: np.random.Generator, canvas: Canvas, config: SceneConfig, domain: Domain, background: Style
) -> None:
    """Draw the objects, largest (roughly) first so small ones are seldom buried."""
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    kinds = list(domain.shape_weights)
    weights = np.array(list(domain.shape_weights.values()))
    low, high = (math.log(s) for s in config.object_scale)
    short_side = min(canvas.height, canvas.width)
    specs = []
    for _ in range(count):
        kind = kinds[int(rng.choice(len(kinds), p=weights))]
        radius = 0.5 * short_side * math.exp(rng.uniform(low, high))
        area = radius * 8 if kind == "thin" else radius * radius * 3
        specs.append((area * rng.uniform(0.5, 2.0), kind, radius))
    specs.sort(key=lambda spec: -spec[0])
    centres: list[tuple[float, float]] = []
    for _, kind, radius in specs:
        if centres and rng.random() < 0.5:  # next to an earlier object, so they overlap
            near_y, near_x = centres[int(rng.integers(len(centres)))]
            angle, distance = rng.uniform(0, 2 * math.pi), radius * rng.uniform(0.3, 1.3)
            cy, cx = near_y + distance * math.sin(angle), near_x + distance * math.cos(angle)
        else:
            cy = rng.uniform(0.05, 0.95) * canvas.height
            cx = rng.uniform(0.05, 0.95) * canvas.width
            centres.append((cy, cx))
        region = domain.rasterize(
            kind, rng, cy, cx, radius, canvas.height, canvas.width, config.thin_width
        )
        if region is None:
            continue
        similar = rng.random() < config.similar_colour_probability
        style = domain.object_style(rng, background, similar=similar)
        labels = np.where(region.mask, 0, -1).astype(np.int32)
        parents, kinds_out, styles = [-1], [kind], [style]
        area = int(np.count_nonzero(region.mask))
        if kind != "thin" and area >= 400 and rng.random() < config.part_probability:
            _add_parts(rng, config, domain, labels, parents, kinds_out, styles)
        canvas.place(region, labels, parents, kinds_out, styles)
        if domain.finish is not None:
            domain.finish(rng, canvas, region, labels, styles)


def _add_parts(
    rng: np.random.Generator,
    config: SceneConfig,
    domain: Domain,
    labels: npt.NDArray[np.int32],
    parents: list[int],
    kinds: list[str],
    styles: list[Style],
) -> None:
    """Give local node 0 (an object, ``labels == 0``) parts and maybe sub-parts, in place.

    Nodes are appended in depth-first pre-order (a part, then its sub-parts), which
    :meth:`Canvas.place` relies on.
    """
    for part in _pieces(rng, labels == 0, max_inner=3):
        part_id = len(parents)
        parents.append(0)
        kinds.append("part")
        styles.append(domain.part_style(rng, styles[0]))
        labels[part] = part_id
        current = labels == part_id
        if rng.random() >= config.subpart_probability:
            continue
        if np.count_nonzero(current) < 6 * config.min_area:
            continue
        for sub in _pieces(rng, current, max_inner=2):
            parents.append(part_id)
            kinds.append("subpart")
            styles.append(domain.part_style(rng, styles[part_id]))
            labels[sub] = len(parents) - 1


def _pieces(
    rng: np.random.Generator, mask: npt.NDArray[np.bool_], max_inner: int
) -> list[npt.NDArray[np.bool_]]:
    """Parts of ``mask``: 2 to 4 regions cut by lines, else 1 to ``max_inner`` inner shapes."""
    if rng.random() < 0.55:
        regions = split_by_cuts(rng, mask, cuts=int(rng.integers(1, 3)))
        if len(regions) >= 2:
            return regions
    count = int(rng.integers(1, max_inner + 1))
    inner = (inner_shape(rng, mask, rng.uniform(0.25, 0.6)) for _ in range(count))
    return [shape for shape in inner if shape is not None]


def _check_seed(seed: object, what: str) -> None:
    """Raise :class:`InputError` unless ``seed`` is a non-negative integer (not a bool)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"{what} must be a non-negative integer; got {seed!r}")
