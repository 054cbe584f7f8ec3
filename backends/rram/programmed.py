"""Programmed-weight mode: write-verify any trained graph's weights into RRAM crossbar macros.

Every Affine / Linear / Conv2d becomes a crossbar matrix (rows = inputs on word lines, columns =
differential conductance pairs, one per output). Conv2d maps kernel-stationary through im2col: the
(C_in kh kw) x C_out kernel matrix is programmed once and each output position is one MVM of an input
patch. Why kernel-stationary: programming is slow and wears the cells, and an unrolled (Toeplitz)
mapping would copy every kernel once per output position (225 copies for the first layer of the NIR
paper's CNN), so it would not fit the macros; the price is L sequential MVMs per step (in the latency).
Matrices larger than a macro are cut into row tiles (partial sums added in the digital periphery) and
column tiles. Neurons, thresholds, leaks, biases, pooling and delays run in the digital periphery.
"""

from __future__ import annotations

import copy
from typing import Any

import nir
import numpy as np

from spikeforge import graph as G
from spikeforge import semantics
from spikeforge.artifact import Artifact
from spikeforge.boards import Board
from spikeforge.errors import FitError, UnsupportedError
from spikeforge.interfaces import CompileOptions

from . import xbar as X

WEIGHT = (nir.Affine, nir.Linear, nir.Conv2d)
SPIKING = (nir.LIF, nir.CubaLIF, nir.IF, nir.Threshold)
PERIPHERY = (nir.Input, nir.Output, nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.CubaLI, nir.I, nir.SumPool2d,
             nir.AvgPool2d, nir.Flatten, nir.Delay, nir.Scale, nir.Threshold)
CALIB_SAMPLES = 64
REPLICAS_AUTO_MAX = 4
COPIES_AUTO_MAX = 32


def supports(g: nir.NIRGraph) -> tuple[bool, str]:
    """Can the programmed mode take this graph? (False, reason naming the node) if not."""
    for name, node in g.nodes.items():
        if isinstance(node, nir.Conv2d):
            if int(node.groups) != 1:
                return False, f"node '{name}': Conv2d with groups={node.groups} (only groups=1 maps onto one matrix)"
            if isinstance(node.padding, str):
                return False, f"node '{name}': Conv2d padding '{node.padding}' (give explicit padding)"
        elif not isinstance(node, WEIGHT + PERIPHERY):
            return False, f"node '{name}': {type(node).__name__} has no crossbar or periphery mapping"
    if not any(isinstance(n, WEIGHT) for n in g.nodes.values()):
        return False, "the graph has no weight layer (Affine/Linear/Conv2d) to program"
    return True, ""


def matrix(node: nir.NIRNode) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(W (out, in) float64, bias per output or None, 'dense' | 'conv')."""
    w = np.asarray(node.weight, np.float64)
    b = getattr(node, "bias", None) if isinstance(node, (nir.Affine, nir.Conv2d)) else None
    out = w.shape[0]
    if b is not None:
        b = np.asarray(b, np.float64).reshape(-1)
        b = np.full(out, float(b[0])) if b.size == 1 and out > 1 else b
        if not np.any(b):
            b = None
    if isinstance(node, nir.Conv2d):
        return w.reshape(out, -1), b, "conv"
    return w, b, "dense"


def _area(kernel: Any) -> float:
    k = np.ravel(np.asarray(kernel, np.float64))
    return float(k[0] * k[0]) if k.size == 1 else float(np.prod(k[:2]))


def input_code(g: nir.NIRGraph, name: str) -> dict[str, Any]:
    """How a layer's input reaches the word lines: spikes (1-bit), spike counts (integers) or graded."""
    preds = [a for a, b in g.edges if b == name]
    top, lsb, graded, kinds = 0.0, 1.0, False, []
    for p in preds:
        scale, cur = 1.0, p
        span = 1.0
        for _ in range(len(g.nodes)):                          # bounded walk back through the periphery
            node = g.nodes[cur]
            if isinstance(node, nir.SumPool2d):
                span *= _area(node.kernel_size)
            elif isinstance(node, nir.AvgPool2d):
                span, scale = span * _area(node.kernel_size), scale / _area(node.kernel_size)
            elif not isinstance(node, (nir.Flatten, nir.Delay)):
                break
            src = [a for a, b in g.edges if b == cur]
            if len(src) != 1:
                break
            cur = src[0]
        node = g.nodes[cur]
        if isinstance(node, SPIKING):
            kinds.append("spikes" if span == 1 else "spike counts")
            top += span * scale
            lsb = min(lsb, scale)
        elif isinstance(node, nir.Input):
            kinds.append("input (assumed spikes)")
            top += span * scale
            lsb = min(lsb, scale)
        else:
            kinds.append(f"graded ({type(node).__name__})")
            graded = True
            top += 1.0
    return {"dac_lsb": 0.0 if graded else lsb, "dac_top": max(top, 1e-12), "dac_signed": graded,
            "encoding": ", ".join(kinds), "graded": graded}


