"""Cell counts, junctions, clock period and latency of a netlist computed from the array program alone.

Why: synthesising one Python object per cell costs about 2.5 KB and 49 s per million synapses. The
counts the report and the chip budget need follow from the integer weights: a SPLIT tree of k - 1 cells
per source element with k pulse copies, a MERGE tree of m - 1 cells per neuron port with m pulses, one
delay line per pulse (slot k of a neuron is padded by about k x merge_stagger), a clock tree with one
splitter per clocked cell. Splitters, mergers, neurons, converters and DFFs are exact counts; delay lines
and the clock tree are estimates (tests compare them with built netlists). Used to check the chip budget
before any netlist is built, and instead of the netlist for designs above `sfq.netlist_max_pulses`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spikeforge.errors import FitError

_MARGIN_FS = 1000


def _pad_tables(mmax: int, stagger: int, jtl: int, ptl: int, max_stages: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative JTL stages and PTL count over slots 0..m-1 (slot k padded by k x stagger)."""
    k = np.arange(max(1, mmax), dtype=np.int64)
    pad = k * stagger
    stages = pad // jtl
    is_ptl = (stages > max_stages) & (pad >= ptl)
    jtl_stages = np.where(is_ptl, 0, stages)
    return np.concatenate([[0], np.cumsum(jtl_stages)]), np.concatenate([[0], np.cumsum(is_ptl)])


