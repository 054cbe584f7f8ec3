"""Emulator of the RRAM LSM: reads every macro step by step, then runs the digital LIF and readout.

Per time step t and tile (vectorised over the batch):
  x      = [input_{t-d_in}, spikes_{t-1-d_rec}] restricted to the tile's rows (1-bit DAC: one read
           pulse per active word line; d_in / d_rec are uniform NIR Delays, a digital spike FIFO),
  I      = x @ (g+ - g-)                         conductances after the chip's static effects,
         - a_t x @ L                             first-order IR drop (bit-line load, a_t = active fraction),
         + read_noise sqrt(x @ (g+^2 + g-^2)) N  per-read noise of every selected cell, summed,
  ADC    clip to +-full scale, round to 2^(bits-1)-1 steps per side,
  y      = w_per_g x ADC(I)                      digital gain; row blocks' partial sums are added.
Then the digital LIF (same conventions as spikeforge.refsim) and the digital readout Affine.

With every non-ideality off the tile computes x @ w with the float32 target weights in float64,
which is exact for binary x, so the spikes equal the reference simulator's (run in float64) bit for
bit. Static effects are drawn once from `seed` (a chip instance, cached by the emulator object for
repeated runs on the same artifact); read noise per read from a stream that restarts each run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from spikeforge.artifact import Artifact
from spikeforge.backends.rram import device as D
from spikeforge.errors import InputError
from spikeforge.interfaces import Emulator, Trace
from spikeforge.refsim import config_for_graph


@dataclass
class _Tile:
    r0: int
    r1: int
    c0: int
    c1: int
    w: np.ndarray                 # (rows, pairs) effective weight at full row voltage
    load: np.ndarray | None       # IR-drop bit-line load (weight units), or None
    q: np.ndarray | None          # read-noise variance per active row (weight units^2), or None
    ws: float
    fs: float
    row_g: np.ndarray             # (rows,) physical conductance of each row's used cells, S
    nnz: np.ndarray               # (rows,) non-zero weights per row (synops)
    stack: np.ndarray | None = None   # [w | load | q] side by side, read with one matmul

    def __post_init__(self) -> None:
        parts = [self.w] + [p for p in (self.load, self.q) if p is not None]
        self.stack = np.ascontiguousarray(np.concatenate(parts, axis=1)) if len(parts) > 1 else self.w


def _decay(dt: float, tau: np.ndarray, integration: str) -> tuple[np.ndarray, np.ndarray]:
    """(keep, into) of one step of tau dx/dt = -x + u (float64), as the reference simulator defines."""
    if integration == "exact":
        return np.exp(-dt / tau), -np.expm1(-dt / tau)
    return 1.0 - dt / tau, dt / tau


def read_tile(tl: _Tile, xr: np.ndarray, adc_bits: int | None, rng: np.random.Generator,
              active: np.ndarray | None = None) -> np.ndarray:
    """One read of one tile for a batch of binary row vectors xr (B, rows): the digitised partial sums."""
    m = tl.c1 - tl.c0
    full = xr @ tl.stack                                 # one GEMM for signal, IR load and noise variance
    y = full[:, :m]
    k = m
    if tl.load is not None:
        a = xr.sum(axis=1) if active is None else active
        y = y - (a / (tl.r1 - tl.r0))[:, None] * full[:, k:k + m]
        k += m
    if tl.q is not None:
        y = y + np.sqrt(np.maximum(full[:, k:k + m], 0.0)) * rng.standard_normal(y.shape).astype(y.dtype)
    if adc_bits is not None:
        y = tl.ws * D.adc(y / tl.ws, tl.fs, adc_bits)
    return y


class _Neurons:
    """Digital LIF / CubaLIF with the reference simulator's discretisation conventions."""

    def __init__(self, node: nir.NIRNode, graph: nir.NIRGraph, dtype: np.dtype):
        cfg = config_for_graph(graph, dtype=np.dtype(dtype).name).for_node(node)
        self.cfg = cfg
        self.cuba = isinstance(node, nir.CubaLIF)
        # coefficients combined once in float64 and rounded once: v <- keep v + gain I (+ bias),
        # the fixed-coefficient update a digital neuron block performs
        tau = np.asarray(node.tau_mem if self.cuba else node.tau, np.float64)
        keep, into = _decay(cfg.dt, tau, cfg.integration)
        bias = into * np.asarray(node.v_leak, np.float64)
        self.keep = keep.astype(dtype)
        self.gain = (into * np.asarray(node.r, np.float64)).astype(dtype)
        self.bias = bias.astype(dtype) if np.any(bias != 0) else None
        if self.cuba:
            sk, si = _decay(cfg.dt, np.asarray(node.tau_syn, np.float64), cfg.integration)
            self.skeep = sk.astype(dtype)
            self.sgain = (si * np.asarray(node.w_in, np.float64)).astype(dtype)
        self.th = np.asarray(node.v_threshold, dtype)
        vr = getattr(node, "v_reset", None)
        self.v_reset = np.zeros((), dtype) if vr is None else np.asarray(vr, dtype)
        self.dtype = dtype

    def init(self, batch: int, n: int) -> dict[str, np.ndarray]:
        z = np.zeros((batch, n), self.dtype)
        return {"v": z.copy(), "i": z.copy(), "s": np.zeros((batch, n), bool)}

    def step(self, x: np.ndarray, st: dict[str, np.ndarray]) -> np.ndarray:
        c = self.cfg
        if self.cuba:
            i_new = self.skeep * st["i"] + self.sgain * x
            drive = i_new if c.cuba_order == "current_first" else st["i"]
            st["i"] = i_new
        else:
            drive = x
        v = self.keep * st["v"] + self.gain * drive
        if self.bias is not None:
            v = v + self.bias
        if c.reset_timing == "delayed":
            v = v - st["s"] * self.th if c.reset == "subtract" else np.where(st["s"], self.v_reset, v)
        s = (v > self.th) if c.threshold_cmp == ">" else (v >= self.th)
        if c.reset_timing == "immediate":
            v = v - s * self.th if c.reset == "subtract" else np.where(s, self.v_reset, v)
        st["v"] = v.astype(self.dtype, copy=False)
        st["s"] = s
        return s