def _calibration_inputs(options: CompileOptions, g: nir.NIRGraph) -> dict[str, np.ndarray] | None:
    src = options.extra.get("calibration")
    if src is None:
        return None
    from spikeforge.inputs import check_inputs

    if isinstance(src, np.ndarray):
        src = {"input": src}
    inputs, _ = check_inputs(dict(src), g)
    return {k: np.asarray(v)[:, :CALIB_SAMPLES] for k, v in inputs.items()}


def lower_programmed(g: nir.NIRGraph, board: Board, options: CompileOptions, dt: float, backend: str) -> Artifact:
    ok, why = supports(g)
    if not ok:
        raise UnsupportedError(f"programmed-weight mode: {why}")
    fx = X.Effects.from_options(options.extra, board)
    rows_max = int(board.value("limits.rows"))
    pairs_max = int(board.value("limits.cols")) // 2
    g_off = float(board.value("physics.g_hrs")) / float(board.value("physics.g_max"))
    k_sigma = float(board.value("parameters.adc_clip_sigma"))
    activity = float(board.value("parameters.row_activity"))
    program = copy.deepcopy(g)
    arrays: dict[str, np.ndarray] = {}
    layers: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    order = [n for n in G.schedule(g).order if isinstance(g.nodes[n], WEIGHT)]
    slices = _slices(options, fx.levels, g, order, rows_max, pairs_max, int(board.value("limits.max_macros")))
    window = X.residual_window(fx, g_off) if slices == 2 else 0.5
    for li, name in enumerate(order):
        node = g.nodes[name]
        W, bias, kind = matrix(node)
        M = W.T                                                  # crossbar layout: (rows = inputs, pairs = outputs)
        code = input_code(g, name)
        Wq = np.zeros_like(M)
        tiles = []
        clipped = 0
        for r0 in range(0, M.shape[0], rows_max):
            r1 = min(r0 + rows_max, M.shape[0])
            for c0 in range(0, M.shape[1], pairs_max):
                c1 = min(c0 + pairs_max, M.shape[1])
                gp, gn, ws = X.targets(M[r0:r1, c0:c1], g_off, fx.levels)
                wt = ws * (gp - gn)
                parts = [(gp, gn, ws, wt)]
                if slices == 2:                           # less significant pair: the first pair's rounding residual
                    gp2, gn2, ws2 = X.residual_targets(M[r0:r1, c0:c1] - wt, ws, g_off, fx.levels, window)
                    parts.append((gp2, gn2, ws2, ws2 * (gp2 - gn2)))
                span = sum(p[2] for p in parts) * (1.0 - g_off)
                clipped += int((np.abs(M[r0:r1, c0:c1]) > span * (1 + 1e-9)).sum())
                total = sum(p[3] for p in parts).astype(np.float32)
                Wq[r0:r1, c0:c1] = total
                for si, (gp, gn, ws, wt) in enumerate(parts):
                    k = len(tiles)
                    key = f"xbar{li:03d}.t{k:03d}"
                    # the pairs' stored parts add up to the programmed float32 weight exactly (the last in float64)
                    arrays[f"{key}.w"] = (wt.astype(np.float32) if si == 0 else
                                          total.astype(np.float64) - parts[0][3].astype(np.float32))
                    arrays[f"{key}.g_pos"] = gp.astype(np.float32)
                    arrays[f"{key}.g_neg"] = gn.astype(np.float32)
                    arrays[f"{key}.ws"] = ws.astype(np.float64)
                    d = gp - gn
                    fs = code["dac_top"] * X.adc_full_scale(d, activity, k_sigma)
                    tiles.append({"rows": [r0, r1], "cols": [c0, c1], "adc_fs": fs, "slice": si,
                                  "utilisation": (r1 - r0) * (c1 - c0) / (rows_max * pairs_max),
                                  "adc_fs_from": "statistics"})
        Wq = Wq.astype(np.float32)                               # what the tiles store (float32 targets)
        if bias is not None:
            arrays[f"xbar{li:03d}.bias"] = bias.astype(np.float64)
        new_w = Wq.T.astype(np.float32).reshape(np.asarray(node.weight).shape)
        program.nodes[name] = _with_weight(node, new_w)
        rel = float(np.linalg.norm(Wq.T - W) / max(np.linalg.norm(W), 1e-30))
        if fx.levels is not None and rel > 0:
            how = ("two differential pairs per weight, the second holding the first's rounding residual at "
                   f"{window:.3g}/{fx.levels - 1} of its scale, write-verified against the first pair's write error" if slices == 2 else "one differential pair per weight")
            semantics.record(meta, name, "quantisation",
                             f"weights rounded to {fx.levels} conductance levels per cell ({how}, per-column "
                             f"scale): relative weight error {rel:.3g}; verify gates the effect", rel,
                             semantics.WEIGHT_REL_RMS)
        _place_copies(tiles, arrays, li, options, fx, rows_max, pairs_max, activity)
        if fx.ir_drop:
            _check_ir_drop(meta, name, arrays, li, tiles, fx.ir_drop)
        if clipped:
            semantics.record(meta, name, "saturation",
                             f"{clipped} of {M.size} weights clipped to the per-column level range chosen for the "
                             f"least squared rounding + clipping error (fraction {clipped / M.size:.3g}); "
                             "verify gates the effect", clipped / M.size)
        positions = None
        if kind == "conv":
            shp = G.node_shape(g.nodes[name], "output")
            positions = int(np.prod(shp[1:])) if shp is not None and len(shp) == 3 else None
        layers.append({"node": name, "kind": kind, "out": int(M.shape[1]), "in": int(M.shape[0]), "tiles": tiles,
                       "positions": positions, "weight_rel_error": rel, **{k: v for k, v in code.items()}})
    n_tiles = sum(len(lay["tiles"]) for lay in layers)
    max_macros = int(board.value("limits.max_macros"))
    if n_tiles > max_macros:
        parts = ", ".join(f"{lay['node']} {lay['in']}x{lay['out']} -> {len(lay['tiles'])}" for lay in layers)
        raise FitError(f"the model needs {n_tiles} macros of {rows_max} rows x {pairs_max} differential pairs "
                       f"({parts}); board '{board.name}' has {max_macros}: the binding limit is limits.max_macros",
                       hint="prune the model or choose a board with more macros")
    replicas = _replicas(options, n_tiles, max_macros)
    for lay in layers:
        lay["replicas"] = replicas
    spiking = [n for n, v in g.nodes.items() if isinstance(v, SPIKING)]
    used = sum(t["utilisation"] for lay in layers for t in lay["tiles"])
    meta.update({
        "dt": dt, "mode": "programmed", "engine": "graph", "slices": slices, "residual_window": window, "effects": fx.to_dict(), "seed": int(options.seed),
        "layers": layers, "macros": n_tiles * replicas, "replicas": replicas, "cell_utilisation": used / max(1, n_tiles),
        "cells_used": int(replicas * sum(2 * (t["rows"][1] - t["rows"][0]) * (t["cols"][1] - t["cols"][0])
                                         * t["copies"][0] * t["copies"][1] for lay in layers for t in lay["tiles"])),
        "g_off": g_off, "spiking_nodes": spiking, "latency_steps": 0,
        "layer_map": {**{lay["node"]: f"xbar{i:03d} ({len(lay['tiles'])} macros)" for i, lay in enumerate(layers)},
                      **{n: "digital periphery" for n, v in g.nodes.items()
                         if isinstance(v, PERIPHERY) and not isinstance(v, (nir.Input, nir.Output))}},
    })
    for lay in layers:
        if lay["graded"] and fx.dac_bits is not None:
            semantics.record(meta, lay["node"], "quantisation",
                             f"graded input ({lay['encoding']}) through a {fx.dac_bits}-bit DAC", 0.0)
    art = Artifact(board=board.name, backend=backend, reference=g, program=program, arrays=arrays, meta=meta,
                   options=options)
    calib = _calibration_inputs(options, g)
    if calib is not None:
        calibrate(art, calib, gains=bool(options.extra.get("rram.calibrate", True)),
                  offsets=str(options.extra.get("rram.calibrate_offset", "progressive")),
                  place=lambda li, lay, a: _place_copies(lay["tiles"], arrays, li, options, fx, rows_max, pairs_max, a))
        _usage(meta, rows_max, pairs_max)
    _record_noise(art, fx, calib)
    return art