def estimate(plan: Any, lib: dict[str, dict[str, Any]], board: Any, leak_bits: int) -> dict[str, Any]:
    """Counts by cell type, JJ, bias (uA), period (fs) and pipeline latency (fs) from integer weights."""
    sources, layers, delays, outputs, order = plan.parsed
    stagger = int(round(board.value("timing.merge_stagger") * 1e15))
    max_stages = int(board.value("timing.ptl_min_delay_stages"))
    jtl, ptl = int(lib["JTL"]["delay_fs"]), int(lib["PTL"]["delay_fs"])
    leaves: dict[str, np.ndarray] = {name: np.zeros(n, np.int64) for name, (_k, n) in sources.items()}
    counts = dict.fromkeys(("IN", "OUT", "NEURON", "DFF", "SPLIT", "MERGE", "JTL", "PTL", "CLK"), 0)
    jtl_stages = 0
    leak_slices = 0
    period = int(round(board.value("timing.clock_target") * 1e15))
    binding = "clock target"
    latency = int(lib["IN"]["delay_fs"])
    fanin: dict[str, int] = {}
    synapses = 0
    pulses = 0
    per_layer_m: list[np.ndarray] = []
    for L in layers:
        Q = plan.q[L.name]
        exc = np.zeros(L.size, np.int64)
        inh = np.zeros(L.size, np.int64)
        for src, qm in Q.q.items():
            a = np.abs(qm).astype(np.int64)
            leaves[src] += a.sum(0)
            exc += np.where(qm > 0, a, 0).sum(1)
            inh += np.where(qm < 0, a, 0).sum(1)
            synapses += int(np.count_nonzero(qm))
        if Q.has_bias_pulses:
            exc += np.maximum(Q.bq, 0)
            inh += np.maximum(-Q.bq, 0)
            counts["JTL"] += 1
            jtl_stages += 1
            counts["SPLIT"] += max(0, int(np.abs(Q.bq).sum()) - 1)
        m = exc + inh
        pulses += int(m.sum())
        per_layer_m.append(m)
        counts["NEURON"] += L.size
        counts["MERGE"] += int(np.maximum(exc - 1, 0).sum() + np.maximum(inh - 1, 0).sum())
        if Q.lk.frac_bits:
            leak_slices += L.size * (Q.lk.frac_bits + leak_bits)
        mmax = int(m.max(initial=0))
        fanin[L.name] = mmax
        win = max(0, mmax - 1) * stagger + int(lib["NEURON"]["setup_fs"]) + int(lib["NEURON"]["hold_fs"]) \
            + 2 * _MARGIN_FS + max(stagger, int(lib["NEURON"].get("min_sep_fs", 0)))
        if win > period:
            period, binding = win, f"layer '{L.name}' fan-in window"
        depth_m = int(np.ceil(np.log2(max(1, mmax))))
        latency += win + depth_m * int(lib["MERGE"]["delay_fs"]) + int(lib["NEURON"]["delay_fs"])
    for _name, (src, steps) in delays.items():
        leaves[src] += 1
        counts["DFF"] += int(np.sum(steps))
    for _name, src in outputs.items():
        leaves[src] += 1
    counts["IN"] = sum(n for kind, n in sources.values() if kind == "input")
    counts["OUT"] = sum(sources[s][1] for s in outputs.values())
    kmax = max((int(v.max(initial=0)) for v in leaves.values()), default=0)
    latency += int(np.ceil(np.log2(max(1, kmax)))) * int(lib["SPLIT"]["delay_fs"]) * max(1, len(layers))
    counts["SPLIT"] += int(sum(np.maximum(v - 1, 0).sum() for v in leaves.values()))
    mall = np.concatenate(per_layer_m) if per_layer_m else np.zeros(0, np.int64)
    cum_j, cum_p = _pad_tables(int(mall.max(initial=0)), stagger, jtl, ptl, max_stages)
    jtl_stages += int(cum_j[mall].sum())
    counts["PTL"] += int(cum_p[mall].sum())
    counts["JTL"] += int(np.count_nonzero(mall))          # about one JTL chain per neuron port tree
    clocked = counts["NEURON"] + counts["DFF"]
    counts["CLK"] = 1
    counts["SPLIT"] += max(0, clocked - 1)                 # clock tree: one splitter per clocked cell
    counts["JTL"] += clocked
    jtl_stages += clocked
    jj = 0
    bias = 0.0
    for t, c in counts.items():
        if t == "JTL":
            continue
        jj += c * int(lib[t]["jj"])
        bias += c * float(lib[t]["bias_uA"])
    jj += jtl_stages * int(lib["JTL"]["jj"])
    bias += jtl_stages * float(lib["JTL"]["bias_uA"])
    jj += leak_slices * int(lib["NEURON"].get("leak_bit_jj", 0))
    bias += leak_slices * float(lib["NEURON"].get("leak_bit_bias_uA", 0.0))
    period = int(np.ceil(period / 1000.0) * 1000)
    latency += int(lib["OUT"]["delay_fs"])
    return {"cells_by_type": counts, "cells": int(sum(counts.values())), "jtl_stages": jtl_stages, "jj": int(jj),
            "bias_uA": bias, "period_fs": period, "period_binding": binding, "latency_fs": int(latency),
            "synapses": synapses, "pulses_per_step": pulses, "max_fanin_pulses": fanin,
            "leak_slices": leak_slices, "method": "analytic estimate (estimate.py)"}


def check_budget(est: dict[str, Any], board: Any, budget: int | None = None) -> dict[str, Any]:
    """Refuse (exit 2) a design above the board's junctions per chip x chips, naming the numbers."""
    per_chip = int(budget or board.value("limits.junction_budget"))
    chips = int(board.value("limits.max_chips"))
    need = int(np.ceil(est["jj"] / per_chip))
    if need > chips:
        by = ", ".join(f"{t} {n:,}" for t, n in sorted(est["cells_by_type"].items(), key=lambda x: -x[1]) if n)
        raise FitError(f"needs about {est['jj']:,} Josephson junctions ({est['cells']:,} cells: {by}; "
                       f"{est['synapses']:,} synapses, {est['pulses_per_step']:,} pulse paths), "
                       f"{need} chips of {per_chip:,} JJ; board {board.name} allows {chips} chips "
                       f"= {per_chip * chips:,} JJ", field="limits.junction_budget",
                       hint="prune, lower --set sfq.max_weight, or raise --set sfq.junction_budget")
    return {"jj_per_chip": per_chip, "chips": need, "max_chips": chips}
