"""Delay mapping: NIR Delay nodes and per-synapse delays onto a board's time step and delay range.

Representation of per-synapse delays (what frontends write and backends read), on an Affine/Linear node:

* metadata `spikeforge.synapse_delays`: integer steps of the graph's dt (`spikeforge.dt`), shaped like the
  weight (out, in); or
* metadata `spikeforge.synapse_delays_s`: seconds (float), shaped like the weight (DCLS, Brian2), which
  takes precedence.

Synapse (i, j) then delivers w_ij x_j(t - d_ij). `expand_synapse_delays` turns this into plain NIR (one
masked Affine and one Delay node per distinct delay) so the reference simulator runs it: that expansion is
the float reference every mapping is verified against.

`map_delays` rounds every delay to the board step (error <= dt / 2 per synapse), folds NIR Delay nodes into
the synapses next to them, and realises delays beyond `max_delay_steps`:

* policy "native": no relays; a delay beyond the range is a BoardError naming the node.
* policy "relay": a chain of relay neurons per presynaptic axon (shared by all its long synapses: the
  per-axon part), each hop carrying the board's maximum delay; a synapse taps the chain at stage
  k = ceil(d / H) - 1 and keeps the residual d - k H <= H as its own delay (the per-synapse part).
* policy "chain": the same with one-step hops (a delay line; boards whose delay memory is one step).
Relay neurons are IF neurons (r = 1, threshold 0.5, reset to zero) that re-emit each spike in the step it
arrives, as the reference simulator defines instantaneous nodes; a backend whose relay neuron adds a step of
latency shortens the hop delay by one.
"""

from __future__ import annotations

from typing import Any

import nir
import numpy as np

from .. import graph as G
from ..errors import BoardError, GraphError, InputError, UnsupportedError
from . import _common as C
from .report import DelayReport

STEPS_KEY = "spikeforge.synapse_delays"
SECONDS_KEY = "spikeforge.synapse_delays_s"
POLICIES = ("relay", "chain", "native")
RELAY_META = {"spikeforge.reset": "zero", "spikeforge.reset_timing": "immediate", "spikeforge.threshold_cmp": ">",
              "spikeforge.role": "delay-relay"}


def board_max_delay(board: Any) -> int | None:
    """The board's per-synapse delay range in steps (`arithmetic.max_delay` or `limits.max_delay_steps`)."""
    if board is None:
        return None
    if isinstance(board, str):
        from ..boardspec import get_board

        board = get_board(board)
    for key in ("arithmetic.max_delay", "limits.max_delay_steps"):
        if board.has(key):
            return int(np.atleast_1d(board.value(key))[0])
    return None


def synapse_delays_s(node: nir.NIRNode, dt: float | None) -> np.ndarray | None:
    """Per-synapse delays of a node in seconds (None if it has none)."""
    meta = getattr(node, "metadata", None) or {}
    w = np.asarray(node.weight)
    if SECONDS_KEY in meta:
        d = np.asarray(meta[SECONDS_KEY], dtype=np.float64)
    elif STEPS_KEY in meta:
        if dt is None:
            raise GraphError(f"'{STEPS_KEY}' is in steps but the graph has no dt ({G.DT_KEY})")
        d = np.asarray(meta[STEPS_KEY], dtype=np.float64) * dt
    else:
        return None
    try:
        d = np.broadcast_to(d, w.shape).astype(np.float64)
    except ValueError:
        raise GraphError(f"synapse delays shaped {d.shape} do not match the weight {w.shape}",
                         field=SECONDS_KEY if SECONDS_KEY in meta else STEPS_KEY) from None
    if np.any(d < 0) or not np.all(np.isfinite(d)):
        raise GraphError("synapse delays must be finite and >= 0", field=STEPS_KEY)
    return d


def _linear(w: np.ndarray, bias: np.ndarray | None, meta: dict) -> nir.NIRNode:
    w = np.asarray(w, dtype=np.float32)
    if bias is None:
        return nir.Linear(weight=w, metadata=meta)
    return nir.Affine(weight=w, bias=np.asarray(bias, dtype=np.float32), metadata=meta)


