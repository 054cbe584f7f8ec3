"""Bit-exact, vectorised emulation of Lava 0.10.0 fixed point (`Loihi2SimCfg(select_tag="fixed_pt")`).

What is reproduced (read from lava/proc/lif/models.py PyLifModelBitAcc, proc/dense/models.py,
proc/sparse/models.py, utils/weightutils.py, and checked against Lava in tests/test_loihi_emulator.py):

* Loihi step s = 1, 2, ...; a RingBuffer sends column s-1 of its data at step s.
* Dense/Sparse (binary spikes): at step s send ``a_buff`` (computed at s-1), then ``a_buff = (W @ s_in)``
  shifted by ``weight_exp`` after the sum (left for exp > 0, arithmetic right = floor for exp <= 0).
  One step of latency per hop. DelayDense/DelaySparse: the contribution of delay d arrives at s+1+d.
  Weights are first clipped to 8 bits by sign mode (mixed [-256, 255], excitatory [0, 255], inhibitory
  [-255, 0]) and their low ``8 - num_weight_bits + mixed`` bits zeroed (floor; on |w| for inhibitory).
* Channels carry int32: each a_buff is cast to int32 when sent, an InPort sums its channels in int32.
* LIF (PyLifModelBitAcc): ``u = trunc0(u * (4096 - (du + 1)) / 4096) + (a_in << 6)`` in int32, then one
  conditional wrap (``u > 2^23 -> u - 2^24``, else ``u <= -2^23 -> u + 2^24``: so -2^23 becomes +2^23 and
  +2^23 stays); ``v = trunc0(v * (4096 - dv) / 4096) + u + (bias_mant << bias_exp)`` clipped to
  +-(2^23 - 1); spike when ``v > vth << 6`` (vth is read on the first step only); v <- 0 on a spike,
  u is never reset. Refractory periods do not exist in Lava's fixed-point LIF; a population with
  ``refractory = k`` runs as Lava's LIFRefractory with a fixed-point model (emitted with the script):
  for k steps after a spike v is not updated (held at 0; u still integrates), as Loihi's refractory delay.

A *program* is plain data (JSON-able spec + integer arrays), shared by the emulator, the emitted Lava
script (backends/loihi/network_template.py) and the tests; see `Program`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from spikeforge.artifact import Artifact
from spikeforge.errors import InputError, SpikeforgeError
from spikeforge.interfaces import Emulator, Trace

from . import loihi_kernels as kernels

UV_BITS = 24
MAX_UV = 1 << (UV_BITS - 1)          # 2^23
DECAY_SHIFT = 12
DECAY_UNITY = 1 << DECAY_SHIFT        # 4096
VTH_SHIFT = 6
ACT_SHIFT = 6
SIGN_MODES = ("mixed", "excitatory", "inhibitory")


def wrap32(x: np.ndarray) -> np.ndarray:
    """int64 -> value an int32 array would hold (two's complement wrap), kept as int64."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def wrap24(x: np.ndarray) -> np.ndarray:
    """Lava's signed_clamp(x, 24): (x + 2^23) mod 2^24 - 2^23 (a wrap, not a saturation)."""
    return ((x + (1 << 23)) & 0xFFFFFF) - (1 << 23)


def trunc_decay(x: np.ndarray, keep: int) -> np.ndarray:
    """sign(x) * ((|x| * keep) >> 12): Lava's decay, truncating toward zero."""
    p = x * keep
    return np.sign(p) * (np.abs(p) >> DECAY_SHIFT)


def effective_weights(weights: np.ndarray, sign_mode: str, num_weight_bits: int) -> np.ndarray:
    """Lava's clip_weights(num_bits=8) then truncate_weights(num_weight_bits), as int32."""
    if sign_mode not in SIGN_MODES:
        raise SpikeforgeError(f"unknown sign mode {sign_mode!r}; allowed: {SIGN_MODES}")
    mixed = sign_mode == "mixed"
    inhib = sign_mode == "inhibitory"
    src = np.asarray(weights)
    w = np.empty(src.shape, np.int32)
    np.clip(src, -255 if inhib else (-256 if mixed else 0), 0 if inhib else 255, out=w, casting="unsafe")
    k = 8 - int(num_weight_bits) + int(mixed)
    if k < 0:
        raise SpikeforgeError(f"num_weight_bits={num_weight_bits} leaves {k} truncation bits (must be 1..8)")
    if k:
        if inhib:       # truncation acts on |w|
            np.negative(w, out=w)
            w &= ~np.int32((1 << k) - 1)
            np.negative(w, out=w)
        else:           # floor to a multiple of 2^k (two's complement: clear the low bits)
            w &= ~np.int32((1 << k) - 1)
    return w


def sign_mode_of(weights: np.ndarray) -> str:
    """Lava's determine_sign_mode."""
    w = np.asarray(weights)
    if w.size == 0 or w.min() >= 0:
        return "excitatory"
    if w.max() <= 0:
        return "inhibitory"
    return "mixed"


def shift_exp(acc: np.ndarray, weight_exp: int) -> np.ndarray:
    return acc << weight_exp if weight_exp > 0 else acc >> (-weight_exp)


def conv_matrix(weight: np.ndarray, in_shape: tuple[int, ...], stride: tuple[int, ...],
                padding: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> tuple[sp.csr_matrix,
                                                                                          tuple[int, ...]]:
    """CSR (n_out, n_in) of a 1-d/2-d cross-correlation (PyTorch's conv semantics) and its output shape.

    Input *indices* (1-based, 0 = padding) are unfolded with the geometry `conv2d` uses, so stride,
    padding, dilation and groups mean what PyTorch (the reference simulator) and Lava's Conv compute."""
    import torch
    import torch.nn.functional as F

    w = np.asarray(weight, dtype=np.float64)
    if w.ndim == 3:                                     # conv1d: treat as 2-d with height 1
        w = w[:, :, None, :]
        in_shape = (in_shape[0], 1, in_shape[1])
        stride, padding, dilation = (1, stride[0]), (0, padding[0]), (1, dilation[0])
    C, H, W = in_shape
    n_out_ch, Cg, kh, kw = w.shape
    if groups < 1 or C % groups or n_out_ch % groups or Cg != C // groups:
        raise SpikeforgeError(f"convolution weight {w.shape} does not fit {C} input channels in {groups} groups",
                              field="groups")
    idx = torch.arange(1, C * H * W + 1, dtype=torch.float64).reshape(1, C, H, W)
    cols = F.unfold(idx, (kh, kw), dilation=dilation, padding=padding, stride=stride)[0].numpy()
    Ho = (H + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    Wo = (W + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    L = cols.shape[1]
    if Ho * Wo != L or Ho < 1 or Wo < 1:
        raise SpikeforgeError(f"convolution geometry gives no output for input {in_shape}")
    kk = Cg * kh * kw
    Og = n_out_ch // groups
    src = cols.astype(np.int64).reshape(groups, kk, L)                  # (groups, Cg*kh*kw, L), 0 = padding
    src = np.repeat(src, Og, axis=0)                                     # (n_out_ch, kk, L)
    vals = np.broadcast_to(w.reshape(n_out_ch, kk, 1), src.shape)
    dst = np.broadcast_to((np.arange(n_out_ch)[:, None, None] * L + np.arange(L)[None, None, :]), src.shape)
    keep = (src > 0) & (vals != 0)
    m = sp.csr_matrix((vals[keep], (dst[keep], src[keep] - 1)), shape=(n_out_ch * L, C * H * W))
    m.sum_duplicates()
    out = (n_out_ch, Ho, Wo) if len(weight.shape) == 4 else (n_out_ch, Wo)
    return m, out


# ------------------------------------------------------------------------------------------------
# Program: plain data
# ------------------------------------------------------------------------------------------------


@dataclass
class Pop:
    """A Lava LIF process (one population; du/dv/vth shared, bias per neuron)."""

    name: str
    size: int
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    bias_start: int = 1          # Loihi step from which the bias is applied (emitted code sets it then)
    core: np.ndarray | None = None  # per-neuron core index (mapping); None = all on core 0
    #: steps after a spike during which v is held at 0 (not updated: that step's input to v is lost), as
    #: Lava's LIFRefractory and Loihi's refractory delay do; 0 = Lava's LIF
    refractory: int = 0

    @property
    def effective_bias(self) -> np.ndarray:
        m = self.bias_mant.astype(np.int64)
        e = self.bias_exp.astype(np.int64)
        return wrap32(np.where(e >= 0, m << np.maximum(e, 0), m >> np.maximum(-e, 0)))


@dataclass
class Conn:
    """A Lava Dense/Sparse (delays all 0) or DelayDense/DelaySparse connection."""

    name: str
    src: str
    dst: str
    weights: Any                 # (n_dst, n_src) int ndarray, or a CSR matrix for Sparse, as given to Lava
    weight_exp: int = 0
    num_weight_bits: int = 8
    sign_mode: str = "mixed"
    delays: Any = None           # (n_dst, n_src) int 0..62 (CSR with the weights' pattern when sparse), or None
    sparse: bool = False
    shared: int = 0              # weights of a shared (convolutional) kernel; 0 = every synapse stored
    kernel: np.ndarray | None = None  # Lava Conv: int kernel (C_out, C_in/groups, kh, kw), NIR layout
    conv: dict[str, Any] | None = None  # Lava Conv geometry: in_shape (C, H, W), stride, padding, dilation, groups

    def __post_init__(self) -> None:
        if self.kernel is not None and self.weights is None:
            g = self.conv or {}
            self.weights, _ = conv_matrix(np.asarray(self.kernel), tuple(g["in_shape"]), tuple(g["stride"]),
                                          tuple(g["padding"]), tuple(g["dilation"]), int(g["groups"]))
            self.weights = self.weights.astype(np.int64)
            self.shared = int(np.asarray(self.kernel).size)

    @property
    def max_delay(self) -> int:
        if self.delays is None:
            return 0
        d = self.delays.data if sp.issparse(self.delays) else np.asarray(self.delays)
        return int(d.max(initial=0))

    def effective(self) -> Any:
        """Effective int32 weights (dense array, or CSR without explicit zeros when sparse). Lava's Conv
        (fixed_pt) uses its kernel as given: no 8-bit clip, no truncation, weight_exp ignored."""
        if self.kernel is not None:
            w = sp.csr_matrix(self.weights, dtype=np.int64, copy=True)
            w.eliminate_zeros()
            return w
        if sp.issparse(self.weights):
            w = sp.csr_matrix(self.weights, copy=True)
            w.data = effective_weights(w.data, self.sign_mode, self.num_weight_bits)
            return w
        return effective_weights(self.weights, self.sign_mode, self.num_weight_bits)

    def nonzero(self) -> sp.csr_matrix:
        """Boolean CSR of the synapses that exist after Lava's weight rules (what the chip stores)."""
        w = self.effective()
        m = sp.csr_matrix(w != 0) if not sp.issparse(w) else (w != 0).tocsr()
        m.eliminate_zeros()
        return m

    @property
    def kind(self) -> str:
        if self.kernel is not None:
            return "Conv"
        base = "Sparse" if self.sparse else "Dense"
        return ("Delay" + base) if self.delays is not None else base


@dataclass
class Program:
    """A Loihi program: inputs (RingBuffers), LIF populations, connections, probes.

    spec (JSON) + arrays (npz) is the on-disk form: `to_data` / `from_data`.
    """

    inputs: dict[str, int]                       # name -> size
    pops: dict[str, Pop]
    conns: list[Conn]
    meta: dict[str, Any] = field(default_factory=dict)
    #: prepared connection tables reused across runs of the same program (not part of its data)
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_data(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays: dict[str, np.ndarray] = {}
        pops = []
        for p in self.pops.values():
            pops.append({"name": p.name, "size": p.size, "du": p.du, "dv": p.dv, "vth": p.vth,
                         "bias_start": p.bias_start, **({"refractory": p.refractory} if p.refractory else {})})
            arrays[f"pop/{p.name}/bias_mant"] = p.bias_mant.astype(np.int32)
            arrays[f"pop/{p.name}/bias_exp"] = p.bias_exp.astype(np.int32)
            if p.core is not None:
                arrays[f"pop/{p.name}/core"] = p.core.astype(np.int32)
        conns = []
        for c in self.conns:
            conns.append({"name": c.name, "src": c.src, "dst": c.dst, "weight_exp": c.weight_exp,
                          "num_weight_bits": c.num_weight_bits, "sign_mode": c.sign_mode,
                          "delays": c.delays is not None, "sparse": c.sparse, "kind": c.kind,
                          "csr": sp.issparse(c.weights), "shape": list(c.weights.shape), "shared": int(c.shared),
                          "conv": c.conv})
            if c.kernel is not None:
                arrays[f"conn/{c.name}/kernel"] = np.asarray(c.kernel).astype(np.int32)
            elif sp.issparse(c.weights):
                w = sp.csr_matrix(c.weights)
                w.sort_indices()
                arrays[f"conn/{c.name}/w_data"] = w.data.astype(np.int32)
                arrays[f"conn/{c.name}/w_indices"] = w.indices.astype(np.int32)
                arrays[f"conn/{c.name}/w_indptr"] = w.indptr.astype(np.int64)
                if c.delays is not None:
                    d = sp.csr_matrix(c.delays)
                    d.sort_indices()
                    if d.nnz != w.nnz or not np.array_equal(d.indices, w.indices):
                        raise SpikeforgeError(f"connection '{c.name}': sparse delays must share the weights' pattern")
                    arrays[f"conn/{c.name}/delays_data"] = d.data.astype(np.int32)
            else:
                arrays[f"conn/{c.name}/weights"] = np.asarray(c.weights).astype(np.int32)
                if c.delays is not None:
                    arrays[f"conn/{c.name}/delays"] = np.asarray(c.delays).astype(np.int32)
        spec = {"format": 1, "inputs": [{"name": k, "size": v} for k, v in self.inputs.items()],
                "pops": pops, "conns": conns, "meta": self.meta}
        return spec, arrays

    @classmethod
    def from_data(cls, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> Program:
        pops = {}
        for p in spec["pops"]:
            n = p["name"]
            pops[n] = Pop(name=n, size=int(p["size"]), du=int(p["du"]), dv=int(p["dv"]), vth=int(p["vth"]),
                          bias_mant=np.asarray(arrays[f"pop/{n}/bias_mant"]),
                          bias_exp=np.asarray(arrays[f"pop/{n}/bias_exp"]),
                          bias_start=int(p.get("bias_start", 1)),
                          core=arrays.get(f"pop/{n}/core"), refractory=int(p.get("refractory", 0)))
        conns = []
        for c in spec["conns"]:
            n = c["name"]
            if c.get("conv"):
                conns.append(Conn(name=n, src=c["src"], dst=c["dst"], weights=None, weight_exp=int(c["weight_exp"]),
                                  num_weight_bits=int(c["num_weight_bits"]), sign_mode=str(c["sign_mode"]),
                                  kernel=np.asarray(arrays[f"conn/{n}/kernel"]), conv=dict(c["conv"])))
                continue
            if c.get("csr"):
                shape = tuple(int(x) for x in c["shape"])
                idx, ptr = np.asarray(arrays[f"conn/{n}/w_indices"]), np.asarray(arrays[f"conn/{n}/w_indptr"])
                w: Any = sp.csr_matrix((np.asarray(arrays[f"conn/{n}/w_data"]), idx, ptr), shape=shape)
                d: Any = sp.csr_matrix((np.asarray(arrays[f"conn/{n}/delays_data"]), idx, ptr), shape=shape) \
                    if c.get("delays") else None
            else:
                w = np.asarray(arrays[f"conn/{n}/weights"])
                d = np.asarray(arrays[f"conn/{n}/delays"]) if c.get("delays") else None
            conns.append(Conn(name=n, src=c["src"], dst=c["dst"], weights=w,
                              weight_exp=int(c["weight_exp"]), num_weight_bits=int(c["num_weight_bits"]),
                              sign_mode=str(c["sign_mode"]), delays=d, sparse=bool(c.get("sparse", False)),
                              shared=int(c.get("shared", 0))))
        return cls(inputs={i["name"]: int(i["size"]) for i in spec["inputs"]}, pops=pops, conns=conns,
                   meta=dict(spec.get("meta", {})))

    def check(self) -> None:
        names = set(self.inputs) | set(self.pops)
        for c in self.conns:
            if c.src not in names or c.dst not in self.pops:
                raise SpikeforgeError(f"connection '{c.name}' joins unknown endpoints {c.src} -> {c.dst}")
            n_src = self.inputs.get(c.src) or self.pops[c.src].size
            if c.weights.shape != (self.pops[c.dst].size, n_src):
                raise SpikeforgeError(f"connection '{c.name}' weights {c.weights.shape} do not match "
                                      f"({self.pops[c.dst].size}, {n_src})")
            d = None if c.delays is None else (c.delays.data if sp.issparse(c.delays) else np.asarray(c.delays))
            if d is not None and (d.min(initial=0) < 0 or d.max(initial=0) > 63):
                raise SpikeforgeError(f"connection '{c.name}' delays outside 0..63")


# ------------------------------------------------------------------------------------------------
# Integer simulation
# ------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    spikes: dict[str, np.ndarray]        # pop -> (S, B, n) bool, S Loihi steps (row s-1 = step s)
    u: dict[str, np.ndarray]             # pop -> (S, B, n) int64 when probed
    v: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]        # event -> (S,) summed over batch
    layer_counts: dict[str, dict[str, float]]
    per_core: dict[str, np.ndarray] = field(default_factory=dict)   # (S, cores) summed over batch


def _tile_xy(core: np.ndarray, mesh: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    tile = np.asarray(core) // int(mesh.get("cores_per_tile", 4))
    tx = int(mesh.get("tiles_x", 8))
    return tile % tx, tile // tx


class _ConnState:
    def __init__(self, c: Conn, batch: int, src_core: np.ndarray | None, dst_core: np.ndarray | None,
                 mesh: dict[str, int] | None, n_cores: int):
        self.c = c
        w = c.effective()
        is_sp = sp.issparse(w)
        self.exp = 0 if c.kernel is not None else int(c.weight_exp)       # Lava's Conv ignores weight_exp
        n_dst, n_src = w.shape
        # Weights stored (n_src, n_dst): a spike selects a row. Small batches sum the rows of the sources
        # that spiked (event-driven, exact int); large batches use a float matmul, exact because partial
        # sums stay below 2^24 (float32) or 2^53 (float64).
        aw = abs(w)                                 # |w| <= 2^15 (Conv kernels) / 256: no int32 overflow below
        if is_sp:
            row_abs = int(np.asarray(aw.astype(np.int64).sum(axis=1)).max(initial=0))
            wmax = int(aw.max()) if w.nnz else 0
        else:
            row_abs = int(aw.sum(axis=1, dtype=np.int64).max(initial=0))
            wmax = int(aw.max(initial=0))
        del aw
        exact32 = max(wmax, 256) * n_src < (1 << 24)
        self.fdtype = np.float32 if exact32 else np.float64
        self.small_batch = batch <= 16
        if c.delays is None:
            mats = [(0, w)]
            self.buf = np.zeros((batch, n_dst), np.int64)
        elif is_sp:
            dd = c.delays.data
            mats = []
            for k in np.unique(dd[w.data != 0]):
                m = sp.csr_matrix((np.where(dd == k, w.data, 0), w.indices, w.indptr), shape=w.shape)
                m.eliminate_zeros()
                mats.append((int(k), m))
            self.buf = np.zeros((batch, n_dst, c.max_delay + 1), np.int64)
        else:
            d = np.asarray(c.delays).astype(np.int64)
            mats = [(int(k), np.where(d == k, w, 0)) for k in np.unique(d[w != 0])]
            self.buf = np.zeros((batch, n_dst, c.max_delay + 1), np.int64)
        if is_sp:
            w.eliminate_zeros()
            self.slots = [(k, sp.csr_matrix(m.T.astype(self.fdtype))) for k, m in mats]
            nz = (w != 0).tocsr()
            self.fanout = np.asarray(nz.sum(axis=0)).ravel().astype(np.float64)
        else:
            self.slots = []
            for k, m in mats:
                wt = np.empty((n_src, n_dst), self.fdtype)
                wt[...] = m.T                                           # one converting transpose copy
                self.slots.append((k, wt))
            nz = None
            self.fanout = np.count_nonzero(w, axis=0).astype(np.float64)    # synapses per source neuron
        self.route = None
        if dst_core is not None and mesh is not None:
            if nz is None:
                nz = w != 0
            # per source neuron: packets (distinct other destination cores), tile hops x / y, synops per core
            onehot = sp.csr_matrix((np.ones(n_dst), (np.arange(n_dst), np.asarray(dst_core))), shape=(n_dst, n_cores))
            per_core = (sp.csr_matrix(nz.T, dtype=np.float64) @ onehot).toarray()  # (n_src, n_cores)
            reached = per_core > 0
            own = np.full(n_src, -1) if src_core is None else np.asarray(src_core)
            sx, sy = _tile_xy(np.maximum(own, 0), mesh)
            cx, cy = _tile_xy(np.arange(n_cores), mesh)
            other = reached & (np.arange(n_cores)[None, :] != own[:, None])
            hx = (np.abs(cx[None, :] - sx[:, None]) * other).sum(axis=1)
            hy = (np.abs(cy[None, :] - sy[:, None]) * other).sum(axis=1)
            cpc = int(mesh.get("cores_per_chip", 1 << 30))
            chip_other = reached & ((np.arange(n_cores)[None, :] // cpc) != (np.maximum(own, 0)[:, None] // cpc))
            # (n_src, 4): packets to other cores, E-W hops, N-S hops, packets to other chips
            self.route = np.stack([other.sum(axis=1), hx, hy, chip_other.sum(axis=1)], axis=1).astype(np.float64)
            self.per_core = per_core
        # float64 sums are exact for |sum| < 2^53 (255 * 2^7 * n_src is far below)
        self.delayed = c.delays is not None
        # largest |value| this connection can send in one step (every source spiking), after weight_exp
        self.sent_bound = (row_abs << max(self.exp, 0)) + len(self.slots)
        if not -64 <= self.exp <= 64:     # beyond float scaling by 2^exp: take the int64 path
            self.sent_bound = max(self.sent_bound, 1 << 60)
        self.n_src, self.n_dst = n_src, n_dst
        # Lava's Conv sends signed_clamp(a, 24): a wrap modulo 2^24, only reachable above 2^23
        self.wrap24 = c.kernel is not None and self.sent_bound >= (1 << 23)

    def deliver_layered(self, src: np.ndarray, rows: np.ndarray, cols: np.ndarray, out: np.ndarray,
                        exact_float: bool) -> None:
        """Add to out (S, B, n_dst) what this connection sends at every step of a whole run at once.

        src (S, B, n_src) are the source's spikes; rows/cols their nonzero (step * B + batch, neuron).
        Sparse activity (the usual case) is event-driven: a CSR matrix of the spikes times the weight
        table sums only the rows of sources that fired; dense activity uses one BLAS product. Both sum
        integers in float32/float64 below 2^24/2^53, so they are exact; weight_exp is a power-of-two
        scale (exact) and a floor for negative exponents.
        """
        S, B = src.shape[0], src.shape[1]
        flat = src.reshape(S * B, -1)
        # small products: one BLAS call beats building a CSR matrix (~0.3 ms of scipy checks)
        dense = rows.size >= SPARSE_DENSITY * flat.size or flat.size * self.n_dst < SPARSE_MIN_WORK
        for k, wt in self.slots:
            lag = 1 + k                                                    # sent at step s, felt at s + 1 + d
            if lag >= S:
                continue
            m = (S - lag) * B
            if dense:
                acc = np.asarray(flat[:m].astype(self.fdtype) @ wt)
            else:
                nnz = int(np.searchsorted(rows, m))
                indptr = np.zeros(m + 1, np.int64)
                np.cumsum(np.bincount(rows[:nnz], minlength=m), out=indptr[1:])
            if not dense and kernels.AVAILABLE and not sp.issparse(wt):
                acc = kernels.event_sum(indptr, cols[:nnz], wt, m, self.n_dst)      # fused, exact (ints)
            elif not dense:
                mat = sp.csr_matrix((np.ones(nnz, self.fdtype), cols[:nnz], indptr), shape=(m, self.n_src))
                acc = mat @ wt
                acc = acc.toarray() if sp.issparse(acc) else np.asarray(acc)
            if self.wrap24:
                acc = wrap24(np.rint(acc).astype(np.int64)).astype(acc.dtype if exact_float else np.int64)
            if exact_float:
                if self.exp > 0:
                    acc *= float(1 << self.exp)
                elif self.exp < 0:
                    acc *= 2.0 ** self.exp
                    np.floor(acc, out=acc)
                out[lag:] += acc.reshape(S - lag, B, -1)
            else:
                out[lag:] += shift_exp(acc.astype(np.int64), self.exp).reshape(S - lag, B, -1)

    def send(self) -> np.ndarray:
        out = self.buf[..., 0] if self.delayed else self.buf
        return wrap32(out)

    def _accumulate(self, s: np.ndarray, wt: np.ndarray) -> np.ndarray:
        n_active = int(np.count_nonzero(s))
        if n_active == 0:
            return np.zeros((s.shape[0], wt.shape[1]), np.int64)
        if sp.issparse(wt):
            return (sp.csr_matrix(s.astype(self.fdtype)) @ wt).toarray().astype(np.int64)
        if self.small_batch and n_active < 0.2 * s.size:
            out = np.empty((s.shape[0], wt.shape[1]), self.fdtype)
            for b in range(s.shape[0]):
                out[b] = wt[np.flatnonzero(s[b])].sum(axis=0)
            return out.astype(np.int64)
        return (s.astype(self.fdtype) @ wt).astype(np.int64)

    def receive(self, s: np.ndarray) -> None:
        if not self.delayed:
            if self.slots:
                self.buf = shift_exp(self._accumulate(s, self.slots[0][1]), self.exp)
                if self.wrap24:
                    self.buf = wrap24(self.buf)
            else:
                self.buf = np.zeros_like(self.buf)
            return
        buf = self.buf
        buf[..., 0] = 0
        buf = np.roll(buf, -1, axis=-1)
        for k, wt in self.slots:
            buf[..., k] += shift_exp(self._accumulate(s, wt), self.exp)
        # slots without any weight contribute floor(0) = 0
        self.buf = buf


def _check_inputs(prog: Program, inputs: dict[str, np.ndarray]) -> tuple[int, int]:
    S = B = None
    for name, size in prog.inputs.items():
        if name not in inputs:
            raise InputError(f"no data for program input '{name}'")
        x = np.asarray(inputs[name])
        if x.ndim != 3 or x.shape[2] != size:
            raise InputError(f"program input '{name}' must be (steps, batch, {size}), got {x.shape}")
        if S is None:
            S, B = x.shape[0], x.shape[1]
        elif x.shape[:2] != (S, B):
            raise InputError("all program inputs must share steps and batch")
    if S is None:
        raise InputError("program has no inputs")
    return int(S), int(B)


def feedforward_order(prog: Program) -> list[str] | None:
    """Populations in an order where every connection goes forward; None when the program has a loop."""
    preds = {n: {c.src for c in prog.conns if c.dst == n and c.src in prog.pops} for n in prog.pops}
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(prog.pops):
        ready = [n for n in prog.pops if n not in done and preds[n] <= done]
        if not ready:
            return None
        for n in ready:
            order.append(n)
            done.add(n)
    return order


def run_program(prog: Program, inputs: dict[str, np.ndarray], *, probes: bool = False,
                record_v: tuple[str, ...] = (), record_u: tuple[str, ...] = (), method: str = "auto") -> RunResult:
    """Run `prog` for S Loihi steps. inputs: name -> (S, B, n) of 0/1 (row s-1 is sent at step s).

    method: "layered" (feed-forward programs: each population over the whole run at once, synaptic input of
    all steps in one event-driven sparse (or BLAS) product), "stepwise" (any program: all populations step by step), "auto".
    Both are bit-exact; tests check them against each other and against Lava.
    """
    prog.check()
    S, B = _check_inputs(prog, inputs)
    order = feedforward_order(prog) if method in ("auto", "layered") else None
    if order is None:
        if method == "layered":
            raise SpikeforgeError("program has recurrent connections; use method='stepwise'")
        return _run_stepwise(prog, inputs, S, B, probes=probes, record_v=record_v, record_u=record_u)
    # the layered path holds whole-run arrays per population: bound memory by splitting the batch
    widest = max((p.size for p in prog.pops.values()), default=1)
    chunk = max(1, int(LAYERED_ELEMENTS // max(1, S * widest)))
    if chunk >= B:
        return _run_layered(prog, inputs, S, B, order, probes=probes, record_v=record_v, record_u=record_u)
    parts = [_run_layered(prog, {k: np.asarray(v)[:, b:b + chunk] for k, v in inputs.items()}, S,
                          min(chunk, B - b), order, probes=probes, record_v=record_v, record_u=record_u)
             for b in range(0, B, chunk)]
    return _merge(parts)


#: source activity (fraction of spikes) below which the layered path sums rows event-driven (CSR), not BLAS
SPARSE_DENSITY = 0.15
#: ... and only when the dense product would take at least this many multiply-adds
SPARSE_MIN_WORK = 5_000_000

#: elements (steps x batch x neurons) of one population the layered path holds at once
LAYERED_ELEMENTS = 4_000_000


def _merge(parts: list[RunResult]) -> RunResult:
    """Concatenate batch chunks: states along the batch axis, counts summed."""
    first = parts[0]
    cat = {
        key: {n: np.concatenate([getattr(p, key)[n] for p in parts], axis=1) for n in getattr(first, key)}
        for key in ("spikes", "u", "v")
    }
    counts = {k: sum(p.counts[k] for p in parts) for k in first.counts}
    layer = {n: {k: sum(p.layer_counts[n][k] for p in parts) for k in first.layer_counts[n]}
             for n in first.layer_counts}
    per_core = {k: sum(p.per_core[k] for p in parts) for k in first.per_core}
    return RunResult(spikes=cat["spikes"], u=cat["u"], v=cat["v"], counts=counts, layer_counts=layer,
                     per_core=per_core)


def _v_clip_needed(pop: Pop, umax: float, umin: float, bias: np.ndarray, S: int) -> tuple[bool, bool]:
    """Whether v can leave +-(2^23 - 1) before its clip (upper, lower), from bounds on u and the bias.

    Stored v never exceeds P = max(vth << 6, 0) (above it the neuron fires and v <- 0), and
    trunc0(v keep / 4096) <= P, so v <= P + max(u, 0) + max(bias, 0) before the clip. Below, there is no
    reset: |v| <= N min(S, 4096 / dv) with N = |min(u, 0) + min(bias, 0)|.
    """
    cv = (DECAY_UNITY - int(pop.dv)) / DECAY_UNITY
    hi = float(MAX_UV - 1)
    p = max(float(int(pop.vth) << VTH_SHIFT), 0.0)
    bmax = max(float(bias.max(initial=0)), 0.0)
    bmin = min(float(bias.min(initial=0)), 0.0)
    upper = p + max(umax, 0.0) + bmax >= hi
    neg = -(min(umin, 0.0) + bmin)
    lower = neg * (S if cv >= 1.0 else min(S, 1.0 / (1.0 - cv))) >= hi
    return bool(upper), bool(lower)


def _lif_loop(act: np.ndarray, pop: Pop, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                  np.ndarray | None]:
    """Integrate one population over all steps. act: (S, B, n) float64 or int64 holding exact integers,
    already wrap32(a_in << 6). Returns u, v (float64 holding exact integers), spikes, (S, B, n) each, and
    the neurons' activity when the compiled kernel computed it (else None).

    Fast path (u provably cannot wrap): u and v live side by side in one (2, B, n) float64 slice per step,
    so each step is one multiply by (keep_u, keep_v) / 4096 (exact: a power-of-two division), one trunc,
    two adds, one compare and the reset; the clip is skipped when bounds show it cannot act. Otherwise
    the general path below handles the +-2^24 correction and int32 wrap step by step.
    """
    S, B, n = act.shape
    keep_u = DECAY_UNITY - (int(pop.du) + 1)
    cu = keep_u / DECAY_UNITY
    amax = float(np.abs(act).max(initial=0))
    # |u_t| <= amax min(t, 1 / (1 - cu)) (cu < 1 always): below 2^23 - 1 no wrap can happen
    if pop.refractory or amax * min(S, 1.0 / (1.0 - cu)) >= MAX_UV - 1:
        return (*_lif_loop_general(act, pop, bias), None)
    cv = (DECAY_UNITY - int(pop.dv)) / DECAY_UNITY
    vth = float(int(pop.vth) << VTH_SHIFT)
    biasf = np.asarray(bias, np.float64)
    has_bias = bool(np.any(biasf != 0))
    start = int(pop.bias_start)
    umax_b = amax * min(S, 1.0 / (1.0 - cu))
    clip_hi, clip_lo = _v_clip_needed(pop, umax_b, -umax_b, biasf, S)
    lo, hi = float(-MAX_UV + 1), float(MAX_UV - 1)
    if kernels.AVAILABLE:
        actc = np.ascontiguousarray(act, dtype=np.float64)
        u_h, v_h, s_h, active = kernels.lif_fast(actc, float(cu), float(cv), vth,
                                                 np.ascontiguousarray(biasf.reshape(-1)), start, has_bias,
                                                 clip_hi, clip_lo, lo, hi)
        return u_h, v_h, s_h, active
    s_h = np.empty((S, B, n), bool)
    actf = act if act.dtype == np.float64 else act.astype(np.float64)
    if cu == 0.0:
        # du = 4095 (plain LIF): u is the step's input, only v needs the loop
        u_h = actf
        v_h = np.empty((S, B, n), np.float64)
        prev = np.zeros((B, n))
        for t, (v, uu, spk) in enumerate(zip(v_h, u_h, s_h)):
            if cv == 1.0:                                  # dv = 0 (IF): no leak
                np.add(prev, uu, out=v)
            else:
                np.multiply(prev, cv, out=v)
                np.trunc(v, out=v)
                v += uu
            if has_bias and t + 1 >= start:
                v += biasf
            if clip_hi:
                np.minimum(v, hi, out=v)
            if clip_lo:
                np.maximum(v, lo, out=v)
            np.greater(v, vth, out=spk)
            np.putmask(v, spk, 0.0)
            prev = v
        return u_h, v_h, s_h, None
    h = np.empty((S, 2, B, n), np.float64)
    coef = np.array([cu, cv]).reshape(2, 1, 1)
    prev = np.zeros((2, B, n))
    for t, (x, a, spk) in enumerate(zip(h, actf, s_h)):
        np.multiply(prev, coef, out=x)
        np.trunc(x, out=x)
        u, v = x
        u += a
        v += u
        if has_bias and t + 1 >= start:
            v += biasf
        if clip_hi:
            np.minimum(v, hi, out=v)
        if clip_lo:
            np.maximum(v, lo, out=v)
        np.greater(v, vth, out=spk)
        np.putmask(v, spk, 0.0)
        prev = x
    return h[:, 0], h[:, 1], s_h, None


def _lif_loop_general(act: np.ndarray, pop: Pop, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The step-by-step LIF with u's +-2^24 correction and int32 wrap (inputs large enough to wrap u)."""
    S, B, n = act.shape
    keep_u = DECAY_UNITY - (int(pop.du) + 1)
    keep_v = DECAY_UNITY - int(pop.dv)
    cu, cv = keep_u / DECAY_UNITY, keep_v / DECAY_UNITY
    vth = float(int(pop.vth) << VTH_SHIFT)
    actf = act.astype(np.float64)
    amax = float(np.abs(actf).max(initial=0))
    s_h = np.empty((S, B, n), bool)
    biasf = bias.astype(np.float64)
    start = int(pop.bias_start)
    lo, hi = float(-MAX_UV + 1), float(MAX_UV - 1)
    huge_act = amax >= 2.0 ** 31 - 2.0 ** 25          # int32 addition in Lava wraps only near 2^31

    def wrap_u(uu: np.ndarray) -> np.ndarray:
        if huge_act:
            uu = wrap32(uu.astype(np.int64)).astype(np.float64)
        if np.abs(uu).max(initial=0) >= MAX_UV:
            w1 = np.where(uu > MAX_UV, uu - 2 * MAX_UV, uu)
            uu = np.where(w1 <= -MAX_UV, uu + 2 * MAX_UV, w1)
        return uu

    # u does not depend on v: all steps first (no loop at all for du = 4095, where u is the step's input)
    if cu == 0.0:
        u_h = wrap_u(actf)
    else:
        u_h = np.empty((S, B, n), np.float64)
        u = np.zeros((B, n))
        for t in range(S):
            uu = u_h[t]
            np.multiply(u, cu, out=uu)
            np.trunc(uu, out=uu)
            uu += actf[t]
            uu[...] = wrap_u(uu)
            u = uu
    # |v| <= (max|u| + max|bias|) / (1 - cv): skip the clip when that cannot reach 2^23 - 1
    umax = float(np.abs(u_h).max(initial=0)) + float(np.abs(biasf).max(initial=0))
    need_clip = cv >= 1.0 or umax / (1.0 - cv) >= hi
    v_h = np.empty((S, B, n), np.float64)
    v = np.zeros((B, n))
    held = np.zeros((B, n), np.int64)       # refractory steps left (v held at 0, not updated)
    for t in range(S):
        vv = v_h[t]
        if cv == 1.0:                       # dv = 0: no leak (IF)
            np.add(v, u_h[t], out=vv)
        else:
            np.multiply(v, cv, out=vv)
            np.trunc(vv, out=vv)
            vv += u_h[t]
        if t + 1 >= start:
            vv += biasf
        if need_clip:
            np.minimum(vv, hi, out=vv)
            np.maximum(vv, lo, out=vv)
        if pop.refractory:
            np.copyto(vv, v, where=held > 0)
            held = np.maximum(held - 1, 0)
        spk = s_h[t]
        np.greater(vv, vth, out=spk)
        np.copyto(vv, 0.0, where=spk)
        if pop.refractory:
            held[spk] = int(pop.refractory)
        v = vv
    return u_h, v_h, s_h


def _run_layered(prog: Program, inputs: dict[str, np.ndarray], S: int, B: int, order: list[str], *,
                 probes: bool, record_v: tuple[str, ...], record_u: tuple[str, ...] = ()) -> RunResult:
    mesh = prog.meta.get("mesh")
    cores = {n: p.core for n, p in prog.pops.items()}
    if mesh is not None and any(c is None for c in cores.values()):
        mesh = None
    n_cores = (max(int(c.max(initial=0)) for c in cores.values()) + 1) if mesh is not None and cores else 0
    spikes: dict[str, np.ndarray] = {name: np.asarray(inputs[name]) != 0 for name in prog.inputs}
    counts = {k: np.zeros(S) for k in ("synops", "neuron_updates", "active_updates", "spikes", "packets",
                                       "hops_x", "hops_y", "interchip_packets")}
    core_syn = np.zeros((S, n_cores))
    core_act = np.zeros((S, n_cores))
    layer = {n: {"synops": 0.0, "spikes": 0.0, "active_updates": 0.0} for n in prog.pops}
    pu: dict[str, np.ndarray] = {}
    pv: dict[str, np.ndarray] = {}

    def state_of(c: Conn) -> _ConnState:
        key = ("layered", c.name, n_cores)
        cs = prog.cache.get(key)
        if cs is None:
            cs = prog.cache[key] = _ConnState(c, 1, cores.get(c.src), cores.get(c.dst), mesh, n_cores)
        return cs

    for n in order:
        pop = prog.pops[n]
        states = [state_of(c) for c in prog.conns if c.dst == n]
        # |a_in| bound over all steps: float64 holds every sum exactly below 2^53, int32 never wraps below 2^31
        bound = sum(cs.sent_bound for cs in states) << ACT_SHIFT
        exact_float = bound < (1 << 52)
        a_in = np.zeros((S, B, pop.size), np.float64 if exact_float else np.int64)
        for cs in states:
            src = spikes[cs.c.src]                                         # (S, B, n_src) bool
            flat_idx = np.flatnonzero(src)
            rows, cols = np.divmod(flat_idx, src.shape[-1])              # (step * B + batch, neuron), sorted
            cs.deliver_layered(src, rows, cols, a_in, exact_float)
            syn = np.bincount(rows, weights=cs.fanout[cols], minlength=S * B).reshape(S, B)
            counts["synops"] += syn.sum(axis=1)
            layer[n]["synops"] += float(syn.sum())
            if cs.route is not None:
                fs = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(S * B, src.shape[-1]))
                r = np.asarray(fs @ cs.route).reshape(S, B, 4).sum(axis=1)
                counts["packets"] += r[:, 0]
                counts["hops_x"] += r[:, 1]
                counts["hops_y"] += r[:, 2]
                counts["interchip_packets"] += r[:, 3]
                core_syn += np.asarray(fs @ cs.per_core).reshape(S, B, -1).sum(axis=1)
        bias = pop.effective_bias.reshape(1, -1)
        if bound >= (1 << 31):
            # Lava sums channels and shifts in int32: wrapping once at the end is the same modulo 2^32
            a_in = wrap32(a_in.astype(np.int64))
            act = wrap32(a_in << ACT_SHIFT)
        else:
            act = a_in
            a_in = None                                    # act is a_in * 64: the same zeros (active below)
            act *= float(1 << ACT_SHIFT)
        u_h, v_h, s_h, active = _lif_loop(act, pop, bias)
        spikes[n] = s_h
        # a neuron is active when it received input, held state (u or v non-zero before the step), or has
        # its bias switched on
        if active is None:                                 # (the compiled kernel computes it on the fly)
            active = (act if a_in is None else a_in) != 0
            if u_h.base is not None and u_h.base is v_h.base and u_h.base.shape == (S, 2, B, pop.size):
                active[1:] |= (u_h.base[:-1] != 0).any(axis=1)        # fused path: one contiguous (S, 2, B, n)
            else:
                active[1:] |= (u_h[:-1] != 0) | (v_h[:-1] != 0)
        if np.any(bias != 0):
            start = max(0, int(pop.bias_start) - 1)
            active[start:] |= (bias != 0)[None]
        act_t = active.sum(axis=(1, 2)).astype(np.float64)
        counts["active_updates"] += act_t
        counts["neuron_updates"] += B * pop.size
        spk_t = s_h.sum(axis=(1, 2)).astype(np.float64)
        counts["spikes"] += spk_t
        layer[n]["spikes"] += float(spk_t.sum())
        layer[n]["active_updates"] += float(act_t.sum())
        if n_cores:
            onehot = np.zeros((pop.size, n_cores))
            onehot[np.arange(pop.size), pop.core] = 1.0
            core_act += active.sum(axis=1) @ onehot
        if probes or n in record_u:
            pu[n] = u_h.astype(np.int64)
        if probes or n in record_v:
            pv[n] = v_h.astype(np.int64)
    core_size = np.zeros(n_cores)
    if n_cores:
        for p in prog.pops.values():
            core_size += np.bincount(p.core, minlength=n_cores) * B
    per_core = {"synops": core_syn, "active_updates": core_act, "neurons": core_size} if n_cores else {}
    return RunResult(spikes={n: spikes[n] for n in prog.pops}, u=pu, v=pv, counts=counts, layer_counts=layer,
                     per_core=per_core)


def _run_stepwise(prog: Program, inputs: dict[str, np.ndarray], S: int, B: int, *, probes: bool,
                  record_v: tuple[str, ...], record_u: tuple[str, ...] = ()) -> RunResult:
    mesh = prog.meta.get("mesh")
    cores = {n: p.core for n, p in prog.pops.items()}
    if mesh is not None and any(c is None for c in cores.values()):
        mesh = None
    n_cores = (max(int(c.max(initial=0)) for c in cores.values()) + 1) if mesh is not None and cores else 0
    conns = [_ConnState(c, B, cores.get(c.src), cores.get(c.dst), mesh, n_cores) for c in prog.conns]
    core_syn = np.zeros((S, n_cores))
    core_act = np.zeros((S, n_cores))
    by_dst: dict[str, list[_ConnState]] = {n: [] for n in prog.pops}
    by_src: dict[str, list[_ConnState]] = {}
    for cs in conns:
        by_dst[cs.c.dst].append(cs)
        by_src.setdefault(cs.c.src, []).append(cs)
    u = {n: np.zeros((B, p.size), np.int64) for n, p in prog.pops.items()}
    v = {n: np.zeros((B, p.size), np.int64) for n, p in prog.pops.items()}
    bias = {n: p.effective_bias.reshape(1, -1) for n, p in prog.pops.items()}
    vth_eff = {n: int(p.vth) << VTH_SHIFT for n, p in prog.pops.items()}
    keep_u = {n: DECAY_UNITY - (int(p.du) + 1) for n, p in prog.pops.items()}
    keep_v = {n: DECAY_UNITY - int(p.dv) for n, p in prog.pops.items()}
    spikes = {n: np.zeros((S, B, p.size), bool) for n, p in prog.pops.items()}
    held = {n: np.zeros((B, p.size), np.int64) for n, p in prog.pops.items()}   # refractory steps left
    pu = {n: np.zeros((S, B, prog.pops[n].size), np.int64) for n in prog.pops if probes or n in record_u}
    pv = {n: np.zeros((S, B, prog.pops[n].size), np.int64) for n in prog.pops if probes or n in record_v}
    counts = {k: np.zeros(S) for k in ("synops", "neuron_updates", "active_updates", "spikes", "packets",
                                       "hops_x", "hops_y", "interchip_packets")}
    layer = {n: {"synops": 0.0, "spikes": 0.0, "active_updates": 0.0} for n in prog.pops}
    for s in range(S):
        step = s + 1
        # 1. every connection sends what it accumulated last step
        a_in = {n: None for n in prog.pops}
        for n, lst in by_dst.items():
            acc = None
            for cs in lst:
                out = cs.send()
                acc = out if acc is None else wrap32(acc + out)
            a_in[n] = acc
        # 2. neurons update
        cur: dict[str, np.ndarray] = {}
        for n, p in prog.pops.items():
            ai = a_in[n]
            act = np.zeros((B, p.size), np.int64) if ai is None else wrap32(ai << ACT_SHIFT)
            uu = wrap32(trunc_decay(u[n], keep_u[n]) + act)
            wrapped = np.where(uu > MAX_UV, uu - 2 * MAX_UV, uu)
            uu = np.where(wrapped <= -MAX_UV, uu + 2 * MAX_UV, wrapped)
            b = bias[n] if step >= p.bias_start else 0
            vv = wrap32(trunc_decay(v[n], keep_v[n]) + uu + b)
            vv = np.clip(vv, -MAX_UV + 1, MAX_UV - 1)
            if p.refractory:
                vv = np.where(held[n] > 0, v[n], vv)
                held[n] = np.maximum(held[n] - 1, 0)
            spk = vv > vth_eff[n]
            if p.refractory:
                held[n][spk] = int(p.refractory)
            active = (ai != 0) if ai is not None else np.zeros((B, p.size), bool)
            active = active | (u[n] != 0) | (v[n] != 0) | (np.broadcast_to(b, vv.shape) != 0)
            vv = np.where(spk, 0, vv)
            u[n], v[n] = uu, vv
            spikes[n][s] = spk
            cur[n] = spk
            if n in pu:
                pu[n][s] = uu
            if n in pv:
                pv[n][s] = vv
            n_act = float(active.sum())
            if n_cores:
                core_act[s] += np.bincount(p.core, weights=active.sum(axis=0), minlength=n_cores)
            counts["neuron_updates"][s] += B * p.size
            counts["active_updates"][s] += n_act
            n_spk = float(spk.sum())
            counts["spikes"][s] += n_spk
            layer[n]["spikes"] += n_spk
            layer[n]["active_updates"] += n_act
        # 3. sources: inputs send this step's column
        for name in prog.inputs:
            cur[name] = np.asarray(inputs[name][s]) != 0
        # 4. connections receive this step's spikes
        for src, lst in by_src.items():
            sp = cur[src]
            for cs in lst:
                cs.receive(sp)
                sf = sp.astype(np.float64)
                syn = float((sf @ cs.fanout).sum())
                counts["synops"][s] += syn
                if cs.c.dst in layer:
                    layer[cs.c.dst]["synops"] += syn
                if cs.route is not None:
                    r = (sf @ cs.route).sum(axis=0)
                    counts["packets"][s] += r[0]
                    counts["hops_x"][s] += r[1]
                    counts["hops_y"][s] += r[2]
                    counts["interchip_packets"][s] += r[3]
                    core_syn[s] += (sf @ cs.per_core).sum(axis=0)
    core_size = np.zeros(n_cores)
    if n_cores:
        for p in prog.pops.values():
            core_size += np.bincount(p.core, minlength=n_cores) * B
    per_core = {"synops": core_syn, "active_updates": core_act, "neurons": core_size} if n_cores else {}
    return RunResult(spikes=spikes, u=pu, v=pv, counts=counts, layer_counts=layer, per_core=per_core)


# ------------------------------------------------------------------------------------------------
# The Emulator plug-in: NIR-level inputs/outputs around run_program
# ------------------------------------------------------------------------------------------------


def program_of(artifact: Artifact) -> Program:
    spec = artifact.meta.get("program")
    if spec is None:
        raise SpikeforgeError("artifact has no Loihi program (was it compiled for a loihi board?)")
    return Program.from_data(spec, artifact.arrays)


def probe_states(artifact: Artifact, prog: Program, res: RunResult, T: int) -> dict[str, np.ndarray]:
    """Probes under the Trace contract: ``<nir node>.s`` (and ``.v``, ``.i`` in the reference's float units:
    the fixed-point state divided by the per-neuron scale the lowering chose, an exact power-free division)
    on the reference's time axis, shaped like the node; plus the raw Lava state ``loihi/<pop>/{s,u,v}``
    (Loihi steps x batch x neurons, integers) that the emitted network.py also writes."""
    states: dict[str, np.ndarray] = {}
    layer_map = artifact.meta.get("layer_map") or {n: n for n in prog.pops}
    shapes = artifact.meta.get("pop_shapes", {})
    offsets = {L["node"]: int(L["offset"]) for L in artifact.meta.get("layers", [])}
    for n in prog.pops:
        states[f"loihi/{n}/s"] = res.spikes[n]
        states[f"loihi/{n}/u"] = res.u[n]
        states[f"loihi/{n}/v"] = res.v[n]
    for node, pop in layer_map.items():
        if pop not in prog.pops or pop not in offsets:
            continue
        off = offsets[pop]
        B = res.spikes[pop].shape[1]
        shape = tuple(shapes.get(pop) or (prog.pops[pop].size,))

        def cut(a: np.ndarray, off: int = off, B: int = B, shape: tuple = shape) -> np.ndarray:
            return np.asarray(a[off - 1: off - 1 + T]).reshape(T, B, *shape)

        if artifact.meta.get("pop_spiking", {}).get(pop, True):
            states[f"{node}.s"] = cut(res.spikes[pop]).astype(np.float32)
        sv = artifact.arrays.get(f"probe/{pop}/v_scale")
        if sv is not None:
            states[f"{node}.v"] = cut(res.v[pop] / np.asarray(sv, np.float64)).astype(np.float32)
        si = artifact.arrays.get(f"probe/{pop}/i_scale")
        if si is not None:
            states[f"{node}.i"] = cut(res.u[pop] / np.asarray(si, np.float64)).astype(np.float32)
    return states


class LoihiEmulator(Emulator):
    """Runs a compiled Loihi artifact bit-exactly as Lava fixed_pt would, on a whole batch at once.

    NIR time t (what the reference simulator calls step t) is Loihi step t + offset of each layer: the
    emulator pads the inputs with `latency` zero steps and returns outputs re-aligned to NIR time.
    """

    samples_independent = True  # fixed-point arithmetic per sample, no random stream

    def merge(self, parts: list[Trace]) -> Trace:
        """Per-core counts in meta are sums over the batch (neurons too: size x batch): they add up."""
        out = Trace.concat(parts)
        cores = [p.meta.get("per_core") or {} for p in parts]
        if all(cores):
            out.meta["per_core"] = {k: np.sum([np.asarray(c[k]) for c in cores], axis=0) for k in cores[0]}
        return out

    def run(self, artifact: Artifact, inputs: dict[str, np.ndarray], *, probes: bool = False) -> Trace:
        prog = program_of(artifact)
        io = artifact.meta["io"]
        latency = int(io["latency"])
        pin: dict[str, np.ndarray] = {}
        T = B = None
        for nir_name, pname in io["inputs"].items():
            if nir_name not in inputs:
                raise InputError(f"no data for input node '{nir_name}'; got keys {sorted(inputs)}")
            x = np.asarray(inputs[nir_name])
            if x.ndim < 2:
                raise InputError(f"input '{nir_name}' must be shaped (time, batch, ...), got {x.shape}")
            x = x.reshape(x.shape[0], x.shape[1], -1)
            if x.shape[2] != prog.inputs[pname]:
                raise InputError(f"input '{nir_name}' has {x.shape[2]} values per sample; the program "
                                 f"expects {prog.inputs[pname]}")
            if np.any((x != 0) & (x != 1)):
                raise InputError(f"input '{nir_name}' must be binary spikes (0/1) for Loihi")
            T, B = x.shape[0], x.shape[1]
            pad = np.zeros((T + latency, B, x.shape[2]), bool)
            pad[:T] = x != 0
            pin[pname] = pad
        v_pops = tuple(o["pop"] for o in io["outputs"].values() if o["var"] == "v")
        u_pops = tuple(o["pop"] for o in io["outputs"].values() if o["var"] == "u")
        res = run_program(prog, pin, probes=probes, record_v=v_pops, record_u=u_pops)
        outputs: dict[str, np.ndarray] = {}
        for out_name, o in io["outputs"].items():
            off = int(o["offset"])        # Loihi step (1-based) holding NIR time 0
            pop = o["pop"]
            if o["var"] == "s":
                arr = res.spikes[pop][off - 1: off - 1 + T].astype(np.float32)
            else:
                # v of a non-spiking neuron, or u of a readout (+ the readout's float bias, added exactly)
                res_x = res.v[pop] if o["var"] == "v" else res.u[pop]
                scale = np.asarray(artifact.arrays[f"out/{out_name}/scale"], dtype=np.float64)
                val = res_x[off - 1: off - 1 + T] / scale
                if f"out/{out_name}/offset" in artifact.arrays:
                    val = val + np.asarray(artifact.arrays[f"out/{out_name}/offset"], dtype=np.float64)
                arr = val.astype(np.float32)
            shape = o.get("shape")
            if shape:
                arr = arr.reshape(T, B, *shape)
            outputs[out_name] = arr
        states: dict[str, np.ndarray] = {}
        if probes:
            states = probe_states(artifact, prog, res, T)
        return Trace(outputs=outputs, counts=res.counts, states=states, layer_counts=res.layer_counts,
                     meta={"batch": B, "loihi_steps": T + latency, "latency": latency, "timesteps": T,
                           "per_core": res.per_core})
