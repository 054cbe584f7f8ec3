"""The RRAM backend's entry point, and the reservoir (LSM) mode: an LSM onto RRAM macros plus its readout.

`RRAMBackend.lower` picks the mode (`rram.mode`: auto / programmed / reservoir): any trained graph goes
to programmed.py (write-verify its weights); a single-reservoir LSM stays here.

Crossbar rows (word lines) are presynaptic: the input channels and the reservoir's own spikes of the
previous step; a differential column pair (G+, G-) is one reservoir neuron's input current. Input
rows and recurrent rows go into separate row blocks so each tile has one weight scale (digital gain
`w_per_g` after its ADC); row blocks hold up to 512 rows, column blocks up to 256 neurons (512
bit lines). Partial sums of the row blocks are added digitally. Two weight modes:

* programmed: targets g = g_off + |w| / w_per_g on the side of the pair with w's sign, rounded to
  the `levels` of write-verify; the emulator adds programming noise etc. per chip instance.
* zero_shot: nothing is programmed. Each row's cells get a forming ramp whose voltage forms the
  wanted fraction of cells (the graph's density, weighted by that row's weight mass so the E/I
  balance survives); the formed conductances *are* the weights. The digital gain restores the
  graph's spectral radius (recurrent) and total input weight (input). The reference graph of the
  artifact then holds these formed weights: it is "the same reservoir in float software".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from spikeforge.artifact import Artifact
from spikeforge.backends.reference.backend import with_dt
from spikeforge.boards import Board
from spikeforge.errors import GraphError, InputError, UnsupportedError
from spikeforge.interfaces import Backend, CompileOptions, CostModel, Emulator

from . import device as D
from . import readout as R
from .options import OPTIONS
from .reservoir import spectral_radius
from .xbar import adc_full_scale

MODES = ("programmed", "zero_shot")


@dataclass
class Structure:
    """Where the LSM's parts sit in the flat graph."""

    input: str
    w_in: str
    pop: str
    w_rec: str | None
    readout: str | None
    output: str
    n_in: int
    n: int
    delay_in: int = 0          # steps of spike FIFO before the input word lines
    delay_rec: int = 0         # extra steps (beyond the one-step recurrence) before the recurrent word lines


def _weight(node: nir.NIRNode) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(node.weight, np.float32)
    b = np.asarray(getattr(node, "bias", np.zeros(w.shape[0])), np.float32)
    if b.size == 1 and w.shape[0] > 1:
        b = np.full(w.shape[0], float(b.ravel()[0]), np.float32)
    return w, b.reshape(-1)


def _uniform_delay(node: nir.Delay, name: str, dt: float) -> int:
    d = np.rint(np.asarray(node.delay, np.float64) / dt).astype(np.int64).ravel()
    if d.size == 0 or np.any(d != d[0]) or d[0] < 0:
        raise UnsupportedError("only a uniform delay (one spike FIFO depth for all rows) maps onto the word lines",
                               node=name, field="delay")
    return int(d[0])


def _chain(g: nir.NIRGraph, last: str, pop: str, dt: float) -> tuple[str, str, int]:
    """Walk back from a predecessor of the population: [Delay]* Affine/Linear [Delay]* from Input or pop.

    Returns (source, projection node, total delay in steps)."""
    proj, delay, post_delay, cur, seen = None, 0, 0, last, set()
    while True:
        if cur in seen:
            raise UnsupportedError("loop inside a projection", node=cur)
        seen.add(cur)
        node = g.nodes[cur]
        if isinstance(node, (nir.Affine, nir.Linear)):
            if proj is not None:
                raise UnsupportedError("two weight layers in one projection: the crossbar applies one", node=cur)
            proj = cur
        elif isinstance(node, nir.Delay):
            d = _uniform_delay(node, cur, dt)
            delay += d
            if proj is None:
                post_delay += d
        else:
            raise UnsupportedError(f"reservoir input must come through Affine/Linear (and Delay), found "
                                   f"{type(node).__name__}", node=cur)
        src = [a for a, b in g.edges if b == cur]
        if len(src) != 1:
            raise UnsupportedError(f"projection node has {len(src)} inputs; expected one", node=cur)
        if src[0] == pop or isinstance(g.nodes[src[0]], nir.Input):
            if proj is None:
                raise UnsupportedError("projection without an Affine/Linear weight", node=cur)
            if post_delay and np.any(_weight(g.nodes[proj])[1] != 0):
                raise UnsupportedError("a bias followed by a Delay (the bias would start late); the chip adds "
                                       "biases digitally every step", node=proj, field="bias",
                                       hint="move the Delay before the Affine or fold the bias into v_leak")
            return src[0], proj, delay
        cur = src[0]