IR_FIRST_ORDER_LIMIT = 0.1


def _check_ir_drop(meta: dict[str, Any], name: str, arrays: dict[str, np.ndarray], li: int,
                   tiles: list[dict[str, Any]], ir: float) -> None:
    """The IR-drop model is first order in r_wire: say so when a tile's worst attenuation leaves that regime."""
    worst = max(_word_line_drop(arrays, li, k, t["copies"], ir) for k, t in enumerate(tiles))
    if worst > IR_FIRST_ORDER_LIMIT:
        semantics.record(meta, name, "other",
                         f"word-line IR drop reaches {min(worst, 1.0):.0%} of the read voltage in the worst cell; the "
                         f"first-order IR model is only trusted below {IR_FIRST_ORDER_LIMIT:.0%} (lower rram.r_wire, or "
                         "treat this layer's IR effect as an estimate); verify gates the output effect", worst)


def _word_line_drop(arrays: dict[str, np.ndarray], li: int, k: int, copies: tuple[int, int], ir: float) -> float:
    """Worst first-order word-line drop of tile k as laid out in its macro (copies included)."""
    gp = np.tile(np.asarray(arrays[f"xbar{li:03d}.t{k:03d}.g_pos"], np.float64), (1, copies[1]))
    gn = np.tile(np.asarray(arrays[f"xbar{li:03d}.t{k:03d}.g_neg"], np.float64), (1, copies[1]))
    phys = np.empty((gp.shape[0], 2 * gp.shape[1]))
    phys[:, 0::2], phys[:, 1::2] = gp, gn                      # G+ on bit line 2j, G- on 2j+1, as read
    beyond = np.cumsum(phys[:, ::-1], axis=1)[:, ::-1]
    return float(ir * np.cumsum(beyond, axis=1).max(initial=0.0))


