"""Lower a float NIR graph to a Loihi program (Lava LIF populations + Dense/Sparse/DelayDense connections).

Pipeline:
1. Neuron nodes (LIF, CubaLIF, IF, LI, CubaLI, I) become populations; Input nodes become RingBuffers.
2. Every chain of linear nodes between two of them (Affine, Linear, Scale, Flatten, Conv1d/Conv2d,
   SumPool2d/AvgPool2d, Delay) is composed into one weight matrix + bias + delay by applying the reference
   simulator's own kernels to a unit basis, so the lowered matrix means exactly what the reference runs.
   Conv and pooling become Dense/Sparse matrices (see docs/loihi.md: Lava's fixed-point Conv ignores
   weight_exp, and the emulator then needs a single synapse model).
3. Timing: Loihi adds one step per synapse hop, the reference none. Each population gets an offset D
   (Loihi step holding NIR time 0); connections get synaptic delays D_dst - D_src - 1 (+ NIR delays,
   + 1 on recurrent edges) so that every layer sees exactly the reference's inputs, shifted by D.
4. Scales: per neuron, v_int = S v_float with a threshold shared by the population; S is the largest
   value for which u never wraps, v never clips on the way to threshold, weights fit 8 bits with
   weight_exp <= 7 and biases fit 13 bits << 7. Decays: dv = round(4096 (1 - keep)), du + 1 likewise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import nir
import numpy as np
import scipy.sparse as sp

from spikeforge import graph as G
from spikeforge.boards import Board
from spikeforge.emulators.loihi import Conn, Pop, Program
from spikeforge.errors import UnsupportedError
from spikeforge.refsim import SimConfig, config_for_graph
from spikeforge.semantics import WEIGHT_REL_RMS, record

from .effects import convention_effect, floor_crossings, input_kind
from .options import read as opt
from .structured import linear_map

NEURONS = (nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.CubaLI, nir.I)
SPIKING = (nir.LIF, nir.CubaLIF, nir.IF)
LINEAR = (nir.Affine, nir.Linear, nir.Scale, nir.Flatten, nir.Conv1d, nir.Conv2d, nir.SumPool2d,
          nir.AvgPool2d, nir.Delay)
MAX_UV = (1 << 23) - 1
#: a one-neuron population that spikes at every step (bias 1 > vth 0): carries constant input currents
#: into CubaLIF/CubaLI u as ordinary synapses, so they integrate exactly as the reference does
TONIC = "spikeforge.tonic"


@dataclass
class Path:
    """One chain of linear nodes from a source (Input or neuron) into a node's input."""

    src: str
    matrix: sp.csr_matrix       # (n_node_in, n_src), sparse: built from each node's structure
    bias: np.ndarray            # (n_node_in,)
    delay: int                  # NIR delay in steps
    recurrent: bool             # crosses a recurrent (back) edge
    conv: bool = False          # translation-invariant (Conv/Pool, no Affine): a shared-weight kernel
    nodes: tuple[str, ...] = ()  # the linear nodes along the path, source side first


@dataclass
class Lowered:
    program: Program
    io: dict[str, Any]
    layers: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    out_scales: dict[str, np.ndarray] = field(default_factory=dict)
    shapes: dict[str, Any] = field(default_factory=dict)       # population -> NIR node shape (locality)
    probe_scales: dict[str, np.ndarray] = field(default_factory=dict)   # 'pop/v_scale' -> fixed point per float
    spiking: dict[str, bool] = field(default_factory=dict)
    semantic: dict[str, Any] = field(default_factory=dict)       # {'semantic_warnings': [...]}
    out_offsets: dict[str, np.ndarray] = field(default_factory=dict)   # readout Output -> float bias added
    readouts: dict[str, str] = field(default_factory=dict)             # Output -> readout population


def _size(node: nir.NIRNode, port: str) -> int | None:
    shp = G.node_shape(node, port)
    return int(np.prod(shp)) if shp is not None else None


class _Paths:
    def __init__(self, g: nir.NIRGraph, cfg: SimConfig):
        self.g = g
        self.cfg = cfg
        self.sched = G.schedule(g)
        self.rec = set(self.sched.recurrent)
        self.memo: dict[str, list[Path]] = {}
        self.sizes: dict[str, int] = {}
        self.visiting: set[str] = set()

    def out_size(self, name: str) -> int:
        node = self.g.nodes[name]
        if name in self.sizes:
            return self.sizes[name]
        s = _size(node, "output") if isinstance(node, nir.Input) else _size(node, "input")
        if s is None:
            raise UnsupportedError("node has no known size", node=name)
        self.sizes[name] = s
        return s

    def into(self, name: str) -> list[Path]:
        """All paths into `name`'s input (name is a neuron, an Output or a linear node)."""
        if name in self.memo:
            return self.memo[name]
        if name in self.visiting:
            raise UnsupportedError("a loop of linear nodes without a neuron cannot be mapped", node=name)
        self.visiting.add(name)
        paths: list[Path] = []
        for src, is_rec in self.sched.predecessors(name):
            rec = is_rec or (src, name) in self.rec
            snode = self.g.nodes[src]
            if isinstance(snode, (nir.Input, *NEURONS)):
                n = self.out_size(src)
                paths.append(Path(src, sp.identity(n, format="csr"), np.zeros(n), 0, rec))
            elif isinstance(snode, LINEAR):
                for p in self.into(src):
                    n_in = p.matrix.shape[0]
                    A, c, d = linear_map(src, snode, n_in, self.cfg.for_node(snode))
                    conv = isinstance(snode, (nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d)) or p.conv
                    if isinstance(snode, (nir.Affine, nir.Linear)):
                        conv = False
                    paths.append(Path(p.src, (A @ p.matrix).tocsr(), A @ p.bias + c, p.delay + d,
                                      p.recurrent or rec, conv, p.nodes + (src,)))
            else:
                raise UnsupportedError(f"{type(snode).__name__} cannot be lowered to Loihi", node=src,
                                       hint="supported: LIF, CubaLIF, IF, LI, CubaLI, I, Affine, Linear, Scale, "
                                            "Flatten, Conv1d/2d, SumPool2d/AvgPool2d, Delay")
        self.visiting.discard(name)
        self.memo[name] = paths
        return paths


