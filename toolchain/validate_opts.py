"""Range checks for every number a user passes on the command line, run before any work starts.

Why: click's `type=float` accepts `nan`, `inf` and `1e-300`. A NaN bit budget or tolerance makes
every comparison false (a check that silently passes), `--dt inf` turns every decay into 0, and
`--dt 1e-300` asks for 1e300 steps. Each number is checked for finiteness and a documented range,
and the error names the option, the range and the value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InputError, SpikeforgeError

#: option -> (low, high, low inclusive, high inclusive, meaning)
RANGES: dict[str, tuple[float, float, bool, bool, str]] = {
    "--bit-budget": (0.0, 1e6, False, True, "weight bits x spike bits x time steps"),
    "--prune": (0.0, 1.0, True, False, "target sparsity"),
    "--timesteps": (1, 1_000_000, True, True, "time steps per inference"),
    "--dt": (1e-9, 10.0, True, True, "time step in seconds (1 ns to 10 s)"),
    "--seed": (0, 2**32 - 1, True, True, "random seed"),
    "--tolerance": (0.0, 1.0, True, True, "largest accepted accuracy drop, a fraction"),
    "--min-agreement": (0.0, 1.0, True, True, "smallest accepted agreement, a fraction"),
    "--timeout": (0.0, 7 * 24 * 3600.0, False, True, "seconds"),
}

#: calibration sets larger than this many elements are refused before conversion reads them
MAX_CALIBRATION_ELEMENTS = 1 << 28


def check_number(option: str, value: float | int | None) -> None:
    """Refuse a non-finite or out-of-range value for `option` (None = not given, fine)."""
    if value is None:
        return
    lo, hi, lo_inc, hi_inc, what = RANGES[option]
    v = float(value)
    ok = math.isfinite(v) and (v >= lo if lo_inc else v > lo) and (v <= hi if hi_inc else v < hi)
    if not ok:
        interval = f"{'[' if lo_inc else '('}{lo:g}, {hi:g}{']' if hi_inc else ')'}"
        raise SpikeforgeError(f"{option} must be a finite number in {interval} ({what}), got {value}",
                              field=option)


def check_numbers(values: Mapping[str, Any]) -> None:
    for option, value in values.items():
        check_number(option, value)


def check_calibration(arrays: Mapping[str, np.ndarray], file: str) -> None:
    """Calibration data must be non-empty, numeric and finite: it sets the conversion's scales."""
    if not arrays:
        raise InputError("calibration file holds no arrays", file=file)
    total = 0
    for key, arr in arrays.items():
        if arr.dtype.kind not in "biuf":
            raise InputError(f"array '{key}' has dtype {arr.dtype}; expected numbers", file=file, field=key)
        if arr.size == 0:
            raise InputError(f"array '{key}' is empty (shape {arr.shape})", file=file, field=key)
        total += arr.size
        if total > MAX_CALIBRATION_ELEMENTS:
            raise InputError(f"calibration data holds more than {MAX_CALIBRATION_ELEMENTS} elements", file=file)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise InputError(f"array '{key}' contains NaN or inf", file=file, field=key)