def analyse(g: nir.NIRGraph, dt: float) -> Structure:
    """Find input -> [Delay] Affine [Delay] -> LIF (+ recurrent projection) -> [Affine readout] -> Output."""
    pops = [n for n, v in g.nodes.items() if isinstance(v, (nir.LIF, nir.CubaLIF))]
    if len(pops) != 1:
        raise UnsupportedError(
            f"the RRAM LSM backend maps one reservoir population; graph has {len(pops)} LIF/CubaLIF nodes {pops}",
            hint="compile a liquid state machine (backends.rram.reservoir.generate) or a single recurrent layer")
    pop = pops[0]
    w_in = w_rec = inp = None
    d_in = d_rec = 0
    chain_nodes: set[str] = set()
    for p in sorted({s for s, d in g.edges if d == pop}):
        src, proj, delay = _chain(g, p, pop, dt)
        cur = p
        while cur != src:                                   # remember the chain's nodes
            chain_nodes.add(cur)
            cur = [a for a, b in g.edges if b == cur][0]
        if src == pop:
            if w_rec is not None:
                raise UnsupportedError("more than one recurrent projection", node=proj)
            w_rec, d_rec = proj, delay
        else:
            if w_in is not None:
                raise UnsupportedError("more than one input projection into the reservoir", node=proj)
            w_in, d_in, inp = proj, delay, src
    if w_in is None or inp is None:
        raise UnsupportedError("no Input -> Affine projection into the reservoir", node=pop)
    readout = None
    output = None
    for s in sorted({d for a, d in g.edges if a == pop} - chain_nodes):
        node = g.nodes[s]
        if isinstance(node, nir.Output):
            output = s
        elif isinstance(node, (nir.Affine, nir.Linear)):
            nxt = [d for a, d in g.edges if a == s]
            if len(nxt) != 1 or not isinstance(g.nodes[nxt[0]], nir.Output):
                raise UnsupportedError("the readout Affine must feed an Output node", node=s)
            readout, output = s, nxt[0]
        else:
            raise UnsupportedError(f"reservoir feeds a {type(node).__name__}; the digital readout must be an Affine",
                                   node=s)
    if output is None:
        raise UnsupportedError("the reservoir reaches no Output node", node=pop)
    known = {inp, pop, readout, output} | chain_nodes
    extra = sorted(set(g.nodes) - known)
    if extra:
        raise UnsupportedError(f"nodes outside the LSM pattern are not supported: {extra}", node=extra[0])
    w, _ = _weight(g.nodes[w_in])
    n = w.shape[0]
    if w_rec is not None and _weight(g.nodes[w_rec])[0].shape != (n, n):
        raise GraphError(f"recurrent weight must be ({n}, {n})", node=w_rec, field="weight")
    return Structure(inp, w_in, pop, w_rec, readout, output, int(w.shape[1]), int(n), d_in, d_rec)


def _opt(options: CompileOptions, key: str, default: Any) -> Any:
    return options.extra.get(f"rram.{key}", default)


MODE_CHOICES = ("auto", "programmed", "reservoir", "zero_shot")


def choose_mode(g: nir.NIRGraph, dt: float, options: CompileOptions) -> tuple[str, str]:
    """'programmed' or 'reservoir', and why: asked for, or (auto) whether the graph is an LSM."""
    req = str(_opt(options, "mode", "auto")).replace("-", "_")
    if req not in MODE_CHOICES:
        raise InputError(f"rram.mode={req!r}; choose one of {MODE_CHOICES}", field="rram.mode")
    if req == "programmed":
        return "programmed", "asked for"
    if req in ("reservoir", "zero_shot"):
        return "reservoir", "asked for"
    try:
        analyse(g, dt)
    except (UnsupportedError, GraphError) as exc:
        return "programmed", f"auto: not a single-reservoir LSM ({exc.reason})"
    return "reservoir", "auto: one recurrent LIF/CubaLIF population with a linear readout, an LSM"


