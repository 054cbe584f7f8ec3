"""Array emulator of the SFQ clocked-integer fabric: whole layers per step, batched, from the artifact's arrays.

Why: the pulse-level emulator (emulators/sfq.py) walks every pulse in Python; at a million synapses that is
thousands of times slower than the arithmetic. When the netlist is timing-clean (static timing: no merger
collisions, every input inside its capture window, which the lowering guarantees by construction and STA
checks), what reaches each storage loop in a step is exactly the integer sum of its active synapses, so
one step of a layer is a matrix product of spikes and integer weights, then the same clocked neuron update
(threshold, reset, carried-remainder leak) as the pulse emulator.

The one thing a sum hides is the order of pulses: a storage loop that would pass its capacity part-way
through a step loses a fluxon. This emulator bounds every partial sum between ``count - inh`` and
``count + exc``; where that bound stays inside the capacity the result is exact. Where it does not, it
reports the (step, sample, neuron) as ``possible_overflow`` and, in ``strict`` mode, raises `OverflowPossible`
so the caller can rerun pulse by pulse; otherwise it saturates the step's net sum at +-capacity (what the
escape junction does when the pulses arrive interleaved, as the netlist orders them) and counts it:
``saturations_by_population`` where the net sum itself passes the capacity, ``order_dependent`` where only a
partial sum might (there the pulse engine can differ by the fluxons that escape mid-step).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spikeforge.errors import SpikeforgeError
from spikeforge.interfaces import Trace


class OverflowPossible(SpikeforgeError):
    """A storage loop may pass its capacity mid-step: only the pulse-level emulator orders the pulses."""


def _dense(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Excitatory and inhibitory pulse counts as float32 matrices (exact for integer sums below 2^24)."""
    Wf = np.asarray(W, dtype=np.float32)
    return np.maximum(Wf, 0).T.copy(), np.maximum(-Wf, 0).T.copy()