def _vec(x: Any, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(x, dtype=np.float64).reshape(-1) if np.ndim(x) else np.float64(x),
                           (n,)).astype(np.float64)


@dataclass
class _NeuronModel:
    """Float dynamics of a neuron node in Loihi terms (per neuron arrays)."""

    spiking: bool
    cuba: bool
    keep_v: np.ndarray
    keep_u: np.ndarray | None
    in_gain: np.ndarray          # v (or u) increment per unit of summed input x
    bias_v: np.ndarray           # constant v increment per step (v_leak term)
    b_gain: np.ndarray           # v increment per step per unit of constant input b (Affine biases)
    vth: np.ndarray | None
    extra_delay: int = 0
    notes: list[str] = field(default_factory=list)
    sem_notes: list[tuple[str, str]] = field(default_factory=list)   # (semantics kind, detail)
    i_gain: np.ndarray | None = None   # Cuba (current first): u_int = S * i_gain * i
    readout: bool = False              # Affine/Linear -> Output: u (du = 4095) is the step's weighted sum
    refractory: int = 0                # steps v is held at 0 after a spike (Lava LIFRefractory)


def _neuron_model(name: str, node: nir.NIRNode, n: int, cfg: SimConfig) -> _NeuronModel:
    c = cfg.for_node(node)
    notes: list[str] = []
    sem_notes: list[tuple[str, str]] = []
    cuba = isinstance(node, (nir.CubaLIF, nir.CubaLI))
    leaky = not isinstance(node, (nir.IF, nir.I))
    r = _vec(node.r, n)
    if leaky:
        tau = _vec(node.tau_mem if cuba else node.tau, n)
        if c.integration == "exact":
            keep = np.exp(-c.dt / tau)
            gain = 1 - keep
        else:
            keep = 1 - c.dt / tau
            gain = c.dt / tau
        v_leak = _vec(node.v_leak, n)
    else:
        keep = np.ones(n)
        gain = np.full(n, c.dt if c.if_dt else 1.0)
        v_leak = np.zeros(n)
    if np.any(keep < 0) or np.any(keep > 1):
        raise UnsupportedError(f"membrane decay factor {keep.min():.3g} is outside [0, 1] (dt > tau)", node=name,
                               field="tau", hint="use a smaller --dt")
    keep_u = None
    in_gain = gain * r
    b_gain = gain * r
    extra = 0
    if cuba:
        tau_s = _vec(node.tau_syn, n)
        if c.integration == "exact":
            skeep = np.exp(-c.dt / tau_s)
            sgain = 1 - skeep
        else:
            skeep = 1 - c.dt / tau_s
            sgain = c.dt / tau_s
        if np.any(skeep < 0) or np.any(skeep > 1):
            raise UnsupportedError("synaptic decay factor outside [0, 1] (dt > tau_syn)", node=name, field="tau_syn")
        w_in = _vec(node.w_in, n)
        keep_u = skeep
        in_gain = gain * r * sgain * w_in
        # a constant input current converges to b * sgain * w_in / (1 - skeep): mapped to a v bias
        with np.errstate(divide="ignore", invalid="ignore"):
            b_gain = np.where(skeep < 1, gain * r * w_in * sgain / np.maximum(1 - skeep, 1e-12), 0.0)
        if c.cuba_order == "voltage_first":
            extra = 1                   # v driven by the previous step's current = input one step later
    spiking = isinstance(node, SPIKING)
    vth = None
    refractory = 0
    if spiking:
        vth = _vec(node.v_threshold, n)
        if np.any(vth <= 0):
            raise UnsupportedError("Loihi thresholds must be > 0", node=name, field="v_threshold")
        vr = getattr(node, "v_reset", None)
        if vr is not None and np.any(np.asarray(vr) != 0):
            raise UnsupportedError("Loihi (Lava LIF) resets v to 0; v_reset must be 0", node=name, field="v_reset")
        if c.reset == "subtract":
            notes.append("reset by subtraction approximated by reset to zero (Lava LIF)")
            sem_notes.append(("reset_changed", notes[-1]))
        if c.reset_timing == "delayed" and c.reset == "zero":
            # exact: the reference's delayed reset to 0 (Brian2's reset, which drops the input of the step
            # that spiked) is an immediate reset plus one refractory step (v held at 0, its input lost)
            refractory = 1
        elif c.reset_timing == "delayed":
            notes.append("delayed reset approximated by immediate reset (Lava LIF)")
            sem_notes.append(("reset_changed", notes[-1]))
        if c.threshold_cmp == ">=":
            notes.append("'>=' threshold approximated by '>' (Lava LIF)")
            sem_notes.append(("other", notes[-1]))
    return _NeuronModel(spiking=spiking, cuba=cuba, keep_v=keep, keep_u=keep_u, in_gain=in_gain,
                        bias_v=gain * v_leak, b_gain=b_gain, vth=vth, extra_delay=extra, notes=notes,
                        sem_notes=sem_notes, refractory=refractory,
                        i_gain=gain * r if cuba and extra == 0 else None)