def _usage(meta: dict[str, Any], rows_max: int, pairs_max: int) -> None:
    """Cells and utilisation after the copies were placed (again, once calibration data measured the activity)."""
    tiles = [t for lay in meta["layers"] for t in lay["tiles"]]
    meta["cell_utilisation"] = sum(t["utilisation"] for t in tiles) / max(1, len(tiles))
    meta["cells_used"] = int(meta["replicas"] * sum(2 * (t["rows"][1] - t["rows"][0]) * (t["cols"][1] - t["cols"][0])
                                                    * t["copies"][0] * t["copies"][1] for t in tiles))


def _bit_line_drop(arrays: dict[str, np.ndarray], li: int, k: int, copies: tuple[int, int], ir: float) -> float:
    """Worst first-order bit-line drop of tile k with every row active, its row copies stacked below it."""
    gp = np.tile(np.asarray(arrays[f"xbar{li:03d}.t{k:03d}.g_pos"], np.float64), (copies[0], 1))
    gn = np.tile(np.asarray(arrays[f"xbar{li:03d}.t{k:03d}.g_neg"], np.float64), (copies[0], 1))
    above = np.cumsum(np.maximum(gp, gn), axis=0)
    return float(ir * np.cumsum(above[::-1], axis=0)[::-1].max(initial=0.0))