def run_arrays(program: dict[str, Any], arrays: dict[str, np.ndarray], inputs: dict[str, np.ndarray], *,
               probes: bool = False, strict: bool = False) -> Trace:
    """Run the array program on inputs (T, B, n) spikes per Input node."""
    if program.get("coding") != "clocked":
        raise SpikeforgeError("the array emulator runs the clocked coding only; stochastic coding runs pulse by pulse")
    order: list[str] = program["order"]
    layers: dict[str, Any] = program["layers"]
    delays: dict[str, str] = program["delays"]
    first_in = next(iter(program["inputs"]))
    T, B = int(inputs[first_in].shape[0]), int(inputs[first_in].shape[1])
    mats: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    consts: dict[str, dict[str, Any]] = {}
    for name, info in layers.items():
        mats[name] = [(src, *_dense(arrays[f"{name}/weight/{src}"])) for src in info["sources"]]
        u = 1 << int(info["frac_bits"])
        bias = arrays.get(f"{name}/bias") if info["bias"] else None
        fan = sum(float(np.abs(arrays[f"{name}/weight/{src}"]).sum(1).max(initial=0)) for src in info["sources"])
        if fan >= 2 ** 24:
            raise SpikeforgeError(f"layer '{name}': {fan:.0f} pulses per step exceed exact float32 sums")
        consts[name] = {
            "u": u, "cap": int(info["capacity"]) * u, "th": arrays[f"{name}/threshold"].astype(np.int64),
            "sub": arrays[f"{name}/reset_sub"].astype(np.int64), "vr": arrays[f"{name}/v_reset"].astype(np.int64),
            "num": arrays[f"{name}/leak_num"].astype(np.int64), "kb": int(info["leak_bits"]),
            "subtract": info["reset"] == "subtract", "delayed": info["reset_timing"] == "delayed",
            "bexc": None if bias is None else np.maximum(bias, 0).astype(np.int64),
            "binh": None if bias is None else np.maximum(-bias, 0).astype(np.int64),
            # float units per counter unit, per neuron (older artifacts: one scale per layer)
            "vunit": np.asarray(arrays.get(f"{name}/wscale", info["wscale"]), np.float64) / u,
        }
    count = {n: np.zeros((B, i["size"]), np.int64) for n, i in layers.items()}
    acc = {n: np.zeros((B, i["size"]), np.int64) for n, i in layers.items()}
    pending = {n: np.zeros((B, i["size"]), bool) for n, i in layers.items()}
    hist: dict[str, np.ndarray] = {}          # spikes over time of every source (delays read the past)
    outs = {o: np.zeros((T, B, layers[s]["size"] if s in layers else 0), np.float32)
            for o, s in program["outputs"].items()}
    states: dict[str, np.ndarray] = {}
    if probes:
        for n, i in layers.items():
            states[f"{n}.s"] = np.zeros((T, B, i["size"]), np.float32)
            states[f"{n}.v"] = np.zeros((T, B, i["size"]), np.float32)
    spikes_t, synops_t = np.zeros(T), np.zeros(T)
    layer_spk = dict.fromkeys(layers, 0.0)
    layer_syn = dict.fromkeys(layers, 0.0)
    overflow = 0
    sats: dict[str, int] = {}
    first: dict[str, Any] | None = None
    for name in program["inputs"]:
        hist[name] = np.asarray(inputs[name]).reshape(T, B, -1).astype(np.float32)
    for name in order:
        if name in delays:
            hist[name] = np.zeros((T, B, len(arrays[f"{name}/delay_steps"])), np.float32)
        elif name in layers:
            hist[name] = np.zeros((T, B, layers[name]["size"]), np.float32)
    for t in range(T):
        for name in order:
            if name in delays:
                d = np.asarray(arrays[f"{name}/delay_steps"], np.int64)
                src = hist[delays[name]]
                k = t - d
                ok = k >= 0
                row = np.zeros((B, len(d)), np.float32)
                if ok.any():
                    idx = np.flatnonzero(ok)
                    row[:, idx] = src[k[idx], :, idx].T
                hist[name][t] = row
                continue
            if name not in layers:
                continue
            c = consts[name]
            exc = np.zeros((B, layers[name]["size"]), np.float32)
            inh = np.zeros_like(exc)
            for src, Wp, Wn in mats[name]:
                s = hist[src][t]
                if s.any():
                    exc += s @ Wp
                    inh += s @ Wn
            e = exc.astype(np.int64)
            i_ = inh.astype(np.int64)
            if c["bexc"] is not None:
                e += c["bexc"]
                i_ += c["binh"]
            u, cap = c["u"], c["cap"]
            v0 = count[name]
            risky = (v0 + u * e > cap) | (v0 - u * i_ < -cap)
            v = v0 + u * (e - i_)
            if risky.any():
                nr = int(risky.sum())
                overflow += nr
                if first is None:
                    b, j = map(int, np.argwhere(risky)[0])
                    first = {"layer": name, "step": t, "sample": b, "neuron": j}
                if strict:
                    raise OverflowPossible(f"layer '{name}' step {t}: a storage loop may pass its capacity "
                                           f"{cap // u} mid-step ({nr} neuron(s))", node=name)
                over = (v > cap) | (v < -cap)
                ns = int(over.sum())
                if ns:
                    sats[name] = sats.get(name, 0) + ns
                v = np.clip(v, -cap, cap)
            pulses = float(e.sum() + i_.sum())
            synops_t[t] += pulses
            layer_syn[name] += pulses
            if c["delayed"]:
                pend = pending[name]
                v = np.where(pend, v - c["sub"], v) if c["subtract"] else np.where(pend, c["vr"], v)
            fired = v >= c["th"]
            if not c["delayed"]:
                v = np.where(fired, v - c["sub"], v) if c["subtract"] else np.where(fired, c["vr"], v)
            pending[name] = fired
            if probes:
                states[f"{name}.s"][t] = fired
                states[f"{name}.v"][t] = v * c["vunit"]
            if np.any(c["num"]):
                a = acc[name] + v * c["num"]
                lk = a >> c["kb"]
                acc[name] = a - (lk << c["kb"])
                v = v - lk
            count[name] = v
            n_f = float(fired.sum())
            spikes_t[t] += n_f
            layer_spk[name] += n_f
            hist[name][t] = fired
    for o, s in program["outputs"].items():
        outs[o] = hist[s].copy()
    return Trace(outputs=outs, counts={"spikes": spikes_t, "synops": synops_t}, states=states,
                 layer_counts={n: {"spikes": layer_spk[n], "synops": layer_syn[n]} for n in layers},
                 meta={"batch": B, "timesteps": T, "mode": "array", "events": float(synops_t.sum()),
                       "possible_overflow": overflow, "first_overflow": first,
                       "order_dependent": overflow - sum(sats.values()),
                       "saturations_by_population": sats, "saturation_count": sum(sats.values()),
                       "violation_count": 0, "violations_by_kind": {},
                       "violations": [], "ops_by_type": {}, "bias_ops_uA": {}})
