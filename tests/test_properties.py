"""Property tests: random and malformed input fails with segany's documented errors.

``load_image``, ``Predictor.predict`` and ``load_model`` are fed odd shapes and dtypes,
NaN/inf/huge numbers, strings, nested lists, truncated and corrupted files and odd argument
types. Each call either returns what its docstring promises or raises the documented
:class:`~segany.errors.SegAnyError` subclass (``InputError``/``CheckpointError``); any other
exception fails the test. The regression tests below the properties pin the bugs they found.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import segany
from segany import registry
from segany.data.images import load_image
from segany.errors import CheckpointError, InputError, NoImageError, SegAnyError
from segany.models import Sam, build_sam
from segany.registry import ModelSpec
from tests.helpers import TINY

H, W = 30, 50  # the predictor's image
LOW = 4 * TINY.embedding_size  # side of its low-res logits
LIMIT = 2**20  # max_pixels for damaged files: a corrupted header must not allocate much

FIXTURE_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

pytestmark = [  # third-party warnings about the odd inputs themselves
    pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning"),
    pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants:UserWarning"),
]


def fast(examples: int) -> Any:
    """Hypothesis settings of these tests: few examples, no deadline (the machine is shared)."""
    return settings(max_examples=examples, deadline=None, suppress_health_check=FIXTURE_OK)


# --------------------------------------------------------------------------- load_image


def check_image(result: np.ndarray) -> np.ndarray:
    assert isinstance(result, np.ndarray)
    assert result.ndim == 3 and result.shape[2] == 3 and result.shape[0] * result.shape[1] > 0
    assert result.dtype == np.uint8 and result.flags.c_contiguous
    return result


def image_or_input_error(source: object, **kwargs: Any) -> np.ndarray | None:
    """``load_image(source)`` checked, or None when it raised InputError."""
    try:
        return check_image(load_image(source, **kwargs))  # type: ignore[arg-type]
    except InputError as exc:
        assert isinstance(exc, SegAnyError) and str(exc)
        return None


ARRAY_DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint8", "uint8", "uint16",
    "float16", "float32", "float64", "complex64", ">u1",
]  # fmt: skip
ARRAY_SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(1, 5)),
)


@st.composite
def image_arrays(draw: st.DrawFn) -> np.ndarray:
    shape = draw(ARRAY_SHAPES)
    if draw(st.integers(0, 9)) == 0:
        arr = np.empty(shape, dtype=object)
        arr.fill(draw(st.one_of(st.none(), st.integers(0, 255), st.text(max_size=2))))
    else:
        arr = draw(hnp.arrays(st.sampled_from(ARRAY_DTYPES), shape))  # floats with NaN/inf
    layout = draw(st.sampled_from(["c", "fortran", "reversed", "strided", "matrix"]))
    if layout == "fortran":
        arr = np.asfortranarray(arr)
    elif layout == "reversed" and arr.ndim:
        arr = arr[::-1]
    elif layout == "strided" and arr.ndim >= 2:
        arr = np.repeat(arr, 2, axis=1)[:, ::2]
    elif layout == "matrix" and arr.ndim == 2:
        arr = np.asmatrix(arr)
    return arr


@fast(120)
@given(arr=image_arrays())
def test_load_image_arrays(arr: np.ndarray) -> None:
    result = image_or_input_error(arr)
    arr = np.asarray(arr)
    documented = (
        arr.dtype == np.uint8
        and arr.size > 0
        and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4)))
    )
    assert (result is not None) == documented, (arr.dtype, arr.shape)
    if result is not None:
        rgb = arr[:, :, None] if arr.ndim == 2 else arr
        assert np.array_equal(result, np.broadcast_to(rgb[:, :, :3], result.shape))


@fast(50)
@given(data=st.binary(max_size=1500), suffix=st.sampled_from([".png", ".jpg", ".tif", ""]))
def test_load_image_random_bytes(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    image_or_input_error(path, max_pixels=LIMIT)


FORMAT_MODES = {
    "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"],
    "JPEG": ["L", "RGB", "CMYK"],
    "GIF": ["L", "P"],
    "BMP": ["1", "L", "P", "RGB"],
    "TIFF": ["1", "L", "RGB", "RGBA", "CMYK", "I;16", "I", "F"],
    "WEBP": ["RGB", "RGBA"],
}


@st.composite
def encoded_images(draw: st.DrawFn) -> tuple[bytes, tuple[int, int]]:
    """A small image encoded in some format and mode, maybe with an EXIF orientation."""
    fmt = draw(st.sampled_from(sorted(FORMAT_MODES)))
    mode = draw(st.sampled_from(FORMAT_MODES[fmt]))
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    im = Image.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    orientation = draw(st.sampled_from([None, 1, 3, 6, 8, 0, 9, 65535]))
    if orientation is not None and fmt in ("PNG", "JPEG", "TIFF", "WEBP"):
        exif = Image.Exif()
        exif[0x0112] = orientation
        im.save(buffer, fmt, exif=exif)
    else:
        im.save(buffer, fmt)
    return buffer.getvalue(), (height, width)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's "Corrupt EXIF data" and such
@fast(60)
@given(
    encoded=encoded_images(),
    cut=st.one_of(st.just(1.0), st.floats(0.0, 1.0)),  # 1.0: not truncated
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=6),
)
def test_load_image_damaged_files(
    tmp_path: Path,
    encoded: tuple[bytes, tuple[int, int]],
    cut: float,
    flips: list[tuple[float, int]],
) -> None:
    data, (height, width) = encoded
    damaged = bytearray(data)
    for where, value in flips:
        damaged[min(int(where * len(damaged)), len(damaged) - 1)] = value
    damaged = damaged[: max(1, round(cut * len(damaged)))] if cut < 1 else damaged
    path = tmp_path / "damaged.img"
    path.write_bytes(bytes(damaged))
    result = image_or_input_error(path, max_pixels=LIMIT)
    event("decoded" if result is not None else "refused")
    if bytes(damaged) == data:  # undamaged: it must load, upright (EXIF 6 and 8 swap sides)
        assert result is not None and sorted(result.shape[:2]) == sorted((height, width))
    try:
        im = Image.open(path)  # Pillow's own open may refuse it; that is not segany's call
    except Exception:
        return
    with im:
        image_or_input_error(im, max_pixels=LIMIT)


PIL_MODES = [
    "1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "LA", "La",
    "PA", "RGBX", "RGBa", "I;16", "I;16L", "I;16B", "I;16N",
]  # fmt: skip


@fast(80)
@given(
    mode=st.sampled_from(PIL_MODES),
    size=st.tuples(st.integers(0, 6), st.integers(0, 6)),
    seed=st.integers(0, 2**16),
)
def test_load_image_pillow_modes(mode: str, size: tuple[int, int], seed: int) -> None:
    """Any mode, random raw bytes (so F holds NaN and inf, I negative values), zero sizes."""
    blank = Image.new(mode, size)
    raw = np.random.default_rng(seed).integers(0, 256, len(blank.tobytes()), dtype=np.uint8)
    im = Image.frombytes(mode, size, raw.tobytes()) if size[0] * size[1] else blank
    result = image_or_input_error(im)
    if result is not None:
        assert result.shape == (size[1], size[0], 3)
    elif size[0] * size[1] and mode != "La":  # only La lacks a conversion to RGB
        pytest.fail(f"a {size} image of mode {mode} was refused")


JUNK = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.builds(bytearray, st.binary(max_size=3)),
    st.builds(object),
)


@fast(60)
@given(source=st.one_of(JUNK, st.text(max_size=300)), max_pixels=st.one_of(JUNK, st.just(LIMIT)))
def test_load_image_odd_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: object, max_pixels: object
) -> None:
    monkeypatch.chdir(tmp_path)  # a text source is a path that names nothing here
    assert image_or_input_error(source, max_pixels=max_pixels) is None
    tiny = Image.new("L", (3, 2))
    accepted = max_pixels is None or (
        isinstance(max_pixels, int) and not isinstance(max_pixels, bool) and max_pixels >= 6
    )
    assert (image_or_input_error(tiny, max_pixels=max_pixels) is not None) == accepted


# ------------------------------------------------------------------ Predictor.predict


@pytest.fixture(scope="module")
def predictor() -> segany.Predictor:
    torch.manual_seed(0)
    pred = segany.Predictor(build_sam(TINY))
    pred.set_image(np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8))
    return pred


NUMBERS = st.one_of(
    st.floats(),  # NaN, inf, 1e308, subnormals
    st.floats(0, W),
    st.integers(-(10**400), 10**400),
    st.sampled_from([0, 1, H, W, -1, 1e300, -1e300, 2**63, np.float32(1e30), True]),
)
LEAVES = st.one_of(
    NUMBERS, st.none(), st.text(max_size=3), st.binary(max_size=3), st.complex_numbers()
)
NESTED = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner), max_leaves=10
)
PROMPT_DTYPES = st.sampled_from(
    ["bool", "int8", "int64", "uint16", "float16", "float32", "float64", "complex64", "U2"]
)
ARRAYS = hnp.arrays(PROMPT_DTYPES, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
JUNK_PROMPT = st.one_of(NESTED, ARRAYS)


def box_list(draw: st.DrawFn) -> list[float]:
    x0, x1 = sorted(draw(st.lists(st.floats(0, W), min_size=2, max_size=2)))
    y0, y1 = sorted(draw(st.lists(st.floats(0, H), min_size=2, max_size=2)))
    return [x0, y0, x1, y1]


@st.composite
def prompts(draw: st.DrawFn) -> dict[str, object]:
    """Keyword arguments of ``predict``: often well formed, sometimes slightly off, or junk."""
    n = draw(st.integers(1, 4))
    points = [[draw(st.floats(0, W)), draw(st.floats(0, H))] for _ in range(n)]
    labels = [draw(st.integers(0, 1)) for _ in range(n)]
    n_boxes = draw(st.integers(1, 3))
    boxes = [box_list(draw) for _ in range(n_boxes)]
    box: object = boxes[0] if draw(st.booleans()) else np.array(boxes)
    lead = n_boxes if isinstance(box, np.ndarray) else 1
    mask_shape = draw(
        st.sampled_from([(LOW, LOW), (1, LOW, LOW), (lead, LOW, LOW), (lead, 1, LOW, LOW)])
    )
    mask = draw(hnp.arrays(np.float32, mask_shape, elements=st.floats(-30, 30, width=32)))
    good = {"points": points, "labels": labels, "box": box, "mask_input": mask}
    kwargs: dict[str, object] = {}
    for key, value in good.items():
        choice = draw(st.sampled_from(["good", "good", "none", "none", "junk"]))
        if choice == "good":
            kwargs[key] = value
        elif choice == "junk":
            kwargs[key] = draw(JUNK_PROMPT)
    if draw(st.booleans()) and kwargs.get("points") is points:  # off: one coordinate
        where = draw(st.sampled_from([(0, 0), (0, 1), (n - 1, 1)]))
        points[where[0]][where[1]] = draw(NUMBERS)
    return kwargs


def check_prediction(prediction: object, kwargs: dict[str, object], multimask: bool) -> None:
    assert isinstance(prediction, segany.Prediction)
    box = kwargs.get("box")
    lead = (len(box),) if box is not None and np.ndim(box) == 2 else ()  # type: ignore[arg-type]
    c = 3 if multimask else 1
    assert prediction.masks.shape == (*lead, c, H, W) and prediction.masks.dtype == np.bool_
    assert prediction.scores.shape == (*lead, c)
    assert prediction.low_res_logits.shape == (*lead, c, LOW, LOW)


@fast(150)
@given(kwargs=prompts(), multimask=st.booleans())
def test_predict_answers_or_refuses(
    predictor: segany.Predictor, kwargs: dict[str, object], multimask: bool
) -> None:
    try:
        prediction = predictor.predict(**kwargs, multimask=multimask)  # type: ignore[arg-type]
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
        event("refused")
        return
    event("answered")
    check_prediction(prediction, kwargs, multimask)


def test_predict_before_set_image() -> None:
    # segany's NoImageError: a SegAnyError, and a RuntimeError as the official code raises
    with pytest.raises(NoImageError, match="set_image"):
        segany.Predictor(build_sam(TINY)).predict(points=[[1, 1]], labels=[1])


# ------------------------------------------------------------------------- load_model

TINY_NAME = "tiny_properties"


@pytest.fixture(scope="module", autouse=True)
def tiny_registered() -> Iterator[None]:
    """``TINY`` registered (without weights)."""
    spec = ModelSpec(name=TINY_NAME, description="tiny", config=TINY, weights=None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "_REGISTRY", {**registry._REGISTRY, TINY_NAME: spec})
        yield


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_sam(TINY).state_dict()


@pytest.fixture(scope="module")
def tiny_files(tiny_state: dict[str, torch.Tensor]) -> dict[str, bytes]:
    """The TINY state dict as the bytes of a ``.pth`` and of a ``.safetensors`` file."""
    pth = io.BytesIO()
    torch.save(tiny_state, pth)
    return {".pth": pth.getvalue(), ".safetensors": safetensors.torch.save(tiny_state)}


def model_or_error(name: object = TINY_NAME, checkpoint: object = None, **kwargs: Any) -> object:
    """``load_model(...)``: a Sam, or the CheckpointError/InputError it raised."""
    try:
        model = segany.load_model(name, checkpoint, **kwargs)  # type: ignore[arg-type]
    except (CheckpointError, InputError) as exc:
        assert str(exc)
        return exc
    assert isinstance(model, Sam)
    return model


SAFETENSORS_DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I8", "U8", "BOOL", "F8_E4M3", "X"]


@st.composite
def safetensors_like(draw: st.DrawFn) -> bytes:
    """A safetensors header (often valid JSON, with odd dtypes, shapes and offsets) + data."""
    entries = {}
    for key in draw(st.lists(st.text(max_size=4), max_size=3)):
        shape = draw(
            st.lists(st.integers(-1, 2**40), max_size=3) | st.lists(st.integers(0, 3), max_size=3)
        )
        offsets = draw(st.lists(st.integers(-1, 64), min_size=0, max_size=3))
        entries[key] = {
            "dtype": draw(st.sampled_from(SAFETENSORS_DTYPES)),
            "shape": shape,
            "data_offsets": offsets,
        }
    header = json.dumps(entries).encode()
    if draw(st.booleans()):
        header = header[: draw(st.integers(0, len(header)))]
    length = draw(st.sampled_from([len(header), len(header) + 1, 0, 2**63 - 1]))
    return length.to_bytes(8, "little") + header + draw(st.binary(max_size=64))


@fast(60)
@given(
    data=st.one_of(
        st.binary(max_size=600),
        st.binary(max_size=600).map(lambda b: b"PK\x03\x04" + b),
        st.binary(max_size=600).map(lambda b: b"\x80\x02" + b),
        safetensors_like(),
    ),
    suffix=st.sampled_from([".pth", ".pt", ".safetensors", ".bin", ""]),
    named=st.booleans(),
)
def test_load_model_random_bytes(tmp_path: Path, data: bytes, suffix: str, named: bool) -> None:
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    assert isinstance(model_or_error(TINY_NAME if named else None, path), CheckpointError)


@fast(30)
@given(
    suffix=st.sampled_from([".pth", ".safetensors"]),
    cut=st.one_of(st.just(1.0), st.floats(0.0, 1.0)),  # 1.0: not truncated
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=4),
)
def test_load_model_damaged_checkpoint(
    tmp_path: Path,
    tiny_files: dict[str, bytes],
    suffix: str,
    cut: float,
    flips: list[tuple[float, int]],
) -> None:
    damaged = bytearray(tiny_files[suffix])
    for where, value in flips:
        damaged[min(int(where * len(damaged)), len(damaged) - 1)] = value
    if cut < 1:
        damaged = damaged[: round(cut * len(damaged))]
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(bytes(damaged))
    outcome = model_or_error(TINY_NAME, path)
    event(type(outcome).__name__)
    if bytes(damaged) == tiny_files[suffix]:
        assert isinstance(outcome, Sam)


PICKLABLE = st.recursive(
    st.one_of(
        st.none(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=4),
        st.builds(torch.zeros, st.integers(0, 3)),
    ),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


@fast(40)
@given(obj=PICKLABLE, named=st.booleans())
def test_load_model_pickle_that_is_not_a_state_dict(
    tmp_path: Path, obj: object, named: bool
) -> None:
    path = tmp_path / "obj.pth"
    torch.save(obj, path)
    assert isinstance(model_or_error(TINY_NAME if named else None, path), CheckpointError)


MUTATIONS = st.sampled_from(["drop", "rename", "reshape", "extra", "dtype", "float dtype"])
OTHER_DTYPES = [torch.int8, torch.int32, torch.int64, torch.uint8, torch.bool]
FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float64]


@fast(25)
@given(
    mutations=st.lists(st.tuples(MUTATIONS, st.integers(0, 10**6), st.integers(0, 4)), max_size=3),
    named=st.booleans(),
)
def test_load_model_safetensors_wrong_tensors(
    tmp_path: Path,
    tiny_state: dict[str, torch.Tensor],
    mutations: list[tuple[str, int, int]],
    named: bool,
) -> None:
    state = dict(tiny_state)
    keys = sorted(state)
    for kind, index, choice in mutations:
        key = keys[index % len(keys)]
        if key not in state:
            continue
        tensor = state[key]
        if kind == "drop":
            del state[key]
        elif kind == "rename":
            state[key + ".x"] = state.pop(key)
        elif kind == "reshape":
            state[key] = tensor.reshape(-1, 1) if tensor.ndim != 2 else tensor.reshape(-1)
        elif kind == "extra":
            state[f"extra.{choice}"] = torch.zeros(choice)
        elif kind == "dtype":
            if not tensor.is_floating_point():
                continue  # an int64 counter stored as int8 is still fine
            state[key] = tensor.to(OTHER_DTYPES[choice % len(OTHER_DTYPES)])
        else:
            state[key] = tensor.to(FLOAT_DTYPES[choice % len(FLOAT_DTYPES)])
    path = tmp_path / "wrong.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    # it still fits when only float tensors became floats of another precision (a reshape
    # done twice may restore the shape); without a name it is recognised as TINY_NAME
    fits = set(state) == set(tiny_state) and all(
        state[k].shape == v.shape and (state[k].is_floating_point() or not v.is_floating_point())
        for k, v in tiny_state.items()
    )
    outcome = model_or_error(TINY_NAME if named else None, path)
    assert isinstance(outcome, Sam if fits else CheckpointError), outcome


class _Payload:
    """Unpickling this calls ``func(*args)``, which creates a marker file."""

    def __init__(self, func: object, args: tuple[object, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (self.func, self.args)


def payloads(marker: Path) -> list[_Payload]:
    touch = f"open({str(marker)!r}, 'w').close()"
    return [
        _Payload(exec, (touch,)),
        _Payload(eval, (touch,)),
        _Payload(os.system, (f"touch '{marker}'",)),
        _Payload(subprocess.call, (["touch", str(marker)],)),
        _Payload(open, (str(marker), "w")),
    ]


@fast(20)
@given(
    which=st.integers(0, 4),
    wrap=st.sampled_from(["bare", "entry", "nested"]),
    writer=st.sampled_from(["torch", "pickle2", "pickle5"]),
)
def test_load_model_never_runs_pickled_code(
    tmp_path: Path, which: int, wrap: str, writer: str
) -> None:
    marker = tmp_path / "marker"
    payload: object = payloads(marker)[which]
    if wrap == "entry":
        payload = {"w": torch.zeros(1), "evil": payload}
    elif wrap == "nested":
        payload = {"model": {"w": torch.zeros(1), "evil": payload}}
    path = tmp_path / "evil.pth"
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2 if writer == "pickle2" else 5))
    outcome = model_or_error(None, path)
    assert isinstance(outcome, CheckpointError)
    if writer == "torch":
        assert "refused for safety" in str(outcome)
    assert not marker.exists()


@fast(60)
@given(
    name=st.one_of(JUNK, st.sampled_from([TINY_NAME, "mobile_sam"])),
    checkpoint=st.one_of(
        JUNK.filter(lambda x: x is not None),
        st.text(max_size=300).map(lambda t: t + "\x00x" if len(t) % 3 == 0 else t),
        st.sampled_from(["a" * 5000, "", ".", "/", "/dev/null", "missing.pth"]),
        st.builds(Path, st.text(min_size=1, max_size=20)),
    ),
    device=st.one_of(st.just("cpu"), JUNK.filter(lambda x: not isinstance(x, int))),
    mode=st.one_of(st.just("exact"), JUNK),
)
def test_load_model_odd_arguments(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: object,
    checkpoint: object,
    device: object,
    mode: object,
) -> None:
    monkeypatch.chdir(tmp_path)  # text checkpoints name files that do not exist
    outcome = model_or_error(name, checkpoint, pretrained=False, device=device, mode=mode)
    assert isinstance(outcome, CheckpointError | InputError)


# ------------------------------------------------- regressions (bugs the properties found)


def test_regression_pillow_image_of_truncated_file(tmp_path: Path) -> None:
    """Was OSError: a Pillow image opened from a truncated file failed only in load()."""
    path = tmp_path / "t.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:900])
    with pytest.raises(InputError, match="cannot be decoded"), Image.open(path) as im:
        load_image(im)


def test_regression_closed_pillow_image() -> None:
    """Was ValueError("Operation on closed image")."""
    im = Image.new("RGB", (4, 4))
    im.close()
    with pytest.raises(InputError, match="closed"):
        load_image(im)


def test_regression_image_path_too_long() -> None:
    """Was OSError(ENAMETOOLONG) from Path.exists()."""
    with pytest.raises(InputError, match="Cannot read image file"):
        load_image("x" * 5000)


def test_regression_bad_max_pixels() -> None:
    """Was TypeError for a str; a negative limit refused every image with a bomb message."""
    with pytest.raises(InputError, match="max_pixels must be"):
        load_image(Image.new("L", (2, 2)), max_pixels="100")  # type: ignore[arg-type]


def test_regression_numpy_matrix() -> None:
    """Was ValueError("shape too large to be a matrix") from adding a channel axis."""
    assert load_image(np.asmatrix(np.zeros((3, 4), np.uint8))).shape == (3, 4, 3)


def test_regression_pillow_message_article() -> None:
    """Said "The the given Pillow image"."""
    with pytest.raises(InputError, match="^The given Pillow image has zero size"):
        load_image(Image.new("L", (0, 3)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # OverflowError: Python ints beyond the float range
        ({"points": [[10**400, 1]], "labels": [1]}, "too large"),
        ({"box": [0, 0, 10**400, 1]}, "too large"),
        # complex numbers had their imaginary part dropped (a ComplexWarning), dates counted days
        ({"points": np.array([[1 + 1j, 2]]), "labels": [1]}, "numbers"),
        ({"points": np.array(["2020-01-01", "2020-02-01"], "M8[D]"), "labels": [1]}, "numbers"),
        # mask_input: ValueError/TypeError for non-numbers, NaN and float32 overflow accepted
        ({"mask_input": "abc"}, "mask_input must be numbers"),
        ({"mask_input": [[1, 2], [3]]}, "mask_input must be numbers"),
        ({"mask_input": np.full((1, LOW, LOW), np.nan)}, "mask_input must be finite"),
        ({"mask_input": np.full((1, LOW, LOW), 1e300)}, "mask_input must be finite"),
        # a 1x8 box array was read as two boxes, a 2x2 one as one box
        ({"box": np.zeros((1, 8))}, "x0, y0, x1, y1"),
        ({"box": [[0, 0], [5, 5]]}, "x0, y0, x1, y1"),
    ],
)  # fmt: skip
def test_regression_prompts(
    predictor: segany.Predictor, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        predictor.predict(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": ["a"], "checkpoint": "x.pth"}, InputError, "name must be"),  # TypeError
        ({"checkpoint": 5}, InputError, "must be a file path"),  # TypeError
        ({"checkpoint": "a" * 5000}, CheckpointError, "cannot open"),  # OSError
        ({"name": TINY_NAME, "pretrained": False, "device": "nope"}, InputError, "device"),
    ],
)
def test_regression_load_model_arguments(kwargs: dict, error: type, message: str) -> None:
    """Each raised TypeError, OSError or torch's RuntimeError before."""
    with pytest.raises(error, match=message):
        segany.load_model(**kwargs)