def _place_copies(tiles: list[dict[str, Any]], arrays: dict[str, np.ndarray], li: int, options: CompileOptions,
                  fx: X.Effects, rows_max: int, pairs_max: int, activity: float) -> None:
    """Multi-device synapses inside a macro (Boybat et al., Nat. Commun. 9, 2514 (2018)): a tile that uses only
    part of its macro's rows and bit lines holds copies of its weights on the idle ones, at no extra macro.

    Row copies (idle word lines of the same columns, driven by the same input) sum in each column's current:
    one ADC conversion, whose full scale grows with them, so the conversion error per weight stays the same.
    They lengthen the bit lines' active part, so auto keeps them while the worst bit-line IR drop at the row
    activity (measured on the calibration data, else the board's parameters.row_activity) stays in the
    first-order regime (or no worse than without them).
    Column copies (idle bit lines) are converted apart and averaged in the periphery, costing conversions, and
    lengthen every word line, so auto adds them only while the worst word-line IR drop stays in the first-order
    regime (or no worse than without them). Random write error and relaxation average down by sqrt(copies).
    Copies trade random error for a larger systematic IR drop, which per-column gain calibration removes: on
    auto, without calibration data, a tile keeps one copy when IR drop is on.
    `rram.copies`: 0 = auto (at most COPIES_AUTO_MAX), 1 = one copy, n = at most n per tile."""
    asked = int(options.extra.get("rram.copies", 0) or 0)
    cap = COPIES_AUTO_MAX if asked == 0 else asked
    if asked == 0 and fx.ir_drop and options.extra.get("calibration") is None:
        cap = 1         # copies trade random error for IR drop, which only gain calibration takes out again
    for k, t in enumerate(tiles):
        rows, pairs = t["rows"][1] - t["rows"][0], t["cols"][1] - t["cols"][0]
        if t["slice"] == 1:                         # a less significant pair sits beside its first pair's copies
            t["copies"], t["utilisation"] = list(tiles[k - 1]["copies"]), tiles[k - 1]["utilisation"]
            continue
        kr = max(1, min(rows_max // rows, cap))
        if fx.ir_drop and kr > 1:
            limit = max(IR_FIRST_ORDER_LIMIT, activity * _bit_line_drop(arrays, li, k, (1, 1), fx.ir_drop))
            while kr > 1 and activity * _bit_line_drop(arrays, li, k, (kr, 1), fx.ir_drop) > limit:
                kr -= 1
        kc = max(1, min(pairs_max // pairs, cap // kr))
        if fx.ir_drop and kc > 1:
            limit = max(IR_FIRST_ORDER_LIMIT, _word_line_drop(arrays, li, k, (kr, 1), fx.ir_drop))
            while kc > 1 and _word_line_drop(arrays, li, k, (kr, kc), fx.ir_drop) > limit:
                kc -= 1
        t["copies"] = [kr, kc]
        t["utilisation"] = rows * kr * pairs * kc / (rows_max * pairs_max)


def _replicas(options: CompileOptions, n_tiles: int, max_macros: int) -> int:
    """Copies of every matrix whose reads are averaged (random programming / read error / sqrt(copies)).

    auto (0): as many as the free macros allow, at most REPLICAS_AUTO_MAX; an explicit count must fit."""
    asked = int(options.extra.get("rram.replicas", 0) or 0)
    if asked == 0:
        return max(1, min(REPLICAS_AUTO_MAX, max_macros // max(1, n_tiles)))
    if asked * n_tiles > max_macros:
        raise FitError(f"rram.replicas={asked} needs {asked * n_tiles} macros ({n_tiles} per copy); "
                       f"the board has {max_macros}: the binding limit is limits.max_macros", field="rram.replicas")
    return asked


def _slices(options: CompileOptions, levels: int | None, g: nir.NIRGraph, order: list[str], rows_max: int,
            pairs_max: int, max_macros: int) -> int:
    """Differential pairs per weight: 2 (bit-sliced, as ISAAC and IBM's MSP/LSP pairs) when asked, or on auto
    when the levels are finite and two copies of every tile fit the board's macros; else 1."""
    asked = int(options.extra.get("rram.slices", 0) or 0)
    if levels is None:
        return 1
    if asked:
        return asked
    n1 = 0
    for name in order:
        W, _, _ = matrix(g.nodes[name])
        n1 += -(-W.shape[1] // rows_max) * -(-W.shape[0] // pairs_max)
    return 2 if 2 * n1 <= max_macros else 1


def _with_weight(node: nir.NIRNode, w: np.ndarray) -> nir.NIRNode:
    new = copy.deepcopy(node)
    new.weight = w
    return new


def calibrate(art: Artifact, inputs: dict[str, np.ndarray], gains: bool = True, offsets: str = "progressive",
              place: Any = None) -> None:
    """Size DAC and ADC ranges from calibration data, then (chips do this) per-column gain calibration.

    1. ideal crossbar run: each layer's input range (DAC full scale of graded inputs) and each tile's
       largest |partial sum| (ADC full scale, so calibration data never clips);
    2. this chip instance (seed) with every effect on: per output column the gain that maps the chip's
       digitised sums onto the ideal sums of the same inputs (in the mean), applied in the periphery.
    """
    from spikeforge.emulators.rram_graph import GraphEmulator

    layers = art.meta["layers"]
    emu = GraphEmulator(effects=X.Effects())
    sim = emu.simulator(art, X.Effects(), int(art.meta["seed"]), record=True)
    recs = _attach(art, sim)
    stats: list[dict[str, Any]] = []
    for lay in layers:
        k = sim.kernels[lay["node"]]
        orig = k.step

        def step(x: np.ndarray, state: Any, k: Any = k, orig: Any = orig) -> Any:
            P, _ = k.patches(x)
            k.stat["max"] = max(k.stat["max"], float(P.max(initial=0.0)))
            k.stat["min"] = min(k.stat["min"], float(P.min(initial=0.0)))
            k.stat["int"] = k.stat["int"] and bool(np.all(P == np.rint(P)))
            k.stat["act"] = max(k.stat["act"], float(np.count_nonzero(P)) / max(P.size, 1))
            return orig(x, state)
        k.stat = {"max": 0.0, "min": 0.0, "int": True, "act": 0.0}
        k.step = step
        stats.append(k.stat)
    sim.run(inputs)
    for li, (lay, rec, st) in enumerate(zip(layers, recs, stats)):
        if place is not None:                   # copies again, for the row activity the calibration data has
            place(li, lay, st["act"])
            lay["row_activity"] = st["act"]
        if lay["encoding"].startswith("input") and not st["int"]:
            lay.update(graded=True, dac_lsb=0.0, encoding="input (graded, from calibration data)")
        if lay["graded"]:
            lay["dac_top"] = max(abs(st["max"]), abs(st["min"]), 1e-12)
            lay["dac_signed"] = st["min"] < 0
        for t, peak in zip(lay["tiles"], rec["peak"]):
            if peak > 0:
                t["adc_fs"], t["adc_fs_from"] = peak, "calibration max"
    fx = X.Effects.parse(art.meta["effects"])
    art.meta["calibration_samples"] = int(next(iter(inputs.values())).shape[1])
    if not gains or fx.ideal_read:
        return
    mean_ref = [rec["sy"] / np.maximum(rec["n"], 1.0) for rec in recs]     # the float model's column means
    emu = GraphEmulator()
    sim = emu.simulator(art, fx, int(art.meta["seed"]), record=True)
    recs = _attach(art, sim)
    sim.run(inputs)
    for i, rec in enumerate(recs):
        # gain = <ideal, ideal> / <chip, ideal>: for chip = a ideal + independent noise this is 1/a, unbiased by
        # the noise (a least-squares fit of ideal on chip would shrink every column towards 0)
        ok = rec["yr"] > 1e-12 * np.maximum(rec["rr"], 1e-300)
        g = np.where(ok, rec["rr"] / np.where(ok, rec["yr"], 1.0), 1.0)
        g = np.clip(g, 0.5, 2.0)
        art.arrays[f"xbar{i:03d}.gain"] = g.astype(np.float64)
        if offsets == "local":
            n = np.maximum(rec["n"], 1.0)
            art.arrays[f"xbar{i:03d}.offset"] = ((rec["sr"] - g * rec["sy"]) / n).astype(np.float64)
    art.meta["calibrated_seed"] = int(art.meta["seed"])
    if offsets == "progressive":
        _progressive_offsets(art, inputs, emu, mean_ref)


def _progressive_offsets(art: Artifact, inputs: dict[str, np.ndarray], emu: Any, mean_ref: list[np.ndarray]) -> None:
    """Per-column offsets, layer by layer on the chip's own activity (Wan et al. 2022 calibrate progressively,
    layer after layer, with the chip's measured outputs): a chip's fixed weight errors dW give each column a
    mean error mean(x) . dW, which integrating neurons accumulate step after step (a zero-mean error per read
    averages out), and noise shifts the firing rates that feed the next layer. With every earlier layer
    corrected, each column's mean on the calibration data is re-centred on the float model's mean, as IBM's
    adaptive batch-norm statistics re-estimate each channel's mean on the chip (Joshi et al., Nat. Commun. 11,
    2473 (2020)). One chip run per weight layer on the calibration data."""
    fx = X.Effects.parse(art.meta["effects"])
    layers = art.meta["layers"]
    for i, lay in enumerate(layers):
        art.arrays[f"xbar{i:03d}.offset"] = np.zeros(lay["out"])
    for i, lay in enumerate(layers):
        sim = emu.simulator(art, fx, int(art.meta["seed"]))
        k = sim.kernels[lay["node"]]
        k.tap = {"s": np.zeros(lay["out"]), "n": 0}
        sim.run(inputs)
        art.arrays[f"xbar{i:03d}.offset"] = mean_ref[i] - k.tap["s"] / max(k.tap["n"], 1)


def _attach(art: Artifact, sim: Any) -> list[dict[str, Any]]:
    recs = []
    for i, lay in enumerate(art.meta["layers"]):
        k = sim.kernels[lay["node"]]
        w = [np.asarray(art.arrays[f"xbar{i:03d}.t{j:03d}.w"], np.float64) for j in range(len(lay["tiles"]))]
        k.record = {"w": w, "peak": [0.0] * len(w), **{key: np.zeros(lay["out"]) for key in ("rr", "yr", "sr", "sy", "n")}}
        recs.append(k.record)
    return recs


def _record_noise(art: Artifact, fx: X.Effects, calib: dict[str, np.ndarray] | None) -> None:
    """Analog effects change every read: recorded per layer, with the output effect measured on the
    calibration data when there is some (1 - prediction agreement with the float model); verify gates it."""
    on = [f"{k}={v}" for k, v in fx.to_dict().items() if v and k not in ("levels", "drift_nu")]
    if not on:
        return
    measured, magnitude = "no calibration data to measure the output effect on", 0.0
    if calib is not None:
        from spikeforge.emulators.rram_graph import GraphEmulator
        from spikeforge.refsim import simulate
        from spikeforge.verify import scores

        s_chip = scores(GraphEmulator().run(art, calib).outputs)
        s_ref = scores(simulate(art.reference, calib, art.meta["dt"]).outputs)
        agree = float((s_chip.argmax(1) == s_ref.argmax(1)).mean())
        magnitude = 1.0 - agree
        measured = (f"measured on {s_ref.shape[0]} calibration samples: prediction agreement with the float model "
                    f"{agree:.1%}, mean |output difference| {np.abs(s_chip - s_ref).mean():.3g} per output")
    for lay in art.meta["layers"]:
        semantics.record(art.meta, lay["node"], "other",
                         "analog crossbar non-idealities (" + ", ".join(on) + ") perturb this layer's sums; "
                         + measured + "; verify gates the output effect", magnitude)
