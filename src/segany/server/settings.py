"""A project's proposal settings: the SegEvery options its proposals and jobs run with.

Stored in ``projects.settings`` as only what was changed (None: nothing), so a project
follows the defaults until someone changes them. :func:`effective` fills in the defaults;
:func:`merged` checks a change and gives the settings to store. Every bad change is an
:class:`SettingsError` (answered 422) that names the key and the allowed values, without
repeating a long value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from segany.server.errors import HttpError

__all__ = ["DEFAULTS", "LIMITS", "STRATEGIES", "SettingsError", "effective", "merged"]

STRATEGIES = ("grid", "objects")
DEFAULTS: dict[str, Any] = {
    "strategy": "grid",  # SAM's point grid, or MobileSAMv2's object boxes
    "points_per_side": 16,  # the grid's n x n points
    "pred_iou_thresh": 0.88,  # keep masks whose predicted IoU is > this
    "stability_score_thresh": 0.95,  # keep masks whose stability score is >= this
    "overlap_iou": 0.5,  # skip a mask whose IoU with an annotation already there is >= this
}


@dataclass(frozen=True)
class Limit:
    """The inclusive range of a number setting (``low_open``: the low end excluded)."""

    low: float
    high: float
    integer: bool = False
    low_open: bool = False

    def allows(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        low = "above" if self.low_open else "from"
        return f"{kind} {low} {self.low:g} to {self.high:g}"


LIMITS: dict[str, Limit] = {
    "points_per_side": Limit(1, 128, integer=True),
    "pred_iou_thresh": Limit(0.0, 1.0),
    "stability_score_thresh": Limit(0.0, 1.0),
    "overlap_iou": Limit(0.0, 1.0, low_open=True),
}


class SettingsError(HttpError):
    """A settings change with an unknown key or a value out of its range."""

    status = 422


def effective(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings in force: the stored changes over :data:`DEFAULTS`."""
    return {**DEFAULTS, **{k: v for k, v in (stored or {}).items() if k in DEFAULTS}}


def merged(stored: Mapping[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The settings to store after ``changes`` (a value None puts the default back).

    Raises:
        SettingsError: an unknown key, or a value of the wrong type or out of range.
    """
    if not isinstance(changes, Mapping):
        raise SettingsError("the settings must be a JSON object")
    unknown = sorted(str(k)[:40] for k in changes if k not in DEFAULTS)
    if unknown:
        raise SettingsError(
            f"unknown setting {', '.join(unknown)}; the settings are {', '.join(DEFAULTS)}"
        )
    result = {k: v for k, v in (stored or {}).items() if k in DEFAULTS}
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _checked(key, value)
    return result


def _checked(key: str, value: Any) -> Any:
    if key == "strategy":
        if value not in STRATEGIES:
            raise SettingsError(
                f"strategy must be one of {', '.join(STRATEGIES)}; got {_short(value)}"
            )
        return value
    limit = LIMITS[key]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if limit.integer and number and isinstance(value, float) and value.is_integer():
        value = int(value)
    if (
        not number
        or (limit.integer and not isinstance(value, int))
        or not math.isfinite(value)
        or not limit.allows(value)
    ):
        raise SettingsError(f"{key} must be {limit.describe()}; got {_short(value)}")
    return int(value) if limit.integer else float(value)


def _short(value: Any) -> str:
    """``value`` as the error repeats it: at most 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
