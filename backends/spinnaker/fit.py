"""On-core parameters that reproduce the reference's per-step factors, and what is left of the difference.

Why: the core computes its decays itself (exp_TC = expk(-dt/tau_m), decay = expulr(-dt/tau_syn)) from the
s16.15 tau the host writes, and its membrane update `V = alpha - exp_TC (alpha - V)` is the same one-step
linear rule as the reference's Euler or exact step, `v' = keep v + (1 - keep) alpha`. So the dynamics agree
when the core's exp_TC equals the reference's `keep` (Euler 1 - dt/tau, or exp(-dt/tau)) and the input gain
is folded into the weights. A float tau written as s16.15 misses `keep` by several LSB (dt itself is rounded,
and kdivk truncates), and the floor of every accum multiply biases V up by up to one LSB per step, i.e. up to
1/(1 - keep) LSB in steady state: 0.76% of lif_norse's threshold at unit voltage scale, enough to fire one
input period early. Here tau is searched on the core's own arithmetic for the closest factor, and voltages
are scaled by a power of two so the rounding shrinks below the reference's own float error.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import fixed as F

#: s16.15 raw range a tau may take (dt / 16 .. 32767 ms is enforced by the caller)
_TAU_HI = F.to_accum(32767.0)


def _closest_raw(value_of: Any, target: float, lo: int, hi: int) -> int:
    """Raw tau in [lo, hi] whose on-core factor value_of(raw) (increasing in raw) is closest to target."""
    a, b = lo, hi
    if value_of(b) < target:
        return b
    while b - a > 1:  # smallest raw whose value reaches the target
        mid = (a + b) // 2
        if value_of(mid) >= target:
            b = mid
        else:
            a = mid
    return a if abs(value_of(a) - target) <= abs(value_of(b) - target) else b


def tau_m_raw_for_keep(keep: float, dt_raw: int) -> int:
    """s16.15 tau_m whose on-core exp_TC is the integer closest to keep * 2**15."""
    lo = max(1, dt_raw // 16)
    if keep <= 1e-6:
        return lo
    return _closest_raw(lambda t: F.lif_exp_tc(dt_raw, t), keep * F.ONE, lo, _TAU_HI)


def tau_syn_raw_for_keep(keep: float, dt_raw: int) -> int:
    """s16.15 tau_syn whose on-core u0.32 decay is closest to keep * 2**32."""
    lo = max(1, dt_raw // 16)
    if keep <= 1e-9:
        return lo
    return _closest_raw(lambda t: F.exp_synapse_decay_init(dt_raw, t)[0], keep * 2.0 ** 32, lo, _TAU_HI)


def per_unique_keep(fn: Any, keep: np.ndarray, dt_raw: int) -> np.ndarray:
    """Apply fn(keep, dt_raw) once per distinct keep (populations usually share one)."""
    vals, inv = np.unique(np.asarray(keep, dtype=np.float64), return_inverse=True)
    return np.array([fn(float(v), dt_raw) for v in vals], dtype=np.int64)[inv.reshape(-1)]


def voltage_scale(alpha_per_unit: float, headroom: float, max_exp: int = 14) -> float:
    """Largest power of two k in [1, 2**max_exp] with k * alpha_per_unit <= headroom.

    `alpha_per_unit` bounds |alpha| = |I R + V_rest| (and |V|) in model units: k = 1 keeps today's mapping when
    the bound is already large (dense layers under the worst-case ring-buffer bound).
    """
    if not alpha_per_unit > 0:
        return 1.0
    e = math.floor(math.log2(headroom / alpha_per_unit))
    return float(2.0 ** min(max(e, 0), max_exp))


def residual(keep: np.ndarray, exp_tc: np.ndarray, v_scale: float, v_span: float, v_ref: float,
             keep_syn: np.ndarray | None = None, decay: np.ndarray | None = None) -> dict[str, float]:
    """Bound of |V_core / k - v_ref| (model units) for a neuron below threshold, and its parts.

    * rounding: the floor of the V update adds [0, 1) LSB per step, which the leak keeps below 1 / (1 - exp_TC) LSB
      (centred on zero by the lowering's offset current: the bound keeps the uncentred worst case);
    * membrane factor: an error d in keep moves V by d |V - alpha| <= 2 d v_span per step, kept below
      2 d v_span / (1 - keep);
    * synaptic factor (CubaLIF): likewise on the current, relative 2 d_s / (1 - keep_s) of the current's span.
    `relative` divides the total by |v_ref| (the threshold's distance from reset, or the span for readouts).
    """
    g = np.maximum(1.0 - exp_tc.astype(np.float64) / F.ONE, 1e-12)
    lsb = 1.0 / (F.ONE * v_scale)
    rounding = float(np.max(lsb / g))
    d = np.abs(exp_tc / F.ONE - keep)
    membrane = float(np.max(2.0 * d * v_span / np.maximum(1.0 - keep, 1e-12)))
    out = {"keep_ref": float(np.min(keep)), "keep_core": float(np.min(exp_tc) / F.ONE),
           "keep_error": float(np.max(d)), "v_lsb": lsb, "rounding_bound": rounding,
           "membrane_factor_bound": membrane}
    total = rounding + membrane
    if keep_syn is not None and decay is not None:
        ds = np.abs(decay / 2.0 ** 32 - keep_syn)
        syn = float(np.max(2.0 * ds * v_span / np.maximum(1.0 - keep_syn, 1e-12)))
        out.update({"syn_keep_error": float(np.max(ds)), "synaptic_factor_bound": syn})
        total += syn
    out["v_error_bound"] = total
    out["relative"] = total / v_ref if v_ref > 0 else 0.0
    return out