def _direct(ps: list[Path], neurons: set[str]) -> bool:
    """An Output that reads one population as it is (spikes, or v of a non-spiking neuron)."""
    if len(ps) != 1 or ps[0].src not in neurons or ps[0].delay or np.any(ps[0].bias):
        return False
    m = ps[0].matrix
    return m.shape[0] == m.shape[1] and not (m - sp.identity(m.shape[0])).count_nonzero()


def _readout_model(n: int) -> _NeuronModel:
    """A readout compartment: du = 4095 makes u = a_in << 6 each step, i.e. exactly the quantised weighted
    input sum of that step; the threshold sits at its maximum and only u is read (a spike resets v, never u)."""
    return _NeuronModel(spiking=False, cuba=False, keep_v=np.zeros(n), keep_u=None, in_gain=np.ones(n),
                        bias_v=np.zeros(n), b_gain=np.zeros(n), vth=None, readout=True)


def _vbias_effect(keep_u: float, keep_v: float) -> float:
    """Measured effect of the steady-state v bias: float v of a unit current charging i (reference) vs the
    same current's steady state applied to v at once, no threshold, over 5 synaptic time constants."""
    steps = int(min(10_000, 5 / max(1e-6, 1 - keep_u)) + 1)
    gain = 1 - keep_v
    i = v_ref = v_mov = 0.0
    dev = 0.0
    steady_i = 1.0                                           # i -> w_in b (here b = w_in = 1)
    for _ in range(steps):
        i = keep_u * i + (1 - keep_u)
        v_ref = keep_v * v_ref + gain * i
        v_mov = keep_v * v_mov + gain * steady_i
        dev = max(dev, abs(v_ref - v_mov))
    return float(dev / max(abs(v_mov), 1e-300))


def _decay_field(keep: np.ndarray, name: str, what: str, offset: int) -> tuple[int, float]:
    d = np.rint(4096 * (1 - keep)).astype(int) - offset
    if np.any(d != d[0]):
        raise UnsupportedError(
            f"per-neuron {what} differ inside one population ({int(d.min())}..{int(d.max())}); Lava's LIF has "
            f"one {what} per process", node=name, hint="split the layer into populations with equal time constants")
    val = int(d[0])
    if val < 0 or val > 4095:
        if val == 4096 and offset == 0:
            raise UnsupportedError("dt equals tau: Loihi's dv cannot decay fully in one step (max 4095)",
                                   node=name, field="tau")
        val = min(max(val, 0), 4095)
    err = float(abs((4096 - (val + offset)) / 4096 - float(keep[0])))
    return val, err


def _quantize_matrix(w: sp.csr_matrix, lo_exp: int, hi_exp: int) -> tuple[sp.csr_matrix, int, str]:
    """Sparse float matrix in a_in units -> (int weights, weight_exp, sign mode); quantised once, on the
    stored entries only (a convolution's taps, never an unrolled dense matrix)."""
    d = w.data
    if d.size == 0 or not np.any(d):
        return sp.csr_matrix(w.shape, dtype=np.int64), 0, "excitatory"
    mixed = bool(d.min() < 0 < d.max())
    limit = 254.0 if mixed else 255.0
    amax = float(np.abs(d).max())
    exp = int(math.ceil(math.log2(amax / limit))) if amax > 0 else 0
    exp = min(max(exp, lo_exp), hi_exp)
    step = 2.0 ** exp
    if mixed:
        q = np.clip(2 * np.rint(d / step / 2), -256, 254)
        mode = "mixed"
    else:
        q = np.clip(np.rint(np.abs(d) / step), 0, 255) * np.sign(d)
        mode = "excitatory" if d.max() > 0 else "inhibitory"
    out = sp.csr_matrix((q.astype(np.int64), w.indices.copy(), w.indptr.copy()), shape=w.shape)
    out.eliminate_zeros()
    return out, exp, mode


def _row_groups(w: sp.csr_matrix, lo: int, hi: int) -> list[sp.csr_matrix]:
    """`w` split by rows into the groups whose largest |weight| needs the same weight_exp. Lava sums every
    connection into a_in, so one connection per group is exact and stores the same synapses; a row of small
    weights then keeps all 8 mantissa bits instead of the few left by the matrix's largest weight
    (cnn_sinabs: relative RMS weight error 0.011 -> 0.005 on its 256x128 Affine)."""
    if not w.nnz:
        return [w]
    amax = np.asarray(abs(w).max(axis=1).todense()).ravel()
    limit = 254.0 if w.data.min() < 0 < w.data.max() else 255.0
    with np.errstate(divide="ignore"):
        exp = np.clip(np.ceil(np.log2(amax / limit)), lo, hi)
    used = np.unique(exp[amax > 0])
    if used.size <= 1:
        return [w]
    out = []
    for e in used:
        g = (sp.diags(((exp == e) & (amax > 0)).astype(np.float64)) @ w).tocsr()
        g.eliminate_zeros()
        out.append(g)
    return out