def _zero_shot(w: np.ndarray, board: Board, rng: np.random.Generator, sparsity: float | None,
               recurrent: bool) -> dict[str, np.ndarray | float]:
    """Form cells so their random conductances stand in for the (post, pre) weight matrix `w`."""
    post, pre = w.shape
    nz = w != 0
    p = float(nz.mean()) if sparsity is None else float(sparsity)
    mass = np.abs(w).sum(axis=0)                                     # per presynaptic row
    frac = np.clip(p * mass / mass.mean(), 0.0, 1.0) if mass.mean() > 0 else np.zeros(pre)
    pos = np.where(nz.sum(0) > 0, (w > 0).sum(0) / np.maximum(nz.sum(0), 1), 0.5)
    sign = np.where(rng.random((post, pre)) < pos[None, :], 1.0, -1.0)
    v_form = np.where(frac > 0, D.forming_voltage(frac, board), 0.0)
    formed, g_cell = D.form((post, pre), v_form[None, :], board, rng)
    g_cell = np.where(frac[None, :] > 0, g_cell, board.value("physics.g_pristine"))
    g_pr = float(board.value("physics.g_pristine"))
    gmax = float(board.value("physics.g_max"))
    g_pos = np.where(sign > 0, g_cell, g_pr) / gmax
    g_neg = np.where(sign > 0, g_pr, g_cell) / gmax
    d = g_pos - g_neg
    if recurrent:
        rho_d = spectral_radius(d)
        gain = spectral_radius(w) / rho_d if rho_d > 0 else 0.0
    else:
        den = np.abs(d).sum()
        gain = float(np.abs(w).sum() / den) if den > 0 else 0.0
    return {"w": (gain * d).astype(np.float32), "g_pos": g_pos, "g_neg": g_neg, "gain": float(gain),
            "v_form": v_form, "formed": float(formed.mean())}


