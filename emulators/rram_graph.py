"""Emulator of the programmed-weight RRAM mode: any graph, weight layers read tile by tile.

The digital periphery (neurons, thresholds, leaks, pooling, flatten, delays, biases) runs the
reference simulator's own kernels in float64, which is what the board spec states the periphery
computes; each weight layer (Affine, Linear, Conv2d) is replaced by a crossbar kernel:

  x  -> patches (Conv2d: im2col, kernel-stationary: one MVM per output position) -> input DAC
     -> per tile: I = x W_eff - IR-drop load + read noise -> column ADC -> digital gain ws
     -> partial sums of row tiles added in the periphery -> per-column gain calibration -> + bias

With every read-time effect off the crossbar kernel computes the reference kernel's own dot product
on the programmed (level-quantised) weights, so the emulator equals the float reference of the
quantised weights bit for bit; the tiled path is used as soon as any effect is on. Static effects
are drawn once per chip instance (seed); read noise from a stream that restarts each run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spikeforge.artifact import Artifact
from spikeforge.backends.rram import xbar as X
from spikeforge.errors import InputError
from spikeforge.interfaces import Trace
from spikeforge.refsim import ReferenceSimulator, config_for_graph

COUNT_KEYS = ("synops", "neuron_updates", "spikes", "macs", "reads", "adc_conversions", "tile_reads",
              "digital_adds")


class XbarKernel:
    """A weight layer on crossbar tiles; wraps the reference kernel (for shapes and the ideal path)."""

    stateful = False

    def __init__(self, inner: Any, layer: dict[str, Any], tiles: list[list[X.Tile]], fx: X.Effects, gain: np.ndarray | None,
                 rng: np.random.Generator, ideal: bool, offset: np.ndarray | None = None):
        self.inner = inner
        self.in_shape = inner.in_shape
        self.layer = layer
        self.tiles = tiles                  # per tile: its replicas (and in-macro column copies)
        self.stacked = [_stack(reps) for reps in tiles]   # all of them side by side: one read per tile and step
        self.fx = fx
        self.gain = gain
        self.offset = offset
        self.tap: dict[str, Any] | None = None          # column sums after the gain (progressive offset calibration)
        self.rng = rng
        self.ideal = ideal
        self.conv = layer["kind"] == "conv"
        self.bias = None if layer.get("bias") is None else np.asarray(layer["bias"], np.float64)
        self.counts: dict[str, list[float]] = {k: [] for k in ("reads", "adc_conversions", "tile_reads", "digital_adds")}
        self.record: dict[str, Any] | None = None       # calibration hooks (lowering only)

    def init(self, batch: int) -> Any:
        return self.inner.init(batch)

    def synops(self, x: np.ndarray) -> float:
        return self.inner.synops(x)

    def probes(self, state: Any) -> dict[str, np.ndarray]:
        return {}

    # ---- im2col ---------------------------------------------------------------------------------
    def patches(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
        if not self.conv:
            return x.reshape(x.shape[0], -1).astype(np.float64, copy=False), ()
        import torch

        k = self.inner
        t = torch.from_numpy(np.ascontiguousarray(x, np.float64))
        if k.in_shape is not None:
            t = t.reshape(t.shape[0], *k.in_shape)
        cols = torch.nn.functional.unfold(t, tuple(k.w.shape[2:]), dilation=k.dilation, padding=k.padding,
                                          stride=k.stride)                      # (B, K, L)
        h, w = t.shape[2:]
        kh, kw = k.w.shape[2:]
        ho = (h + 2 * k.padding[0] - k.dilation[0] * (kh - 1) - 1) // k.stride[0] + 1
        wo = (w + 2 * k.padding[1] - k.dilation[1] * (kw - 1) - 1) // k.stride[1] + 1
        return cols.transpose(1, 2).reshape(-1, cols.shape[1]).numpy(), (t.shape[0], ho, wo)

    def step(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        P, geo = self.patches(x)                       # one call per time step: counts are per step
        r = self.layer.get("replicas", 1)
        step = {"reads": 0.0, "tile_reads": 0.0, "adc_conversions": 0.0, "digital_adds": 0.0}
        for t in self.layer["tiles"]:
            kr, kc = t.get("copies", (1, 1))                # in-macro copies: more cells read, more columns converted
            r0, r1 = t["rows"]
            live = float(np.any(P[:, r0:r1] != 0, axis=1).sum()) * r
            if t["cols"][0] == 0 and t.get("slice", 0) == 0:  # active word lines (row copies drive theirs too)
                step["reads"] += float(np.count_nonzero(P[:, r0:r1])) * r * kr
            step["tile_reads"] += live
            step["adc_conversions"] += live * (t["cols"][1] - t["cols"][0]) * kc
            step["digital_adds"] += live * (t["cols"][1] - t["cols"][0]) * kc
        for key, v in step.items():
            self.counts[key].append(v)
        if self.ideal and self.record is None:
            return self.inner.step(x, state)
        lay = self.layer
        if self.fx.dac_bits is not None and lay["dac_lsb"] > 0 and not np.all(P == np.rint(P / lay["dac_lsb"]) *
                                                                           lay["dac_lsb"]):
            raise InputError(f"layer '{lay['node']}' was compiled for {lay['encoding']} (DAC step {lay['dac_lsb']:g}) "
                             "but receives graded values; the DAC would round them",
                             node=lay["node"], hint="compile with --calibration data that holds such inputs")
        Pq = X.dac(P, lay["dac_lsb"], lay["dac_top"], lay["dac_signed"], self.fx.dac_bits)
        Y = np.zeros((P.shape[0], lay["out"]), np.float64)
        for k, reps in enumerate(self.tiles):
            tl = reps[0]
            xr = Pq[:, tl.r0:tl.r1]
            # replicas and column copies hold the same weights: their digitised sums are averaged
            y = X.read(self.stacked[k], xr, self.fx, lay["dac_top"], self.rng)
            y = y.reshape(y.shape[0], len(reps), -1).mean(axis=1) if len(reps) > 1 else y
            if self.record is not None:
                self._calibrate(k, tl, xr, y)
            Y[:, tl.c0:tl.c1] += y
        if self.gain is not None:
            Y = Y * self.gain
        if self.tap is not None:
            self.tap["s"] += Y.sum(axis=0)
            self.tap["n"] += Y.shape[0]
        if self.offset is not None:
            Y = Y + self.offset
        if self.conv:
            B, ho, wo = geo
            y_out = Y.reshape(B, ho * wo, -1).transpose(0, 2, 1).reshape(B, -1, ho, wo)
            if self.bias is not None:
                y_out = y_out + self.bias.reshape(1, -1, 1, 1)
        else:
            y_out = Y if self.bias is None else Y + self.bias
        return y_out, state

    def _calibrate(self, k: int, tl: X.Tile, xr: np.ndarray, y: np.ndarray) -> None:
        rec = self.record
        assert rec is not None
        ideal = xr @ rec["w"][k]
        rec["peak"][k] = max(rec["peak"][k], float(np.abs(ideal / (tl.ws * tl.copies)).max(initial=0.0)))
        rec["rr"][tl.c0:tl.c1] += (ideal * ideal).sum(axis=0)
        rec["yr"][tl.c0:tl.c1] += (y * ideal).sum(axis=0)
        rec["sr"][tl.c0:tl.c1] += ideal.sum(axis=0)
        rec["sy"][tl.c0:tl.c1] += y.sum(axis=0)
        if tl.r0 == 0 and self.layer["tiles"][k].get("slice", 0) == 0:       # rows read, once per column
            rec["n"][tl.c0:tl.c1] += y.shape[0]


def _stack(reps: list[X.Tile]) -> X.Tile:
    """Copies of one tile side by side as one wider tile: each column keeps its own conversion."""
    if len(reps) == 1:
        return reps[0]
    t = reps[0]

    def cat(a: list[np.ndarray | None]) -> np.ndarray | None:
        return None if a[0] is None else np.concatenate(a, axis=1)

    return X.Tile(t.r0, t.r1, t.c0, t.c1, ws=np.concatenate([r.ws for r in reps]), fs=t.fs,
                  w=cat([r.w for r in reps]), load=cat([r.load for r in reps]), q=cat([r.q for r in reps]),
                  copies=t.copies)


def chip_tiles(art: Artifact, li: int, fx: X.Effects, rng: np.random.Generator, dtype: np.dtype) -> list[list[X.Tile]]:
    """One chip instance's tiles of weight layer `li`, each with its replicas and in-macro column copies (static
    effects drawn from rng); their digitised reads are averaged.

    Replicas differ only in random effects; without programming or read noise one copy stands for all. In-macro
    copies (`tile["copies"]`) also change the IR drop of the macro, so they are laid out when it is on."""
    lay = art.meta["layers"][li]
    noisy = fx.static or fx.read_noise
    n_rep = int(lay.get("replicas", 1)) if noisy else 1
    out: list[list[X.Tile]] = []
    for k, t in enumerate(lay["tiles"]):
        key = f"xbar{li:03d}.t{k:03d}"
        kr, kc = (int(c) for c in t.get("copies", (1, 1))) if (noisy or fx.ir_drop) else (1, 1)
        # a less significant pair (slice 1) follows its first pair: it is written to correct that pair's write error
        first = out[k - 1] if t.get("slice", 0) == 1 and fx.static else None
        reps: list[X.Tile] = []
        for r in range(n_rep):
            correct = None if first is None else [e for tl in first[r * kc:(r + 1) * kc] for e in tl.written]
            reps += X.chip_tile((t["rows"][0], t["rows"][1], t["cols"][0], t["cols"][1]),
                                np.asarray(art.arrays[f"{key}.ws"], np.float64), t["adc_fs"],
                                np.asarray(art.arrays[f"{key}.w"]), np.asarray(art.arrays[f"{key}.g_pos"], np.float64),
                                np.asarray(art.arrays[f"{key}.g_neg"], np.float64), fx, rng, dtype,
                                correct=correct, g_off=float(art.meta["g_off"]), copies=(kr, kc))
        out.append(reps)
    return out


class GraphEmulator:
    """Runs a programmed-weight artifact; `effects` overrides what the artifact was compiled with."""

    def __init__(self, effects: Any = None, seed: int | None = None, calibrated: bool = True):
        self.effects = effects
        self.seed = seed
        self.calibrated = calibrated
        self._cache: tuple[Any, Any, dict[int, list[list[X.Tile]]]] | None = None

    def effects_for(self, art: Artifact) -> X.Effects:
        e = self.effects
        if e is None:
            return X.Effects.parse(art.meta["effects"])
        if isinstance(e, str) and e == "off":
            return X.Effects()
        if isinstance(e, dict):
            return X.Effects(**{**art.meta["effects"], **e})
        return X.Effects.parse(e)

    def simulator(self, art: Artifact, fx: X.Effects, seed: int, record: bool = False) -> ReferenceSimulator:
        prog = art.program
        sim = ReferenceSimulator(prog, config_for_graph(prog, art.meta.get("dt"), dtype="float64"))
        c = self._cache
        if c is None or c[0] is not art.arrays or c[1] != (fx, seed):
            rng = np.random.default_rng([seed, 1])
            tiles = {i: chip_tiles(art, i, fx, rng, np.dtype(np.float64)) for i in range(len(art.meta["layers"]))}
            c = self._cache = (art.arrays, (fx, seed), tiles)
        read_rng = np.random.default_rng([seed, 2])
        use_gain = self.calibrated and art.meta.get("calibrated_seed") == seed and not record
        for i, lay in enumerate(art.meta["layers"]):
            gain = art.arrays.get(f"xbar{i:03d}.gain") if use_gain else None
            offset = art.arrays.get(f"xbar{i:03d}.offset") if use_gain else None
            sim.kernels[lay["node"]] = XbarKernel(sim.kernels[lay["node"]], {**lay, "bias": art.arrays.get(
                f"xbar{i:03d}.bias")}, c[2][i], fx, None if gain is None else np.asarray(gain, np.float64),
                read_rng, fx.ideal_read, None if offset is None else np.asarray(offset, np.float64))
        return sim

    def run(self, art: Artifact, inputs: dict[str, np.ndarray] | np.ndarray, *, probes: bool = False) -> Trace:
        fx = self.effects_for(art)
        seed = int(art.meta.get("seed", 0) if self.seed is None else self.seed)
        sim = self.simulator(art, fx, seed)
        if isinstance(inputs, np.ndarray):
            inputs = {sim.inputs[0]: inputs}
        res = sim.run({k: np.asarray(v) for k, v in inputs.items()}, probes=probes)
        T = res.spikes.shape[0]
        counts = {k: np.zeros(T) for k in COUNT_KEYS}
        counts["synops"] = res.synops
        counts["neuron_updates"] = res.neuron_updates
        counts["spikes"] = res.spikes
        layer_counts: dict[str, dict[str, float]] = {}
        mvms = 0.0
        for lay in art.meta["layers"]:
            k = sim.kernels[lay["node"]]
            for key, v in k.counts.items():
                counts[key] += np.asarray(v, np.float64)
            mvms += float(np.sum(k.counts["tile_reads"]))
            layer_counts[lay["node"]] = {"tile_reads": float(np.sum(k.counts["tile_reads"])),
                                         "synops": res.layer_synops[lay["node"]]}
        states: dict[str, np.ndarray] = {}
        if probes:
            spiking = set(art.meta.get("spiking_nodes", []))
            for name, val in res.activity.items():
                if name in spiking:
                    states[f"{name}.s"] = val
            for key, val in res.states.items():
                states[key] = val
        return Trace(outputs=res.outputs, counts=counts, states=states, layer_counts=layer_counts,
                     meta={"batch": int(next(iter(res.outputs.values())).shape[1]), "effects": fx.to_dict(),
                           "seed": seed, "mvms": mvms,
                           "gain_calibrated": bool(self.calibrated and art.meta.get("calibrated_seed") == seed)})