def _conv_node(g: nir.NIRGraph, p: Path, all_paths: list[Path]) -> nir.Conv2d | None:
    """The Conv2d of a path that is exactly source -> Conv2d -> population (and the only path from that
    source): such a connection becomes Lava's own Conv process with a shared kernel."""
    if len(p.nodes) != 1 or p.recurrent or p.delay:
        return None
    node = g.nodes[p.nodes[0]]
    if not isinstance(node, nir.Conv2d) or isinstance(node.padding, str):
        return None
    if sum(q.src == p.src for q in all_paths) != 1:
        return None
    shp = G.node_shape(node, "input")
    return node if shp is not None and len(shp) == 3 else None


def _conv_conns(g: nir.NIRGraph, p: Path, kf: np.ndarray, dst: str, w_hi: int, split_sign: bool,
                report: list[dict], per_channel: bool = True) -> list[Conn]:
    """Quantise a float kernel (a_in units) once: 8-bit mantissa x 2^weight_exp, the exponent baked into the
    integer kernel (Lava's fixed-point Conv ignores weight_exp and sums the kernel as given). A mixed-sign
    kernel is split into a positive and a negative Conv (each with its own exponent), as for Dense."""
    from spikeforge.refsim import _pair

    node = g.nodes[p.nodes[0]]
    geom = {"in_shape": [int(x) for x in G.node_shape(node, "input")], "stride": list(_pair(node.stride, 2)),
            "padding": list(_pair(node.padding, 2)), "dilation": list(_pair(node.dilation, 2)),
            "groups": int(node.groups)}
    parts = [("", kf)]
    if split_sign and kf.min() < 0 < kf.max():
        parts = [("+", np.clip(kf, 0, None)), ("-", np.clip(kf, None, 0))]
    out, approx = [], np.zeros_like(kf)
    for label, part in parts:
        # one exponent per output channel (as one connection per exponent group would have; baked into the
        # integer kernel, so >= 0), or one for the whole kernel
        amax = np.abs(part).reshape(part.shape[0], -1).max(axis=1)
        if not per_channel:
            amax = np.full_like(amax, amax.max())
        with np.errstate(divide="ignore"):
            exps = np.clip(np.ceil(np.log2(amax / 255.0)), 0, w_hi).astype(np.int64)
        exps[amax == 0] = 0
        ex = exps.reshape(-1, *([1] * (part.ndim - 1)))
        kernel = np.clip(np.rint(part / 2.0 ** ex), -255, 255).astype(np.int64) << ex
        exp = int(exps.max())
        approx += kernel
        c = Conn(name=f"{p.src}->{dst}{label}", src=p.src, dst=dst, weights=None, weight_exp=0, num_weight_bits=8,
                 sign_mode="mixed", kernel=kernel, conv=geom)
        if c.weights.shape != p.matrix.shape:
            raise UnsupportedError(f"Conv geometry gives {c.weights.shape}, the graph {p.matrix.shape}", node=dst)
        out.append(c)
        report.append({"connection": c.name, "weight_exp": exp, "weight_exp_per_channel": sorted(set(exps.tolist())),
                       "sign_mode": "conv (exponent baked)", "delay": 0,
                       "density": round(c.weights.nnz / max(1, np.prod(c.weights.shape)), 4),
                       "kernel_weights": int(kernel.size)})
    err = float(np.sqrt(np.sum((approx - kf) ** 2)) / (np.sqrt(np.sum(kf ** 2)) + 1e-300))
    for e in report[-len(out):]:
        e["rel_rms_error"] = round(err, 6)
    return out


def _kernel_taps(q: sp.csr_matrix, channels: int) -> int:
    """Weights a shared-weight (convolutional) synapse table stores: per output channel, the taps of its
    largest row (positions near the border see fewer taps of the same kernel)."""
    nnz = np.diff(q.indptr).reshape(channels, -1)
    return int(nnz.max(axis=1).sum())