def build_tiles(blocks: list[dict[str, Any]], n: int, board: Board, ni: D.NonIdeal, mode: str,
                activity: dict[str, float]) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Cut each row block (input or recurrent) into 512-row x 256-pair tiles."""
    rows_max = int(board.value("limits.rows"))
    pairs_max = int(board.value("limits.cols")) // 2
    k_sigma = float(board.value("parameters.adc_clip_sigma"))
    gmax = float(board.value("physics.g_max"))
    g_off = (board.value("physics.g_pristine") if mode == "zero_shot" else board.value("physics.g_hrs")) / gmax
    arrays: dict[str, np.ndarray] = {}
    info: list[dict[str, Any]] = []
    index = []
    for blk in blocks:
        w = blk["w"]                                  # (post n, pre rows)
        for r0 in range(0, w.shape[1], rows_max):
            r1 = min(r0 + rows_max, w.shape[1])
            for c0 in range(0, n, pairs_max):
                c1 = min(c0 + pairs_max, n)
                wt = w[c0:c1, r0:r1].T.astype(np.float64)       # (rows, pairs): crossbar layout
                k = len(index)
                if mode == "zero_shot":
                    gp = blk["g_pos"][c0:c1, r0:r1].T
                    gn = blk["g_neg"][c0:c1, r0:r1].T
                    ws = float(blk["gain"]) or 1.0
                    target = wt
                    arrays[f"tile{k:03d}.v_form"] = blk["v_form"][r0:r1].astype(np.float32)
                else:
                    peak = float(np.abs(wt).max()) if wt.size else 0.0
                    ws = peak / (1.0 - g_off) if peak > 0 else 1.0
                    gp = g_off + np.maximum(wt, 0) / ws
                    gn = g_off + np.maximum(-wt, 0) / ws
                    if ni.levels is not None:
                        gp = D.quantise(gp, ni.levels, g_off)
                        gn = D.quantise(gn, ni.levels, g_off)
                        target = ws * (gp - gn)
                    else:
                        target = wt
                d = gp - gn
                fs = adc_full_scale(d, activity[blk["kind"]], k_sigma)
                arrays[f"tile{k:03d}.w"] = target.astype(np.float32)
                arrays[f"tile{k:03d}.g_pos"] = gp.astype(np.float32)
                arrays[f"tile{k:03d}.g_neg"] = gn.astype(np.float32)
                row0 = blk["offset"] + r0
                index.append([row0, row0 + (r1 - r0), c0, c1])
                used = (r1 - r0) * 2 * (c1 - c0)
                info.append({
                    "tile": k, "kind": blk["kind"], "rows": [row0, row0 + r1 - r0], "neurons": [c0, c1],
                    "w_per_g": ws, "adc_full_scale": fs, "cells_used": used,
                    "utilisation": used / (rows_max * 2 * pairs_max),
                    "mean_conductance_uS": float(np.concatenate([gp.ravel(), gn.ravel()]).mean() * gmax * 1e6),
                })
    arrays["tiles.index"] = np.asarray(index, np.int64).reshape(-1, 4)
    arrays["tiles.w_per_g"] = np.asarray([t["w_per_g"] for t in info], np.float64)
    arrays["tiles.adc_full_scale"] = np.asarray([t["adc_full_scale"] for t in info], np.float64)
    return arrays, info


def _replace_weight(g: nir.NIRGraph, name: str, w: np.ndarray, b: np.ndarray | None = None) -> None:
    node = g.nodes[name]
    bias = np.asarray(b if b is not None else _weight(node)[1], np.float32)
    g.nodes[name] = nir.Affine(weight=np.asarray(w, np.float32), bias=bias)


class RRAMBackend(Backend):
    """RRAM in-memory-computing macros: any trained graph (programmed mode) or an LSM (reservoir mode)."""

    options = OPTIONS
    name = "rram"
    options = OPTIONS

    def lower(self, graph: nir.NIRGraph, board: Board, options: CompileOptions) -> Artifact:
        g, dt = with_dt(graph, options)
        g = copy.deepcopy(g)
        chosen, why = choose_mode(g, dt, options)
        note = f"rram.mode={chosen} ({why})"
        if chosen == "programmed":
            from .emit import emit_programmed
            from .programmed import lower_programmed

            art = lower_programmed(g, board, options, dt, self.name)
            art.meta["warnings"] = [note]
            art.files.update(emit_programmed(art, board))
            return art
        st = analyse(g, dt)
        mode = "zero_shot" if str(_opt(options, "mode", "auto")) == "zero_shot" else \
            str(_opt(options, "reservoir_weights", "programmed"))
        if mode not in MODES:
            raise InputError(f"rram.reservoir_weights={mode!r}; choose one of {MODES}", field="rram.reservoir_weights")
        ni = D.NonIdeal.parse(_opt(options, "nonideal", "off"), board)
        rng = np.random.default_rng(options.seed)
        w_in, b_in = _weight(g.nodes[st.w_in])
        if st.w_rec is not None:
            w_rec, b_rec = _weight(g.nodes[st.w_rec])
        else:
            w_rec, b_rec = np.zeros((st.n, 0), np.float32), np.zeros(st.n, np.float32)
        blocks: list[dict[str, Any]] = [{"kind": "input", "w": w_in, "offset": 0}]
        if w_rec.shape[1]:
            blocks.append({"kind": "recurrent", "w": w_rec, "offset": st.n_in})
        zero_info: dict[str, Any] = {}
        if mode == "zero_shot":
            sp = _opt(options, "sparsity", None)
            for blk in blocks:
                z = _zero_shot(blk["w"], board, rng, None if sp is None else float(sp),
                               recurrent=blk["kind"] == "recurrent")
                blk.update(z)
                zero_info[blk["kind"]] = {"gain": z["gain"], "formed_fraction": z["formed"]}
            _replace_weight(g, st.w_in, blocks[0]["w"], b_in)
            if st.w_rec is not None:
                _replace_weight(g, st.w_rec, blocks[1]["w"], b_rec)
        activity = {"input": float(_opt(options, "input_activity", board.value("parameters.row_activity"))),
                    "recurrent": float(board.value("parameters.row_activity"))}
        arrays, tiles = build_tiles(blocks, st.n, board, ni, mode, activity)
        arrays["bias"] = (b_in.astype(np.float64) + b_rec.astype(np.float64)).astype(np.float32)
        program = copy.deepcopy(g)
        full = np.zeros((st.n_in + w_rec.shape[1], st.n), np.float64)
        for k, (r0, r1, c0, c1) in enumerate(arrays["tiles.index"]):
            full[r0:r1, c0:c1] = arrays[f"tile{k:03d}.w"]
        _replace_weight(program, st.w_in, full[: st.n_in].T, b_in)
        if st.w_rec is not None:
            _replace_weight(program, st.w_rec, full[st.n_in:].T, b_rec)
        rows_max, cols_max = int(board.value("limits.rows")), int(board.value("limits.cols"))
        if len(tiles) > int(board.value("limits.max_macros")):
            from spikeforge.errors import FitError
            raise FitError(f"reservoir needs {len(tiles)} macros; board '{board.name}' has "
                           f"{board.value('limits.max_macros')}", hint="use a smaller reservoir")
        meta: dict[str, Any] = {
            "dt": dt, "mode": mode, "nonideal": ni.to_dict(), "seed": int(options.seed),
            "structure": {k: v for k, v in st.__dict__.items()},
            "tiles": tiles, "macros": len(tiles),
            "cells_used": int(sum(t["cells_used"] for t in tiles)),
            "cell_utilisation": float(sum(t["cells_used"] for t in tiles) / max(1, len(tiles) * rows_max * cols_max)),
            "g_off": float((board.value("physics.g_pristine") if mode == "zero_shot" else board.value("physics.g_hrs"))
                           / board.value("physics.g_max")),
            "zero_shot": zero_info, "readout": None, "engine": "reservoir", "warnings": [note],
            "latency_steps": 0, "layer_map": {st.pop: "reservoir neurons (digital LIF)"},
        }
        art = Artifact(board=board.name, backend=self.name, reference=g, program=program, arrays=arrays,
                       meta=meta, options=options)
        train = _opt(options, "train", None)
        if train:
            from pathlib import Path

            from spikeforge.npzio import load_npz
            if not Path(str(train)).is_file():
                raise InputError("training data file not found", file=str(train), field="rram.train")
            data = load_npz(train)
            if "input" not in data or "labels" not in data:
                raise InputError("training data needs arrays 'input' (T, B, n_in) and 'labels' (B,)", file=str(train))
            fit_readout(art, data["input"], data["labels"], method=str(_opt(options, "readout", "ridge")),
                        states=str(_opt(options, "readout_states", "chip")))
        from .emit import emit
        art.files.update(emit(art, board))
        return art

    def emulator(self) -> Emulator:
        from spikeforge.emulators.rram import RRAMEmulator
        return RRAMEmulator()

    def cost_model(self) -> CostModel:
        from .cost import RRAMCostModel
        return RRAMCostModel()

    def verify_extra(self, artifact: Artifact, inputs: dict[str, np.ndarray]) -> list[tuple[str, bool, str]]:
        """Ideal-crossbar check: with every non-ideality off the emulator must match the reference exactly."""
        from spikeforge.emulators.rram import RRAMEmulator
        from spikeforge.refsim import ReferenceSimulator, config_for_graph

        if artifact.meta.get("engine") == "graph":
            return _verify_programmed(artifact, inputs)
        st = artifact.meta["structure"]
        ideal = RRAMEmulator(nonideal=D.NonIdeal.off()).run(artifact, inputs, probes=True)
        ref = ReferenceSimulator(artifact.program, config_for_graph(artifact.program, dtype="float64")).run(
            inputs, probes=True)
        a = ideal.states[f"{st['pop']}.spikes"]
        b = ref.activity[st["pop"]]
        same = bool(np.array_equal(a, b))
        return [("rram ideal crossbar == reference spikes (program weights, float64)", same,
                 f"{int((a != b).sum())} of {a.size} spike bits differ")]


def _verify_programmed(artifact: Artifact, inputs: dict[str, np.ndarray]) -> list[tuple[str, bool, str]]:
    """With every analog effect off the crossbar must equal the float reference of the programmed weights."""
    from spikeforge.emulators.rram_graph import GraphEmulator
    from spikeforge.refsim import ReferenceSimulator, config_for_graph

    ideal = GraphEmulator(effects="off").run(artifact, inputs)
    prog = artifact.program
    ref = ReferenceSimulator(prog, config_for_graph(prog, artifact.meta.get("dt"), dtype="float64")).run(inputs)
    bad = sum(int((np.asarray(ideal.outputs[k]) != np.asarray(v)).sum()) for k, v in ref.outputs.items())
    total = sum(int(np.asarray(v).size) for v in ref.outputs.values())
    return [("rram ideal crossbar == reference of the programmed (level-quantised) weights, float64", bad == 0,
             f"{bad} of {total} output values differ")]


def fit_readout(art: Artifact, inputs: np.ndarray, labels: np.ndarray, method: str = "ridge",
                emulator: Any = None, states: str = "chip", **kw: Any) -> R.Readout:
    """Train the digital readout on emulated reservoir states; store it in the artifact (in place).

    states="chip" (the paper's in-situ training) uses the emulated chip's states only; "both" adds the
    float reference's states of the same inputs, so one readout serves the chip and the float model
    (what `verify` compares), at some cost in chip accuracy when the non-idealities are strong.
    """
    from spikeforge.emulators.rram import RRAMEmulator

    if states not in ("chip", "both"):
        raise InputError(f"readout states={states!r}; choose 'chip' or 'both'", field="rram.readout_states")
    st = art.meta["structure"]
    x = np.asarray(inputs)
    emu = emulator or RRAMEmulator()
    feats = R.rates(emu.run(art, {st["input"]: x}, probes=True).states[f"{st['pop']}.spikes"])
    chip_feats, chip_labels = feats, np.asarray(labels)
    if states == "both":
        from spikeforge.refsim import simulate

        ref = R.rates(simulate(art.reference, {st["input"]: x}, probes=True).activity[st["pop"]])
        feats = np.concatenate([feats, ref])
        labels = np.concatenate([chip_labels, chip_labels])
    if st["readout"] is None:
        _add_readout(art, int(np.max(labels)) + 1)
    classes = int(np.asarray(art.reference.nodes[st["readout"]].weight).shape[0])
    ro = R.train(feats, np.asarray(labels), method=method, classes=classes, **kw)
    w, b = ro.per_step(int(x.shape[0]))
    for g in (art.reference, art.program):
        if g is not None:
            g.nodes[st["readout"]] = nir.Affine(weight=w, bias=b)
    art.arrays["readout.w"] = w
    art.arrays["readout.b"] = b
    art.meta["readout"] = {"method": method, "timesteps": int(x.shape[0]), "train_samples": int(x.shape[1]),
                           "states": states, "train_accuracy": R.accuracy(ro, chip_feats, chip_labels)}
    from .emit import emit
    art.files.update(emit(art, D.load_board(art.board)))
    return ro


def _add_readout(art: Artifact, classes: int) -> None:
    """Reservoirs from frontends often end at the spikes: insert the digital readout Affine before the Output."""
    st = art.meta["structure"]
    pop, out = st["pop"], st["output"]
    name = "readout"
    while name in art.reference.nodes:
        name = "_" + name
    for g in (art.reference, art.program):
        if g is None:
            continue
        g.nodes[name] = nir.Affine(weight=np.zeros((classes, st["n"]), np.float32), bias=np.zeros(classes, np.float32))
        g.nodes[out] = nir.Output(output_type={"output": np.array([classes])})
        g.edges[:] = [e for e in g.edges if tuple(e) != (pop, out)] + [(pop, name), (name, out)]
    st["readout"] = name


__all__ = ["RRAMBackend", "analyse", "fit_readout"]
