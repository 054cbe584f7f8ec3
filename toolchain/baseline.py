"""Golden baselines: freeze a verified board trace and its metrics, and fail CI when a later compile drifts.

Why: verify compares the board with the float model, which tolerates the board's known, accepted error.
A regression gate (hls4ml-style) also needs "the same as last time": a changed compiler, board spec or
model must show up even when it stays inside verify's tolerances. `save` writes the board's output
traces, every metric and a digest of the inputs; `compare` checks a new VerifyResult against it, trace by
trace and metric by metric with per-metric tolerances.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import zipfile
from typing import Any

import numpy as np

from .errors import SpikeforgeError
from .metrics import compare_analog, matched_spikes
from .npzio import load_npz, save_npz
from .verify import Check, VerifyResult

FORMAT = "spikeforge-baseline/1"

#: absolute tolerance per metric (glob on the metric name); metrics not matched are stored, not compared
TOLERANCES: dict[str, float] = {
    "accuracy_board": 0.01,
    "prediction_agreement": 0.02,
    "*.count_error_rel": 0.05,
    "*.spike_match": 0.02,
    "*.rms_error_norm": 0.01,
    "*.spikes_board": 0.0,
    "trace": 0.0,            # 1 - fraction of the baseline's output spikes reproduced in the same step
}


def input_digest(inputs: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(inputs):
        a = np.ascontiguousarray(inputs[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save(path: str | os.PathLike, result: VerifyResult, inputs: dict[str, np.ndarray]) -> None:
    """Write the board trace, metrics and input digest of `result` to an .npz."""
    if result.board_trace is None:
        raise SpikeforgeError("nothing to save: verify produced no board trace", file=str(path))
    arrays = {f"trace/{k}": np.asarray(v) for k, v in result.board_trace.outputs.items()}
    header = {"format": FORMAT, "board": result.board, "inputs": input_digest(inputs), "metrics": result.metrics,
              "passed": result.passed}
    arrays["header"] = np.array([json.dumps(header, sort_keys=True, default=float)])
    save_npz(path, arrays)


def load(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        arrays = load_npz(path)
        header = json.loads(str(np.asarray(arrays.pop("header")).reshape(-1)[0]))
    except FileNotFoundError:
        raise SpikeforgeError("baseline file not found", file=str(path)) from None
    except (KeyError, IndexError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise SpikeforgeError(f"not a spikeforge baseline ({type(exc).__name__})", file=str(path)) from None
    if header.get("format") != FORMAT:
        raise SpikeforgeError(f"baseline format {header.get('format')!r} is not {FORMAT}", file=str(path))
    return header, {k[6:]: v for k, v in arrays.items() if k.startswith("trace/")}


def tolerance_for(metric: str, tolerances: dict[str, float]) -> float | None:
    for pattern, tol in tolerances.items():
        if fnmatch.fnmatchcase(metric, pattern):
            return float(tol)
    return None


def compare(result: VerifyResult, path: str | os.PathLike, inputs: dict[str, np.ndarray],
            tolerances: dict[str, float] | None = None) -> list[Check]:
    """Checks of `result` against the baseline at `path`: one per output trace and one per compared metric."""
    tol = {**TOLERANCES, **(tolerances or {})}
    header, traces = load(path)
    if header["inputs"] != input_digest(inputs):
        raise SpikeforgeError("the baseline was recorded on different inputs; verify with the same --input",
                              file=str(path))
    checks: list[Check] = []
    got = result.board_trace.outputs if result.board_trace is not None else {}
    for name, base in sorted(traces.items()):
        if name not in got or np.asarray(got[name]).shape != base.shape:
            checks.append(Check(f"baseline:trace:{name}", False,
                                f"output '{name}' is missing or changed shape (baseline {base.shape})"))
            continue
        now = np.asarray(got[name], dtype=np.float64)
        b = np.asarray(base, dtype=np.float64)
        if np.all(b == np.rint(b)) and np.all(now == np.rint(now)) and b.min() >= 0 and now.min() >= 0:
            n = float(b.sum() + now.sum())
            drift = 1.0 - (2 * matched_spikes(b, now, 0) / n if n > 0 else 1.0)
            what = f"{drift:.2%} of spikes moved or changed ({b.sum():.0f} then, {now.sum():.0f} now)"
        else:
            drift = compare_analog(b, now)["max_error_norm"]
            what = f"max change {drift:.2%} of the baseline's range"
        limit = tol["trace"]
        checks.append(Check(f"baseline:trace:{name}", drift <= limit + 1e-12, f"{what} (max {limit:.2%})"))
    for metric, old in sorted(header["metrics"].items()):
        t = tolerance_for(metric, tol)
        if t is None or metric not in result.metrics:
            continue
        new = float(result.metrics[metric])
        diff = abs(new - float(old))
        checks.append(Check(f"baseline:{metric}", diff <= t + 1e-12,
                            f"{metric} {new:.6g} now vs {float(old):.6g} in the baseline (|diff| {diff:.4g}, "
                            f"max {t:g})"))
    return checks