def _row_sums(w: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Per row: sum of positive entries, sum of |negative| entries."""
    pos = np.asarray(w.maximum(0).sum(axis=1)).ravel()
    neg = np.asarray((-w).maximum(0).sum(axis=1)).ravel()
    return pos, neg


def _bias_fields(b: np.ndarray, mant_max: int, exp_max: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Per neuron: the smallest bias_exp whose rounded mantissa fits, and that mantissa (vectorised)."""
    b = np.asarray(b, dtype=np.float64)
    exps = np.zeros(b.shape, np.int64)
    for e in range(exp_max):
        too_big = np.abs(np.round(b / 2.0 ** exps)) > mant_max
        if not too_big.any():
            break
        exps = np.where(too_big, e + 1, exps)
    mant = np.clip(np.round(b / 2.0 ** exps), -mant_max - 1, mant_max).astype(np.int64)
    approx = mant * (2.0 ** exps)
    err = float(np.max(np.abs(approx - b))) if b.size else 0.0
    return mant, exps, err


def _record_floors(sem: dict[str, Any], g: nir.NIRGraph, dt: float,
                   floors: dict[str, tuple[np.ndarray, np.ndarray]], run_steps: int | None, headroom: float) -> None:
    """A `saturation` warning for each population whose worst case can pass the 24-bit v floor, with its
    measured effect: the fraction of neurons whose float v passes that floor on random input."""
    if not floors:
        return
    steps = int(run_steps or 50)
    seen = floor_crossings(g, dt, {n: fl for n, (fl, _) in floors.items()}, steps=steps)
    for n, (floor, reach) in floors.items():
        frac, low = seen[n]
        bound = "without bound (no leak, no --timesteps)" if np.any(np.isinf(reach)) else \
            f"to -{float(np.max(reach)):.3g} x v_threshold in the worst case (every negative input active at " \
            f"every step{f' for {run_steps} steps' if run_steps else ''})"
        record(sem, n, "saturation", f"v is a 24-bit state clipped at -{float(np.min(-floor)):.3g} in float units "
               f"(room for -{headroom:g} x v_threshold, loihi.negative_headroom); the float model's v can fall "
               f"{bound}; measured on {input_kind(g)} ({steps} steps, batch 8): lowest float v = {low:.3g} x the "
               f"floor; magnitude = fraction of the population that passed the floor", frac)


def lower(g: nir.NIRGraph, board: Board, dt: float, options_extra: dict[str, Any] | None = None,
          timesteps: int | None = None) -> Lowered:
    """Flat validated graph with dt -> Loihi program, per-layer report and I/O alignment. `timesteps` (the
    compile's run length, else the graph's `spikeforge.timesteps`) bounds how far a leak-free v can fall."""
    extra = options_extra or {}
    run_steps = timesteps or (g.metadata or {}).get("spikeforge.timesteps")
    run_steps = int(run_steps) if run_steps else None
    floors: dict[str, tuple[np.ndarray, np.ndarray]] = {}   # population -> (float v floor, worst reach / vth)
    cfg = config_for_graph(g, dt)
    paths = _Paths(g, cfg)
    sched = paths.sched
    warnings: list[str] = []
    sem: dict[str, Any] = {}                 # structured semantic warnings (spikeforge.semantics)
    w_lo = int(board.value("arithmetic.weight_exp_min", -8))
    w_hi = int(board.value("arithmetic.weight_exp_max", 7))
    vth_max = int(board.value("arithmetic.vth_max", 131071))
    mant_max = int(board.value("arithmetic.bias_mant_max", 4095))
    bexp_max = int(board.value("arithmetic.bias_exp_max", 7))
    max_delay = int(board.value("arithmetic.max_delay", 62))
    horizon = int(opt(extra, "loihi.horizon_steps"))
    split_sign = bool(opt(extra, "loihi.split_sign"))
    weight_bytes = int(opt(extra, "loihi.weight_bytes"))
    readout_bytes = int(opt(extra, "loihi.readout_weight_bytes"))
    allow_extra_latency = bool(opt(extra, "loihi.allow_extra_latency"))
    use_conv = bool(opt(extra, "loihi.conv_process"))
    headroom = float(opt(extra, "loihi.negative_headroom"))
    row_exponents = bool(opt(extra, "loihi.row_exponents"))

    inputs = {n: paths.out_size(n) for n in sched.order if isinstance(g.nodes[n], nir.Input)}
    neurons = [n for n in sched.order if isinstance(g.nodes[n], NEURONS)]
    for n, node in g.nodes.items():
        if not isinstance(node, (nir.Input, nir.Output, *NEURONS, *LINEAR)):
            raise UnsupportedError(f"{type(node).__name__} cannot be lowered to Loihi", node=n)

    # ---- readouts: an Output fed by Affine/Linear (not by a population directly) -------------------------
    readouts: dict[str, str] = {}                  # Output -> readout population
    sizes = {n: paths.out_size(n) for n in neurons}
    out_bias: dict[str, np.ndarray] = {}
    for o, node in g.nodes.items():
        if not isinstance(node, nir.Output):
            continue
        ps = paths.into(o)
        if _direct(ps, set(neurons)):
            continue
        if not ps or any(p.src not in inputs and p.src not in sizes for p in ps) or any(p.recurrent for p in ps):
            raise UnsupportedError("a Loihi output reads a population directly or through Affine/Linear/Conv "
                                   "layers (a readout) from neurons or inputs", node=o)
        preds = [src for src, _ in sched.predecessors(o)]
        r = preds[0] if len(preds) == 1 and isinstance(g.nodes[preds[0]], (nir.Affine, nir.Linear)) \
            and preds[0] not in sizes else f"{o}.readout"
        readouts[o] = r
        sizes[r] = int(ps[0].matrix.shape[0])
        out_bias[o] = sum((p.bias for p in ps), np.zeros(sizes[r]))
        neurons.append(r)

    # ---- offsets (Loihi step holding NIR time 0) -----------------------------------------------------
    offset: dict[str, int] = {n: 1 for n in inputs}
    tonic_users: list[str] = []
    models: dict[str, _NeuronModel] = {}
    into: dict[str, list[Path]] = {}
    readout_of = {r: o for o, r in readouts.items()}
    cuba_bias = str(opt(extra, "loihi.cuba_bias"))
    for n in neurons:
        size = sizes[n]
        if n in readout_of:
            models[n] = _readout_model(size)
            into[n] = paths.into(readout_of[n])
        else:
            models[n] = _neuron_model(n, g.nodes[n], size, cfg)
            into[n] = paths.into(n)
            bias = sum((p.bias for p in into[n]), np.zeros(size))
            if models[n].cuba and np.any(bias) and cuba_bias == "exact":
                # the constant current enters i (then u) through w_in, like any input: a synapse from TONIC
                into[n] = [replace(p, bias=np.zeros(size)) for p in into[n]]
                into[n].append(Path(TONIC, sp.csr_matrix(bias.reshape(-1, 1)), np.zeros(size), 0, False))
                offset[TONIC] = 1
                tonic_users.append(n)
        d = 2
        for p in into[n]:
            if not p.recurrent and p.src in offset:
                d = max(d, offset[p.src] + 1 - p.delay - models[n].extra_delay)
        offset[n] = d
    # ---- per-neuron scales --------------------------------------------------------------------------
    pops: dict[str, Pop] = {}
    if tonic_users:
        pops[TONIC] = Pop(name=TONIC, size=1, du=4095, dv=0, vth=0, bias_mant=np.ones(1, np.int64),
                          bias_exp=np.zeros(1, np.int64), bias_start=1)
    conns: list[Conn] = []
    layers: list[dict[str, Any]] = []
    scales: dict[str, np.ndarray] = {}
    probe_scales: dict[str, np.ndarray] = {}
    for n in neurons:
        m = models[n]
        size = sizes[n]
        for p in into[n]:
            if p.matrix.shape[0] != size:
                raise UnsupportedError(f"input size {p.matrix.shape[0]} does not match population size {size}", node=n)
        w_eff = [sp.diags(m.in_gain) @ p.matrix for p in into[n]]           # v/u units per input spike
        b_eff = m.bias_v + m.b_gain * sum((p.bias for p in into[n]), np.zeros(size))
        if m.cuba and any(np.any(p.bias) for p in into[n]):
            effect = _vbias_effect(float(m.keep_u[0]), float(m.keep_v[0]))
            warnings.append(f"{n}: constant input current of a CubaLIF mapped to its steady-state v bias")
            record(sem, n, "bias_moved", "constant input current mapped to its steady-state v bias "
                   "(loihi.cuba_bias=v_bias): it acts at once instead of charging i with tau_syn; magnitude = "
                   "largest v deviation over 5 tau / steady-state v", effect)
        sums = [_row_sums(w) for w in w_eff]
        pos = sum((a for a, _ in sums), np.zeros(size))
        neg = sum((b for _, b in sums), np.zeros(size))
        wmax = max((float(np.abs(w.data).max()) for w in w_eff if w.nnz), default=0.0)
        step_in = np.maximum(pos, neg) + np.abs(b_eff)
        if m.cuba:
            du_keep = m.keep_u
            u_bound = np.maximum(pos, neg) / np.maximum(1 - du_keep, 1 / 4096)
        else:
            u_bound = np.maximum(pos, neg)
        lim = [np.full(size, (MAX_UV - 64) / np.maximum(u_bound, 1e-300))]
        if wmax > 0:
            lim.append(np.full(size, 64.0 * 255 * 2.0 ** w_hi / wmax))
        lim.append((mant_max * 2.0 ** bexp_max) / np.maximum(np.abs(b_eff), 1e-300))
        if m.spiking:
            lim.append(MAX_UV / (m.vth + step_in + u_bound))
            # below the threshold nothing resets v: leaky neurons settle above -(drive / leak); leak-free ones
            # (IF) can fall without bound, so keep `loihi.negative_headroom` thresholds of room (24-bit v clips)
            leak = 1 - m.keep_v
            neg_drive = np.maximum(neg, 0) + np.maximum(-b_eff, 0) + (u_bound if m.cuba else 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                settle = np.where(leak > 0, neg_drive / np.maximum(leak, 1e-300), np.inf)
            # over a run of `timesteps` steps v cannot fall further than timesteps x the per-step drive
            reach = np.minimum(settle, run_steps * neg_drive) if run_steps else settle
            room = np.minimum(reach, headroom * m.vth)
            lim.append((MAX_UV - 1) / np.maximum(room + step_in, 1e-300))
            s_max = np.min(np.stack(lim), axis=0)
            vth_int = int(min(vth_max, math.floor(float(np.min(s_max * m.vth / 64)))))
            if vth_int < 1:
                raise UnsupportedError("threshold cannot be represented: the inputs are too large relative to "
                                       "v_threshold for Loihi's 24-bit state", node=n, field="v_threshold",
                                       hint="a smaller --set loihi.negative_headroom leaves more room above zero")
            S = vth_int * 64.0 / m.vth
            if np.any(reach > room):
                floors[n] = (-MAX_UV / S, reach / m.vth)
        elif m.readout:
            vth_int = vth_max
            lim.append(np.full(size, (MAX_UV // 2) / max(float(np.max(u_bound, initial=0)), 1e-300)))
            S = np.full(size, float(np.min(np.stack(lim))))
        else:
            vth_int = vth_max
            leak = 1 - m.keep_v
            vmax = np.where(leak > 0, step_in / np.maximum(leak, 1e-300), step_in * horizon)
            lim.append((vth_int * 64 - 64) / np.maximum(vmax + u_bound, 1e-300))
            S = np.full(size, float(np.min(np.stack(lim))))
        scales[n] = S
        if not m.readout:
            probe_scales[f"{n}/v_scale"] = S.astype(np.float64)
        if m.i_gain is not None:
            probe_scales[f"{n}/i_scale"] = (S * m.i_gain).astype(np.float64)
        dv, dv_err = (4095, 0.0) if m.readout else _decay_field(m.keep_v, n, "dv", 0)
        if m.cuba:
            du, du_err = _decay_field(m.keep_u, n, "du", 1)
        else:
            du, du_err = 4095, 0.0
        mant, bexp, b_err = _bias_fields(S * b_eff, mant_max, bexp_max)
        pops[n] = Pop(name=n, size=size, du=du, dv=dv, vth=vth_int, bias_mant=mant, bias_exp=bexp,
                      bias_start=offset[n], refractory=m.refractory)
        # ---- connections ------------------------------------------------------------------------------
        groups: dict[tuple[str, int], sp.csr_matrix] = {}
        shape_n = None if n in readout_of else (G.node_shape(g.nodes[n], "input")
                                                 or G.node_shape(g.nodes[n], "output"))
        uniform = bool(np.all(S == S[0]))
        conv_src = {p.src for p in into[n] if p.conv and uniform and shape_n is not None and len(shape_n) >= 2}
        conv_src -= {p.src for p in into[n] if not p.conv}
        shared_taps: dict[str, int] = {}
        conv_paths: list[tuple[Path, np.ndarray]] = []
        for p, w in zip(into[n], w_eff):
            if p.src not in offset:
                raise UnsupportedError(f"recurrent input from '{p.src}' is not a neuron or input", node=n)
            k = offset[n] - offset[p.src] - 1 + p.delay + (1 if p.recurrent else 0) + m.extra_delay
            if k < 0:
                if not allow_extra_latency:
                    raise UnsupportedError(
                        f"edge {p.src} -> {n} needs {-k} step(s) less latency than Loihi's one step per hop "
                        "(a recurrent edge from a later layer)", node=n,
                        hint="only recurrent edges from the same or an earlier layer (e.g. self-recurrence) keep "
                             "the reference timing; --set loihi.allow_extra_latency=1 accepts the extra delay")
                warnings.append(f"{n}: recurrent input from {p.src} arrives {-k} step(s) later than in the "
                                "reference (loihi.allow_extra_latency)")
                record(sem, n, "delay_clamped", f"recurrent input from {p.src} arrives {-k} step(s) later than in "
                       "the reference (loihi.allow_extra_latency)", float(-k))
                k = 0
            if k > max_delay:
                raise UnsupportedError(f"edge {p.src} -> {n} needs a synaptic delay of {k} steps; Loihi allows "
                                       f"{max_delay}", node=n)
            if use_conv and k == 0 and _conv_node(g, p, into[n]) is not None and uniform and \
                    np.all(m.in_gain == m.in_gain[0]):
                factor = float(S[0] * m.in_gain[0] / 64.0)
                kf = np.asarray(_conv_node(g, p, into[n]).weight, dtype=np.float64) * factor
                amax = min(float(kf.max(initial=0)), float(-kf.min(initial=0))) if split_sign and \
                    kf.min(initial=0) < 0 < kf.max(initial=0) else float(np.abs(kf).max(initial=0))
                if amax >= 255.0 / 2:              # weight_exp >= 0: the exponent can be baked into the kernel
                    conv_paths.append((p, kf))
                    continue
            key = (p.src, k)
            scaled = (sp.diags(S / 64.0) @ w).tocsr()
            groups[key] = scaled if key not in groups else (groups[key] + scaled).tocsr()
        q_errs = []
        for p, kf in conv_paths:
            conns.extend(_conv_conns(g, p, kf, n, w_hi, split_sign, q_errs, row_exponents))
        for (src, k), wf in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            wf.sum_duplicates()
            # Mixed-sign weights lose their LSB in Lava (8-bit mixed = even values); an excitatory and an
            # inhibitory connection from the same source keep all 8 magnitude bits for the same synapse count.
            parts = [wf]
            if split_sign and wf.nnz and wf.data.min() < 0 < wf.data.max():
                parts = [wf.maximum(0).tocsr(), wf.minimum(0).tocsr()]
            approx = sp.csr_matrix(wf.shape)
            entries = []
            nbytes = readout_bytes if (m.readout or src == TONIC) else weight_bytes
            todo = [(part, "" if len(parts) == 1 else "+-"[i], w_hi) for i, part in enumerate(parts)]
            if row_exponents:
                todo = [(grp, label + (f"e{j}" if j else ""), hi) for part, label, hi in todo
                        for j, grp in enumerate(_row_groups(part, w_lo, hi))]
            while todo:
                part, label, hi = todo.pop(0)
                q, exp, mode = _quantize_matrix(part, w_lo, hi)
                if not q.nnz:
                    continue
                if src in conv_src:
                    shared_taps[src] = _kernel_taps(q, int(shape_n[0]))
                approx = approx + q * 2.0 ** exp
                if label.count("~") + 1 < nbytes and exp - 8 >= w_lo:
                    # a second connection carries the residual 8 bits lower (Lava sums both): ~16-bit weights
                    res = (part - q * 2.0 ** exp).tocsr()
                    res.eliminate_zeros()
                    if res.nnz:
                        todo.append((res, label + "~", exp - 1))
                density = float(q.nnz) / max(1, q.shape[0] * q.shape[1])
                cname = f"{src}->{n}" + (f"@{k}" if k else "") + label
                sparse = bool(density < 0.2 and q.shape[0] * q.shape[1] > 64)
                weights: Any = q if sparse else q.toarray()
                delays: Any = None
                if k:
                    delays = sp.csr_matrix((np.full(q.nnz, k, np.int64), q.indices, q.indptr), shape=q.shape) \
                        if sparse else np.full(q.shape, k, np.int64)
                conns.append(Conn(name=cname, src=src, dst=n, weights=weights, weight_exp=exp, num_weight_bits=8,
                                  sign_mode=mode, delays=delays, sparse=sparse, shared=shared_taps.get(src, 0)))
                entries.append({"connection": cname, "weight_exp": exp, "sign_mode": mode, "delay": k,
                                "density": round(density, 4)})
            diff = (approx - wf).tocsr()
            err = float(np.sqrt(np.sum(diff.data ** 2)) / (np.sqrt(np.sum(wf.data ** 2)) + 1e-300))
            for e in entries:
                e["rel_rms_error"] = round(err, 6)         # of the source's whole weight matrix
            q_errs.extend(entries)
        layers.append({
            "node": n, "type": "readout" if m.readout else type(g.nodes[n]).__name__, "size": size,
            "offset": offset[n],
            "scale_min": float(np.min(S)), "scale_max": float(np.max(S)), "vth": vth_int, "du": du, "dv": dv,
            "decay_error_v": round(dv_err, 8), "decay_error_u": round(du_err, 8),
            "bias_max_abs_error_int": round(b_err, 3), "connections": q_errs, "notes": m.notes,
        })
        warnings.extend(f"{n}: {note}" for note in m.notes)
        if m.sem_notes:
            effect = convention_effect(g, dt, [n])
            for kind, note in m.sem_notes:
                record(sem, n, kind, f"{note}; measured on {input_kind(g)} (T=50, batch 8): output "
                       f"spike counts change by {effect:.1%} when this node follows Lava's convention", effect)
        if dv_err > 0 or du_err > 0:
            record(sem, n, "leak_rounded", f"decay factors rounded to 12 bits (dv={dv}, du={du}): |keep error| "
                   f"v {dv_err:.3g}, u {du_err:.3g} per step", max(dv_err, du_err))
        worst = max((e["rel_rms_error"] for e in q_errs), default=0.0)
        if worst > 0:
            record(sem, n, "quantisation", f"input weights quantised to Loihi's 8-bit mantissa x 2^weight_exp "
                   f"(relative RMS error of the worst source's matrix {worst:.3g})", worst, WEIGHT_REL_RMS)
        if b_err > 0:
            record(sem, n, "quantisation", f"bias rounded to bias_mant << bias_exp: largest error {b_err:.3g} "
                   f"in v units of {float(np.min(S)):.6g} per float unit", b_err / float(np.min(S)))

    _record_floors(sem, g, dt, floors, run_steps, headroom)
    # ---- outputs --------------------------------------------------------------------------------------
    io_out: dict[str, Any] = {}
    out_scales: dict[str, np.ndarray] = {}
    out_offsets: dict[str, np.ndarray] = {}
    for o, node in g.nodes.items():
        if not isinstance(node, nir.Output):
            continue
        if o in readouts:
            r = readouts[o]
            shape = G.node_shape(node, "input")
            io_out[o] = {"pop": r, "var": "u", "offset": offset[r], "shape": list(shape) if shape else None}
            out_scales[o] = scales[r]
            out_offsets[o] = out_bias[o]
            continue
        ps = paths.into(o)
        src = ps[0].src
        spiking = models[src].spiking
        shape = G.node_shape(node, "input") or G.node_shape(g.nodes[src], "output")
        io_out[o] = {"pop": src, "var": "s" if spiking else "v", "offset": offset[src],
                     "shape": list(shape) if shape else None}
        if not spiking:
            out_scales[o] = scales[src]
    latency = max(offset[v["pop"]] for v in io_out.values()) - 1 if io_out else 0
    io = {"inputs": {n: n for n in inputs}, "outputs": io_out, "latency": latency}
    prog = Program(inputs=inputs, pops=pops, conns=conns, meta={"dt": dt})
    prog.check()
    shapes = {n: (G.node_shape(g.nodes[n], "output") or G.node_shape(g.nodes[n], "input")) if n in g.nodes
              and n not in readout_of else None for n in pops}
    return Lowered(program=prog, io=io, layers=layers, warnings=warnings, out_scales=out_scales, shapes=shapes,
                   probe_scales=probe_scales, spiking={n: bool(models[n].spiking) if n in models else True
                                                       for n in pops}, semantic=sem,
                   out_offsets=out_offsets, readouts=readouts)