def test_regression_blocked_module_pickle(tmp_path: Path) -> None:
    """torch words refusals of blocked modules (os, posix) differently; the message was generic."""
    path = tmp_path / "evil.pth"
    torch.save(_Payload(os.system, ("true",)), path)
    with pytest.raises(CheckpointError, match=r"\(posix\.system\) and was refused for safety"):
        segany.load_model(checkpoint=path)


@pytest.mark.parametrize(
    ("convert", "message"),
    [
        (lambda t: t.to(torch.int32) if t.is_floating_point() else t, "dtype int32"),  # cast
        (lambda t: t.to(torch.bool) if t.is_floating_point() else t, "dtype bool"),  # cast
        (lambda t: t.to(torch.complex64) if t.is_floating_point() else t, "complex64"),  # cast
        (lambda t: torch.empty_like(t, device="meta"), "meta tensor"),  # RuntimeError
        (lambda t: t.to_sparse() if t.is_floating_point() else t, "sparse_coo tensor"),  # Runtime
    ],
)
def test_regression_checkpoint_tensor_kinds(
    tmp_path: Path, tiny_state: dict[str, torch.Tensor], convert: Any, message: str
) -> None:
    """Integer, bool and complex tensors were cast silently; meta and sparse ones raised
    torch's RuntimeError."""
    path = tmp_path / "odd.pth"
    torch.save({k: convert(v) for k, v in tiny_state.items()}, path)
    with pytest.raises(CheckpointError, match=message):
        segany.load_model(TINY_NAME, checkpoint=path)


def test_regression_non_string_key(tmp_path: Path) -> None:
    """Said "entry 1 is a Tensor" for an int key."""
    path = tmp_path / "intkey.pth"
    torch.save({1: torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"key 1 \(int\) is not a name"):
        segany.load_model(checkpoint=path)
