"""Compiled (numba) kernels for the Loihi emulator's layered path: the same float64 operations as the numpy
code in `spikeforge.emulators.loihi`, fused into loops, so results are bit-identical (tests compare both).

Why: at 1,000 neurons per layer the numpy version spends most of its time in ~6 numpy calls per step and
layer and in building sparse spike matrices; on a busy 2-core machine a fused loop needs ~3x less CPU.
numba is optional: without it (or with SPIKEFORGE_NO_NUMBA=1) the numpy code runs.
"""

from __future__ import annotations

import os

import numpy as np

try:  # pragma: no cover - exercised where numba is installed (the dev environment)
    if os.environ.get("SPIKEFORGE_NO_NUMBA"):
        raise ImportError("disabled by SPIKEFORGE_NO_NUMBA")
    from numba import njit

    AVAILABLE = True
except ImportError:  # pragma: no cover
    AVAILABLE = False

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        def wrap(fn):
            return fn
        return wrap if not args or not callable(args[0]) else args[0]


@njit(cache=True, nogil=True)
def lif_fast(act, cu, cv, vth, bias, start, has_bias, clip_hi, clip_lo, lo, hi):  # pragma: no cover - jit
    """u, v, spikes over all steps (u cannot wrap: checked by the caller). act: (S, B, n) float64."""
    S, B, n = act.shape
    u_h = np.empty((S, B, n))
    v_h = np.empty((S, B, n))
    s_h = np.empty((S, B, n), np.bool_)
    active = np.empty((S, B, n), np.bool_)
    u = np.zeros((B, n))
    v = np.zeros((B, n))
    for t in range(S):
        bias_on = has_bias and t + 1 >= start
        for b in range(B):
            for i in range(n):
                # active: input arrived, state held from the previous step, or the bias is on
                active[t, b, i] = act[t, b, i] != 0.0 or u[b, i] != 0.0 or v[b, i] != 0.0 or \
                    (bias_on and bias[i] != 0.0)
                uu = np.trunc(u[b, i] * cu) + act[t, b, i] if cu != 0.0 else act[t, b, i]
                vv = v[b, i] + uu if cv == 1.0 else np.trunc(v[b, i] * cv) + uu
                if bias_on:
                    vv += bias[i]
                if clip_hi and vv > hi:
                    vv = hi
                if clip_lo and vv < lo:
                    vv = lo
                spk = vv > vth
                if spk:
                    vv = 0.0
                u[b, i] = uu
                v[b, i] = vv
                u_h[t, b, i] = uu
                v_h[t, b, i] = vv
                s_h[t, b, i] = spk
    return u_h, v_h, s_h, active


@njit(cache=True, nogil=True)
def event_sum(indptr, cols, wt, m, n_dst):  # pragma: no cover - jit
    """out[r] = sum of wt[j] over the spikes j of row r (rows = step * B + batch): the event-driven sum,
    in wt's dtype (float32 only where the caller showed every partial sum stays below 2^24: exact)."""
    out = np.zeros((m, n_dst), wt.dtype)
    for r in range(m):
        o = out[r]
        for k in range(indptr[r], indptr[r + 1]):
            j = cols[k]
            for i in range(n_dst):
                o[i] += wt[j, i]
    return out