class RRAMEmulator(Emulator):
    """`RRAMEmulator(nonideal=..., seed=...)` overrides what the artifact was compiled with."""

    def __init__(self, nonideal: Any = None, seed: int | None = None, dtype: str = "float64"):
        self.nonideal = nonideal
        self.seed = seed
        self.dtype = np.dtype(dtype)
        self._cache: tuple[dict[str, np.ndarray], Any, list[_Tile]] | None = None

    # ---- one chip instance -------------------------------------------------------------------------
    def chip(self, art: Artifact, ni: D.NonIdeal, rng: np.random.Generator) -> list[_Tile]:
        from spikeforge.backends.rram.device import load_board

        board = load_board(art.board)
        gmax = float(board.value("physics.g_max"))
        g_off = float(art.meta["g_off"])
        tiles = []
        for k, (r0, r1, c0, c1) in enumerate(np.asarray(art.arrays["tiles.index"])):
            ws = float(art.arrays["tiles.w_per_g"][k])
            fs = float(art.arrays["tiles.adc_full_scale"][k])
            w = art.arrays[f"tile{k:03d}.w"].astype(np.float64)
            gp = art.arrays[f"tile{k:03d}.g_pos"].astype(np.float64)
            gn = art.arrays[f"tile{k:03d}.g_neg"].astype(np.float64)
            if ni.static:
                ap, an = D.program(gp, gn, ni, g_off, rng)
                # target + deviation keeps the ideal part exact: ws (g+ - g-) == w by construction
                w = w + ws * ((ap - gp) - (an - gn))
                gp, gn = ap, an
            load = None
            if ni.ir_drop:
                eff, ld = D.ir_drop_factors(gp, gn, ni.ir_drop)
                w = w + ws * (eff - (gp - gn))
                load = ws * ld
            q = None
            if ni.read_noise:
                q = (ws * ni.read_noise) ** 2 * (gp * gp + gn * gn)
            dt = self.dtype
            tiles.append(_Tile(int(r0), int(r1), int(c0), int(c1), w.astype(dt),
                               None if load is None else load.astype(dt), None if q is None else q.astype(dt),
                               ws, fs, (gp + gn).sum(axis=1) * gmax,
                               (art.arrays[f"tile{k:03d}.w"] != 0).sum(axis=1).astype(np.float64)))
        return tiles

    def run(self, artifact: Artifact, inputs: dict[str, np.ndarray] | np.ndarray, *,
            probes: bool = False) -> Trace:
        art = artifact
        if art.meta.get("engine") == "graph":
            from .rram_graph import GraphEmulator

            fx = None if self.nonideal is None else ("off" if self.nonideal == "off" else self.nonideal)
            return GraphEmulator(effects=fx, seed=self.seed).run(art, inputs, probes=probes)
        st = art.meta["structure"]
        ni = D.NonIdeal.parse(self.nonideal if self.nonideal is not None else art.meta["nonideal"])
        seed = int(art.meta.get("seed", 0) if self.seed is None else self.seed)
        rng = np.random.default_rng([seed, 2])               # per-read noise: a fresh stream each run
        if isinstance(inputs, np.ndarray):
            inputs = {st["input"]: inputs}
        if st["input"] not in inputs:
            raise InputError(f"no data for input node '{st['input']}'; got keys {sorted(inputs)}")
        x_in = np.asarray(inputs[st["input"]])
        if x_in.ndim < 2:
            raise InputError(f"input must be (time, batch, {st['n_in']}), got {x_in.shape}")
        T, B = x_in.shape[:2]
        x_in = x_in.reshape(T, B, -1)
        if x_in.shape[2] != st["n_in"]:
            raise InputError(f"input has {x_in.shape[2]} channels per step; the reservoir expects {st['n_in']}")
        if not np.all((x_in == 0) | (x_in == 1)):
            raise InputError("the macro's word lines take binary spikes (1-bit DAC); input has other values",
                             hint="encode graded inputs as spike trains first")
        dt = self.dtype
        c = self._cache
        if c is None or c[0] is not art.arrays or c[1] != (ni, seed):
            # one chip instance per (artifact arrays, non-idealities, seed): static effects drawn once and
            # reused by later runs of this emulator object (holding the arrays keeps their identity unique)
            c = self._cache = (art.arrays, (ni, seed), self.chip(art, ni, np.random.default_rng([seed, 1])))
        tiles = c[2]
        n, n_in = st["n"], st["n_in"]
        neurons = _Neurons(art.reference.nodes[st["pop"]], art.reference, dt)
        state = neurons.init(B, n)
        bias = art.arrays["bias"].astype(dt)
        has_bias = bool(np.any(bias != 0))
        ro_w = ro_b = None
        if st["readout"] is not None:
            node = art.reference.nodes[st["readout"]]
            ro_w = np.asarray(node.weight, dt).T.copy()
            ro_b = np.asarray(getattr(node, "bias", 0.0), dt)
        keys = ("synops", "neuron_updates", "spikes", "macs", "reads", "adc_conversions", "tile_reads",
                "array_conductance", "digital_adds")
        counts = {k: np.zeros(T) for k in keys}
        outs = []
        v_probe, s_probe, i_probe = [], [], []
        x = np.zeros((B, n_in + n), dt)
        d_in, d_rec = int(st.get("delay_in", 0)), int(st.get("delay_rec", 0))
        fifo = [np.zeros((B, n), bool) for _ in range(d_rec)]     # spike FIFO before the recurrent word lines
        for t in range(T):
            x[:, :n_in] = x_in[t - d_in] if t >= d_in else 0.0
            cur = np.zeros((B, n), dt)
            for tl in tiles:
                xr = x[:, tl.r0:tl.r1]
                active = xr.sum(axis=1)                      # active rows per sample
                cur[:, tl.c0:tl.c1] += read_tile(tl, xr, ni.adc_bits, rng, active)
                live = float((active > 0).sum())
                counts["reads"][t] += float(active.sum())
                counts["tile_reads"][t] += live
                counts["adc_conversions"][t] += live * (tl.c1 - tl.c0)
                counts["digital_adds"][t] += live * (tl.c1 - tl.c0)
                counts["array_conductance"][t] += float((xr @ tl.row_g).sum())
                counts["synops"][t] += float((xr @ tl.nnz).sum())
            if has_bias:
                cur = cur + bias
            s = neurons.step(cur, state)
            if d_rec:
                fifo.append(s)
                x[:, n_in:] = fifo.pop(0)
            else:
                x[:, n_in:] = s
            counts["neuron_updates"][t] = B * n
            counts["spikes"][t] = float(s.sum())
            if ro_w is not None:
                outs.append(s.astype(dt) @ ro_w + ro_b)
                # on chip: a spike counter per neuron, one N x C matvec on the counts at the end
                if t == T - 1:
                    counts["macs"][t] = float(B * n * ro_w.shape[1])
            else:
                outs.append(s.astype(dt))
            if probes:
                v_probe.append(state["v"].copy())
                s_probe.append(s.astype(dt))
                i_probe.append(cur)
        states = {}
        if probes:
            states = {f"{st['pop']}.v": np.stack(v_probe), f"{st['pop']}.spikes": np.stack(s_probe),
                      f"{st['pop']}.s": np.stack(s_probe),
                      f"{st['pop']}.current": np.stack(i_probe)}
        return Trace(
            outputs={st["output"]: np.stack(outs)},
            counts=counts,
            states=states,
            layer_counts={st["pop"]: {"spikes": float(counts["spikes"].sum()), "synops": float(counts["synops"].sum())}},
            meta={"batch": int(B), "nonideal": ni.to_dict(), "seed": seed, "tiles": len(tiles)},
        )
