"""Spike-level comparison of two traces of one output (or hidden layer): the numbers verify gates on.

Why: reducing outputs to argmax hides everything a user cares about on a single-output, regression
or raw-spike-train model (a board firing 11 times where the float model fires 4 still "agrees").
Every function here compares a reference array `ref` with a board array `got`, both (T, B, *shape),
after the board has been aligned by its pipeline latency (`align`). Spiking arrays hold spike counts
per step (0/1 for one neuron); analog arrays hold values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the alignment shifts verify tries when estimating a board's latency (reported, never used to pass)
SHIFT_RANGE = range(0, 4)


def align(ref: np.ndarray, got: np.ndarray, latency: int) -> tuple[np.ndarray, np.ndarray]:
    """Compare ref[t] with got[t + latency]: drop the last `latency` reference steps (the board's lag)."""
    lat = int(latency)
    if lat <= 0:
        return ref, got
    if lat >= ref.shape[0]:
        return ref[:0], got[:0]
    return ref[: ref.shape[0] - lat], got[lat:]


def _trains(a: np.ndarray) -> np.ndarray:
    """(T, trains) float64 view: every (sample, neuron) pair is one train."""
    return np.asarray(a, dtype=np.float64).reshape(a.shape[0], -1)


def matched_spikes(ref: np.ndarray, got: np.ndarray, k: int) -> float:
    """Spikes matched one-to-one within +-k steps (greedy in time order, optimal for interval matching)."""
    r = np.rint(np.clip(_trains(ref), 0, None))
    b = np.rint(np.clip(_trains(got), 0, None)).copy()
    T = r.shape[0]
    total = 0.0
    for t in range(T):
        need = r[t].copy()
        if not need.any():
            continue
        for d in range(-k, k + 1):  # earliest unmatched board spike first
            u = t + d
            if u < 0 or u >= T:
                continue
            m = np.minimum(need, b[u])
            b[u] -= m
            need -= m
            total += float(m.sum())
    return total


def first_spike_steps(a: np.ndarray) -> np.ndarray:
    """First step with a spike for every train; -1 where the train is silent."""
    tr = _trains(a) > 0
    first = tr.argmax(axis=0)
    return np.where(tr.any(axis=0), first, -1)


def van_rossum(ref: np.ndarray, got: np.ndarray, tau_steps: float) -> float:
    """Normalised van Rossum distance: ||f_ref - f_got||^2 / (||f_ref||^2 + ||f_got||^2), f = exp-filtered trains.

    0 means identical trains, 1 means no overlap at all (e.g. one side silent); scale-free, so one number
    reads the same for 4 spikes or 40,000.
    """
    keep = float(np.exp(-1.0 / max(tau_steps, 1e-9)))
    r, b = _trains(ref), _trains(got)
    fr = np.zeros(r.shape[1])
    fb = np.zeros(r.shape[1])
    num = den = 0.0
    for t in range(r.shape[0]):
        fr = fr * keep + r[t]
        fb = fb * keep + b[t]
        num += float(((fr - fb) ** 2).sum())
        den += float((fr ** 2).sum() + (fb ** 2).sum())
    return num / den if den > 0 else 0.0


@dataclass
class Comparison:
    """Metrics of one output (or layer): spike metrics for spiking data, error metrics for analog data."""

    spiking: bool
    metrics: dict[str, float]


def compare_spikes(ref: np.ndarray, got: np.ndarray, k: int, tau_steps: float) -> dict[str, float]:
    """Count error, +-k matching, first-spike latency, van Rossum distance and step identity of two spike arrays."""
    n_ref, n_got = float(np.sum(ref)), float(np.sum(got))
    cr = _trains(ref).sum(axis=0)
    cg = _trains(got).sum(axis=0)
    matched = matched_spikes(ref, got, k)
    fr, fg = first_spike_steps(ref), first_spike_steps(got)
    both = (fr >= 0) & (fg >= 0)
    one = (fr >= 0) ^ (fg >= 0)
    lat = np.abs(fr[both] - fg[both]) if both.any() else np.zeros(0)
    tr_ref, tr_got = _trains(ref), _trains(got)
    return {
        "spikes_reference": n_ref,
        "spikes_board": n_got,
        "count_error_abs": float(np.abs(cr - cg).sum()),
        "count_error_rel": float(np.abs(cr - cg).sum() / max(n_ref, 1.0)),
        "spike_match": float(2 * matched / (n_ref + n_got)) if (n_ref + n_got) > 0 else 1.0,
        "first_spike_diff_mean": float(lat.mean()) if lat.size else 0.0,
        "first_spike_diff_max": float(lat.max()) if lat.size else 0.0,
        "first_spike_missing": float(one.sum()),
        "van_rossum": van_rossum(ref, got, tau_steps),
        "step_identity": float(np.mean(tr_ref == tr_got)) if tr_ref.size else 1.0,
        "trains_identical": float(np.mean(np.all(tr_ref == tr_got, axis=0))) if tr_ref.size else 1.0,
    }


def compare_analog(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """RMS and max error normalised by the reference's range (so a gate reads as a fraction of full scale)."""
    r, b = _trains(ref), _trains(got)
    span = float(r.max() - r.min()) if r.size else 0.0
    scale = span if span > 0 else max(float(np.abs(r).max()) if r.size else 0.0, 1e-12)
    err = b - r
    return {
        "output_range": span,
        "rms_error_norm": float(np.sqrt(np.mean(err ** 2)) / scale) if err.size else 0.0,
        "max_error_norm": float(np.abs(err).max() / scale) if err.size else 0.0,
    }


def compare(ref: np.ndarray, got: np.ndarray, *, spiking: bool, k: int, tau_steps: float) -> Comparison:
    if ref.shape != got.shape:
        got = np.asarray(got).reshape(ref.shape)
    if spiking:
        return Comparison(True, compare_spikes(ref, got, k, tau_steps))
    return Comparison(False, compare_analog(ref, got))


def best_shift(ref: np.ndarray, got: np.ndarray, spiking: bool) -> int:
    """The shift in SHIFT_RANGE that makes the board's trace closest to the reference (estimate only)."""
    best, score = 0, -np.inf
    for s in SHIFT_RANGE:
        r, g = align(ref, got, s)
        if r.shape[0] == 0:
            break
        if spiking:
            n = float(np.sum(r) + np.sum(g))
            val = 2 * matched_spikes(r, g, 0) / n if n > 0 else 1.0
        else:
            val = -float(np.sqrt(np.mean((_trains(g) - _trains(r)) ** 2)))
        if val > score + 1e-12:
            best, score = s, val
    return best


def expected_accuracy(s: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy with ties split evenly: a sample whose maximum is shared by k classes, the label among them,
    counts 1/k. Why: argmax's first-index rule credits whichever tied class has the lowest index, so spike-count
    ties (common with few steps) turn class order into accuracy, on the float side as on the board's."""
    if s.shape[0] == 0:
        return float("nan")
    top = s == s.max(axis=1, keepdims=True)
    y = np.asarray(labels, dtype=np.int64)
    ok = (y >= 0) & (y < s.shape[1])                     # a label no output stands for is never predicted
    hit = np.zeros(s.shape[0], dtype=bool)
    hit[ok] = top[np.flatnonzero(ok), y[ok]]
    return float(np.mean(hit / top.sum(axis=1)))


def argmax_outcomes(s_ref: np.ndarray, s_got: np.ndarray) -> dict[str, float]:
    """Per-sample argmax outcome: agree, tie (a maximum shared by several classes on either side, and the
    two sides' maximal sets overlap: a tie broken differently), or disagree (disjoint maximal sets)."""
    if s_ref.shape[0] == 0:
        return {"agree": 0.0, "tie": 0.0, "disagree": 0.0}
    top_r = s_ref == s_ref.max(axis=1, keepdims=True)
    top_g = s_got == s_got.max(axis=1, keepdims=True)
    tied = (top_r.sum(1) > 1) | (top_g.sum(1) > 1)
    overlap = (top_r & top_g).any(axis=1)
    agree = overlap & ~tied
    tie = overlap & tied
    n = float(s_ref.shape[0])
    return {"agree": float(agree.sum()) / n, "tie": float(tie.sum()) / n, "disagree": float((~overlap).sum()) / n}