def expand_synapse_delays(graph: nir.NIRGraph) -> nir.NIRGraph:
    """Plain-NIR equivalent of a graph with per-synapse delays: per distinct delay, a masked copy of the
    layer followed by a Delay node (a delay of a weighted sum is the weighted sum of delayed inputs)."""
    g = C.clone(graph)
    dt = G.get_dt(g)
    nodes = dict(g.nodes)
    edges = list(g.edges)
    for name, node in g.nodes.items():
        if not isinstance(node, (nir.Affine, nir.Linear)):
            continue
        d = synapse_delays_s(node, dt)
        if d is None:
            continue
        w = np.asarray(node.weight, dtype=np.float64)
        meta = {k: v for k, v in dict(node.metadata or {}).items() if k not in (STEPS_KEY, SECONDS_KEY)}
        bias = np.asarray(node.bias) if isinstance(node, nir.Affine) else None
        values = np.unique(d[w != 0]) if np.any(w != 0) else np.array([0.0])
        preds, succs = C.predecessors(g, name), C.successors(g, name)
        edges = [e for e in edges if name not in e]
        # the node keeps its name and carries the undelayed synapses and the (never delayed) bias
        nodes[name] = _linear(np.where((d == 0) & (w != 0), w, 0.0), bias, meta)
        edges += [(p, name) for p in preds] + [(name, s) for s in succs]
        for k, v in enumerate(values):
            if v == 0:
                continue
            part = np.where((d == v) & (w != 0), w, 0.0)
            lin, dly = f"{name}.d{k}", f"{name}.delay{k}"
            nodes[lin] = _linear(part, None, {})
            nodes[dly] = nir.Delay(delay=np.full(part.shape[0], v, dtype=np.float64))
            edges += [(p, lin) for p in preds] + [(lin, dly)] + [(dly, s) for s in succs]
    return C.rebuild(nodes, list(dict.fromkeys(edges)), g.metadata)


def _fold_delay_nodes(g: nir.NIRGraph, dt_src: float | None, warnings: list[str]) -> tuple[nir.NIRGraph, list[str]]:
    """Move NIR Delay nodes into the synapse delays of the Affine after (or before) them."""
    folded = []
    changed = True
    while changed:
        changed = False
        for name, node in list(g.nodes.items()):
            if not isinstance(node, nir.Delay):
                continue
            delay = np.asarray(node.delay, dtype=np.float64).reshape(-1)
            succ, pred = C.successors(g, name), C.predecessors(g, name)
            nodes, edges = dict(g.nodes), list(g.edges)
            if succ and all(isinstance(g.nodes[s], (nir.Affine, nir.Linear)) and C.predecessors(g, s) == [name]
                            for s in succ):
                for s in succ:
                    w = np.asarray(g.nodes[s].weight)
                    if delay.size not in (1, w.shape[1]):
                        break
                else:
                    for s in succ:
                        tgt = g.nodes[s]
                        old = synapse_delays_s(tgt, dt_src)
                        w = np.asarray(tgt.weight)
                        add = np.broadcast_to(delay.reshape(1, -1) if delay.size > 1 else delay, w.shape)
                        C.set_meta(tgt, SECONDS_KEY, (add if old is None else old + add).astype(np.float64))
                        meta = dict(tgt.metadata)
                        meta.pop(STEPS_KEY, None)
                        tgt.metadata = meta
                    del nodes[name]
                    edges = [e for e in edges if name not in e] + [(p, s) for p in pred for s in succ]
                    g = C.rebuild(nodes, list(dict.fromkeys(edges)), g.metadata)
                    folded.append(name)
                    changed = True
                    break
            if len(pred) == 1 and isinstance(g.nodes[pred[0]], (nir.Affine, nir.Linear)) and \
                    C.successors(g, pred[0]) == [name]:
                src = g.nodes[pred[0]]
                w = np.asarray(src.weight)
                if delay.size in (1, w.shape[0]):
                    old = synapse_delays_s(src, dt_src)
                    add = np.broadcast_to(delay.reshape(-1, 1) if delay.size > 1 else delay, w.shape)
                    C.set_meta(src, SECONDS_KEY, (add if old is None else old + add).astype(np.float64))
                    meta = dict(src.metadata)
                    meta.pop(STEPS_KEY, None)
                    src.metadata = meta
                    if isinstance(src, nir.Affine) and np.any(np.asarray(src.bias) != 0):
                        warnings.append(f"layer '{pred[0]}' parameter 'bias': Delay node '{name}' folded into its "
                                        f"synapses; the constant bias is no longer delayed (it only differs in the "
                                        f"first {float(delay.max()):g} s)")
                    del nodes[name]
                    edges = [e for e in edges if name not in e] + [(pred[0], s) for s in succ]
                    g = C.rebuild(nodes, list(dict.fromkeys(edges)), g.metadata)
                    folded.append(name)
                    changed = True
                    break
    return g, folded


def map_delays(graph: nir.NIRGraph, *, dt: float, max_delay_steps: int, policy: str = "relay",
               verify_inputs: Any = None) -> tuple[nir.NIRGraph, DelayReport]:
    """Quantise all delays to the board step `dt` and realise those beyond `max_delay_steps` per `policy`.

    Returns a graph at `dt` whose Affine/Linear nodes carry `spikeforge.synapse_delays` (steps, all within
    0..max_delay_steps) plus relay nodes, and a report; with `verify_inputs` (spikes (T, B, n) at the input
    graph's dt) the report holds the measured spike-time error against the float reference.
    """
    if policy not in POLICIES:
        raise InputError(f"delay policy {policy!r}; allowed {POLICIES}", field="delay_policy")
    if not (dt > 0):
        raise InputError(f"dt must be > 0, got {dt}", field="dt")
    if max_delay_steps < 0:
        raise InputError(f"max_delay_steps must be >= 0, got {max_delay_steps}", field="max_delay_steps")
    original = C.clone(graph)
    dt_src = G.get_dt(original)
    warnings: list[str] = []
    g, folded = _fold_delay_nodes(C.clone(graph), dt_src, warnings)
    hop = max_delay_steps if policy == "relay" else 1
    nodes = dict(g.nodes)
    edges = list(g.edges)
    relay_nodes: list[str] = []
    layer_rows = []
    errors: list[np.ndarray] = []
    n_delayed = 0
    # remaining Delay nodes (on graded signals, or not next to a weighted layer): quantise in place
    for name, node in g.nodes.items():
        if isinstance(node, nir.Delay):
            d = np.asarray(node.delay, dtype=np.float64)
            steps = np.rint(d / dt)
            errors.append(np.abs(steps * dt - d).ravel())
            if np.any(steps > max_delay_steps):
                raise BoardError(f"Delay of {float(d.max()):g} s = {int(steps.max())} steps exceeds the board's "
                                 f"{max_delay_steps}-step range and is not next to a weighted layer, so relays "
                                 f"cannot realise it", node=name, field="delay")
            nodes[name] = nir.Delay(delay=(steps * dt).astype(np.float64), metadata=dict(node.metadata or {}))
    for name, node in g.nodes.items():
        if not isinstance(node, (nir.Affine, nir.Linear)):
            continue
        d_s = synapse_delays_s(node, dt_src)
        if d_s is None:
            continue
        w = np.asarray(node.weight, dtype=np.float64)
        live = w != 0
        steps = np.rint(d_s / dt).astype(np.int64)
        steps[~live] = 0
        errors.append(np.abs(steps * dt - d_s)[live])
        n_delayed += int(np.sum(live & (steps > 0)))
        meta = {k: v for k, v in dict(node.metadata or {}).items() if k not in (STEPS_KEY, SECONDS_KEY)}
        need = int(steps.max()) if steps.size else 0
        row = {"layer": name, "delayed_synapses": int(np.sum(live & (steps > 0))), "max_steps": need,
               "stages": 0, "relays": 0}
        if need <= max_delay_steps:
            meta[STEPS_KEY] = steps.astype(np.int32)
            meta["spikeforge.delay_factoring"] = _factor(steps, live)
            nodes[name] = _rebuilt(node, w, meta)
            layer_rows.append(row)
            continue
        if policy == "native":
            i, j = np.unravel_index(int(np.argmax(steps)), steps.shape)
            raise BoardError(f"synapse ({i}, {j}) needs a delay of {need} steps of {dt:g} s; the board allows at "
                             f"most {max_delay_steps}", node=name, field=STEPS_KEY,
                             hint="use delay policy 'relay' or 'chain'")
        if hop < 1:
            raise BoardError(f"delays of {need} steps need relays, but the board has no synaptic delay "
                             f"(max_delay_steps = {max_delay_steps}) to give each relay hop", node=name)
        preds, succs = C.predecessors(g, name), C.successors(g, name)
        for p in preds:
            if not isinstance(g.nodes[p], (*C.SPIKING, nir.Input, nir.Threshold)):
                raise UnsupportedError(f"delays beyond the board range on a graded input (from "
                                       f"{type(g.nodes[p]).__name__} '{p}') cannot be relayed by spiking neurons",
                                       node=name)
        stage = np.where(live, np.maximum(0, -(-steps // hop) - 1), 0)  # ceil(d / H) - 1
        resid = steps - stage * hop
        K = int(stage.max())
        axon_stage = stage.max(axis=0)  # per presynaptic axon: chain length it needs
        base = np.where(stage == 0, w, 0.0)
        bias = np.asarray(node.bias) if isinstance(node, nir.Affine) else None
        meta0 = dict(meta)
        meta0[STEPS_KEY] = np.where(stage == 0, resid, 0).astype(np.int32)
        nodes[name] = _linear(base, bias, meta0)
        prev_idx = np.arange(w.shape[1])  # axons carried by the previous stage (stage 0: all inputs)
        prev_src = preds
        n_relays = 0
        for k in range(1, K + 1):
            idx = np.flatnonzero(axon_stage >= k)
            sel = (idx[:, None] == prev_idx[None, :]).astype(np.float32)
            sel_name, relay, tap = f"{name}.relay{k}.in", f"{name}.relay{k}", f"{name}.tap{k}"
            nodes[sel_name] = nir.Linear(weight=sel, metadata={STEPS_KEY: np.full(sel.shape, hop, np.int32),
                                                               "spikeforge.role": "delay-relay"})
            m = idx.size
            nodes[relay] = nir.IF(r=np.ones(m, np.float32), v_threshold=np.full(m, 0.5, np.float32),
                                  v_reset=np.zeros(m, np.float32), metadata=dict(RELAY_META))
            tap_w = np.where(stage == k, w, 0.0)[:, idx]
            nodes[tap] = nir.Linear(weight=tap_w.astype(np.float32),
                                    metadata={STEPS_KEY: np.where(stage == k, resid, 0)[:, idx].astype(np.int32)})
            edges += [(s, sel_name) for s in prev_src] + [(sel_name, relay), (relay, tap)] + \
                     [(tap, s) for s in succs]
            prev_idx, prev_src = idx, [relay]
            relay_nodes.append(relay)
            n_relays += m
        row.update({"stages": K, "relays": n_relays})
        layer_rows.append(row)
    meta = dict(g.metadata or {})
    meta[G.DT_KEY] = float(dt)
    meta["spikeforge.delays"] = {"policy": policy, "max_delay_steps": int(max_delay_steps)}
    out = C.rebuild(nodes, list(dict.fromkeys(edges)), meta)
    G.validate(out)
    err = np.concatenate(errors) if errors else np.zeros(0)
    report = DelayReport(policy=policy, dt=float(dt), max_delay_steps=int(max_delay_steps),
                         synapses_with_delay=n_delayed,
                         relays_added=int(sum(r["relays"] for r in layer_rows)), relay_nodes=relay_nodes,
                         max_quantisation_error_s=float(err.max()) if err.size else 0.0,
                         mean_quantisation_error_s=float(err.mean()) if err.size else 0.0,
                         delay_nodes_folded=folded, layers=layer_rows, warnings=warnings)
    if verify_inputs is not None:
        report.verification = verify_delays(original, out, verify_inputs)
    return out, report


def _factor(steps: np.ndarray, live: np.ndarray) -> dict[str, np.ndarray]:
    """Per-axon part (min delay over an axon's synapses) and per-synapse residual, for boards with axon delays."""
    big = np.where(live, steps, np.iinfo(np.int64).max)
    axon = np.where(live.any(axis=0), big.min(axis=0), 0)
    return {"axon": axon.astype(np.int32), "synapse": np.where(live, steps - axon[None, :], 0).astype(np.int32)}


def _rebuilt(node: nir.NIRNode, w: np.ndarray, meta: dict) -> nir.NIRNode:
    return _linear(w, np.asarray(node.bias) if isinstance(node, nir.Affine) else None, meta)


def resample_spikes(x: np.ndarray, dt_from: float, dt_to: float) -> np.ndarray:
    """Move spikes (T, B, ...) from a grid of dt_from to one of dt_to (a spike at t lands in bin
    round(t / dt_to)); counts that collide are summed."""
    T = x.shape[0]
    T2 = int(np.ceil(T * dt_from / dt_to)) + 1
    out = np.zeros((T2, *x.shape[1:]), dtype=np.float32)
    idx = np.rint(np.arange(T) * dt_from / dt_to).astype(np.int64)
    np.add.at(out, idx, x.astype(np.float32))
    return out


def spike_times(out: np.ndarray, dt: float) -> list[np.ndarray]:
    """Per (sample, neuron) sorted spike times in seconds."""
    T = out.shape[0]
    flat = out.reshape(T, -1)
    return [np.flatnonzero(flat[:, k] > 0) * dt for k in range(flat.shape[1])]


def verify_delays(reference: nir.NIRGraph, mapped: nir.NIRGraph, inputs: Any, *, dt_ref: float | None = None
                  ) -> dict[str, Any]:
    """Simulate the float reference (its own dt) and the mapped graph (board dt) and compare output spike
    times: every spike matched in order, error measured in board steps."""
    ref = expand_synapse_delays(reference)
    mp = expand_synapse_delays(mapped)
    d_ref = dt_ref or G.get_dt(ref)
    d_map = G.get_dt(mp)
    if d_ref is None or d_map is None:
        raise GraphError("verification needs dt in both graphs' metadata")
    calib = C.calibration_data(ref, inputs)
    assert calib is not None
    res_r = C.simulate(ref, calib.inputs)
    ins_m = {k: resample_spikes(v, d_ref, d_map) for k, v in calib.inputs.items()}
    T_m = next(iter(ins_m.values())).shape[0]
    ins_m = {k: v[:T_m] for k, v in ins_m.items()}
    res_m = C.simulate(mp, ins_m)
    worst, n_ref, n_map, unmatched = 0.0, 0, 0, 0
    horizon = calib.timesteps * d_ref
    for out_name in sorted(res_r.outputs):
        tr = spike_times(res_r.outputs[out_name], d_ref)
        tm = spike_times(res_m.outputs[out_name], d_map)
        for a, b in zip(tr, tm):
            b = b[b < horizon]
            n_ref += a.size
            n_map += b.size
            if a.size != b.size:
                unmatched += abs(a.size - b.size)
                k = min(a.size, b.size)
                a, b = a[:k], b[:k]
            if a.size:
                worst = max(worst, float(np.max(np.abs(a - b))))
    return {"reference_spikes": n_ref, "mapped_spikes": n_map, "unmatched_spikes": unmatched,
            "max_error_s": worst, "max_error_steps": worst / d_map,
            "within_one_step": bool(unmatched == 0 and worst <= d_map + 1e-12)}
