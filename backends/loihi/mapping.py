"""Partition populations onto Loihi cores by every per-core limit at once, then place cores on chips.

Algorithm (all limits: neurons, synaptic memory, fan-in axons, fan-out axons, cores per chip, chips):

1. **Order for locality.** A population with a (C, H, W) shape is walked position-major ((h, w, c)), so
   one core holds a spatial tile with all its channels: a convolution's source neuron then reaches few
   destination cores (fan-out) and a core reads few source neurons (fan-in).
2. **Cut into cores.** Walking that order, a core takes neurons while its neuron count stays within
   ``min(neurons_per_core, cap[pop])``, its synaptic memory (per synapse: weight bits + sign + delay
   + index bits; for a shared-weight (convolutional) connection on a board that has shared kernels,
   the kernel once per core) and its fan-in axons (distinct source neurons) fit. Block ends are found
   with cumulative sums and a binary search on fan-in, so the work is about linear in the synapses.
3. **Fan-out.** Each source neuron needs one axon per destination core it reaches. Cores over the limit
   lower their population's cap in proportion to the excess (splitting the source population) and
   the partition is redone; this repeats until everything fits (bounded: ``MAX_ROUNDS``).
4. **Place.** Cores are numbered in topological order of populations (layer by layer, tiles in spatial
   order), so connected layers sit on neighbouring cores and chips; chip = core // cores_per_chip.
   Spikes between chips are counted by the emulator (``interchip_packets``).

A model that does not fit raises FitError naming the binding limit, the need, and the smallest board
(or board option) that would hold it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from spikeforge.boards import Board
from spikeforge.emulators.loihi import Conn, Program
from spikeforge.errors import FitError

#: re-partitioning rounds for fan-out before giving up (each round at least halves the worst excess)
MAX_ROUNDS = 40


def synapse_bits(num_weight_bits: int, sign_mode: str, delayed: bool, overhead: int) -> int:
    """Estimated bits of one stored synapse: weight (+ sign bit when mixed) + delay field + index overhead."""
    return int(num_weight_bits) + (1 if sign_mode == "mixed" else 0) + (6 if delayed else 0) + int(overhead)


def _limits(board: Board) -> dict[str, int]:
    return {
        "npc": int(board.value("limits.neurons_per_core")),
        "mem": int(board.value("limits.synaptic_memory_per_core")),
        "fan_in": int(board.value("limits.fan_in_axons_per_core")),
        "fan_out": int(board.value("limits.fan_out_axons_per_core")),
        "cores_per_chip": int(board.value("limits.cores")),
        "chips": int(board.value("limits.chips", 1)),
        "overhead": int(board.value("limits.synapse_overhead_bits", 0)),
        "shared": int(board.value("arithmetic.shared_weight_kernels", False)),
    }


def _locality_order(shape: Any, size: int) -> np.ndarray:
    """Neuron indices position-major for (C, H, W) / (C, L) populations; identity otherwise."""
    if shape is not None and len(shape) >= 2 and int(np.prod(shape)) == size and shape[0] > 1:
        c = np.arange(size) // (size // int(shape[0]))
        pos = np.arange(size) % (size // int(shape[0]))
        return np.lexsort((c, pos))
    return np.arange(size)


class _PopIn:
    """A population's incoming synapses in locality order, prepared once for repeated cutting."""

    def __init__(self, size: int, conns: list[Conn], nz: dict[str, sp.csr_matrix], order: np.ndarray,
                 offsets: dict[str, int], n_axons: int, lim: dict[str, int]):
        self.size = size
        self.order = order
        bits = np.zeros(size)
        self.fixed_bytes = 0.0                       # per core: shared kernels
        blocks = []
        for c in conns:
            m = nz[c.name]
            b = synapse_bits(c.num_weight_bits, c.sign_mode, c.delays is not None, lim["overhead"])
            if lim["shared"] and c.shared and c.kind == "Conv":
                self.fixed_bytes += math.ceil(c.shared * b / 8.0)
            else:
                bits += np.asarray(m.sum(axis=1)).ravel() * b
            blocks.append(sp.csr_matrix((np.ones(m.nnz, np.int32), m.indices + offsets[c.src], m.indptr),
                                        shape=(size, n_axons)))
        self.bytes_row = np.ceil(bits / 8.0)[order]
        self.cum_bytes = np.concatenate([[0.0], np.cumsum(self.bytes_row)])
        allin = sp.csr_matrix((size, n_axons), dtype=np.int32)
        for b in blocks:
            allin = allin + b
        self.rows = allin.tocsr()[order] if blocks else allin

    def fan_in(self, a: int, b: int) -> int:
        """Distinct source neurons of rows a..b (a bitmap count: linear, no sort)."""
        ptr = self.rows.indptr
        seen = np.zeros(self.rows.shape[1], bool)
        seen[self.rows.indices[ptr[a]:ptr[b]]] = True
        return int(np.count_nonzero(seen))

    def cut(self, cap: int, lim: dict[str, int], name: str) -> np.ndarray:
        """Core number (0-based within the population) of each neuron in *original* index order."""
        core_of = np.empty(self.size, np.int64)
        i, k = 0, 0
        budget = lim["mem"] - self.fixed_bytes
        if budget < 0:
            raise FitError(f"the shared kernels into one core need {int(self.fixed_bytes)} B of synaptic memory; "
                           f"a core has {lim['mem']} B", node=name, field="limits.synaptic_memory_per_core")
        while i < self.size:
            hi = min(self.size, i + cap)
            hi = min(hi, int(np.searchsorted(self.cum_bytes, self.cum_bytes[i] + budget, side="right")) - 1)
            if hi <= i:
                raise FitError(f"one neuron needs {int(self.bytes_row[i])} B of synaptic memory; a core has "
                               f"{int(budget)} B (short by {int(self.bytes_row[i] - budget)} B)", node=name,
                               field="limits.synaptic_memory_per_core")
            if self.fan_in(i, hi) > lim["fan_in"]:
                lo_ok, bad = i, hi                   # largest end with fan-in within the limit
                while bad - lo_ok > 1:
                    mid = (lo_ok + bad) // 2
                    if self.fan_in(i, mid) <= lim["fan_in"]:
                        lo_ok = mid
                    else:
                        bad = mid
                if lo_ok == i:
                    need = self.fan_in(i, i + 1)
                    raise FitError(f"one neuron has {need} fan-in axons; a core has {lim['fan_in']} (short by "
                                   f"{need - lim['fan_in']})", node=name, field="limits.fan_in_axons_per_core")
                hi = lo_ok
            core_of[self.order[i:hi]] = k
            i, k = hi, k + 1
        return core_of


def _fan_out(prog: Program, nz: dict[str, sp.csr_matrix], core_base: dict[str, int], n_cores: int) -> np.ndarray:
    """Fan-out axons per core: one per (source neuron, destination core) it reaches, over all connections."""
    out = np.zeros(n_cores, np.int64)
    by_src: dict[str, list[Conn]] = {}
    for c in prog.conns:
        if c.src in prog.pops:
            by_src.setdefault(c.src, []).append(c)
    for src, conns in by_src.items():
        n_src = prog.pops[src].size
        reach = sp.csr_matrix((n_src, n_cores), dtype=np.float64)
        for c in conns:
            dst = prog.pops[c.dst]
            cores = core_base[c.dst] + dst.core
            onehot = sp.csr_matrix((np.ones(dst.size), (np.arange(dst.size), cores)), shape=(dst.size, n_cores))
            reach = reach + nz[c.name].T.astype(np.float64) @ onehot
        per_neuron = np.diff(reach.tocsr().indptr)                 # distinct destination cores
        src_core = core_base[src] + prog.pops[src].core
        out += np.bincount(src_core, weights=per_neuron, minlength=n_cores).astype(np.int64)
    return out


def smallest_fit(cores: int, lim: dict[str, int], backend: str = "loihi") -> str:
    """Name the smallest registered board of this backend with at least `cores` cores and per-core limits no
    smaller than `lim` (so the same partition holds there), if any."""
    from spikeforge.boards import list_boards

    best = None
    for b in list_boards():
        name = b.name
        if b.backend != backend:
            continue
        other = _limits(b)
        if any(other[k] < lim[k] for k in ("npc", "mem", "fan_in", "fan_out")):
            continue
        total = int(b.value("limits.cores")) * int(b.value("limits.chips", 1))
        if total >= cores and (best is None or total < best[0]):
            best = (total, name)
    return best[1] if best else ""


def map_program(prog: Program, board: Board, shapes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assign `pop.core` for every population (in place); return the mapping report."""
    lim = _limits(board)
    shapes = shapes or {}
    offsets: dict[str, int] = {}
    n_axons = 0
    for name, size in [*prog.inputs.items(), *((n, p.size) for n, p in prog.pops.items())]:
        offsets[name] = n_axons
        n_axons += size
    nz = {c.name: c.nonzero() for c in prog.conns}
    prep = {}
    for pname, pop in prog.pops.items():
        order = _locality_order(shapes.get(pname), pop.size)
        prep[pname] = _PopIn(pop.size, [c for c in prog.conns if c.dst == pname], nz, order, offsets, n_axons, lim)
    cap = {n: lim["npc"] for n in prog.pops}
    rounds = 0
    while True:
        core_base: dict[str, int] = {}
        total = 0
        for pname, pop in prog.pops.items():
            pop.core = prep[pname].cut(cap[pname], lim, pname)
            core_base[pname] = total
            total += int(pop.core.max(initial=-1)) + 1
        fan_out = _fan_out(prog, nz, core_base, total)
        over = fan_out > lim["fan_out"]
        if not over.any():
            break
        rounds += 1
        worst = int(np.argmax(fan_out))
        if rounds > MAX_ROUNDS:
            raise FitError(f"core {worst} needs {int(fan_out[worst])} fan-out axons; a core has {lim['fan_out']} "
                           f"after {MAX_ROUNDS} re-partitioning rounds", field="limits.fan_out_axons_per_core")
        for pname, pop in prog.pops.items():
            lo, hi = core_base[pname], core_base[pname] + int(pop.core.max(initial=-1)) + 1
            excess = fan_out[lo:hi].max(initial=0)
            if excess > lim["fan_out"]:
                block = int(np.bincount(pop.core).max())
                new = max(1, int(block * lim["fan_out"] / excess * 0.95))
                if new >= cap[pname]:
                    new = cap[pname] - 1
                if new < 1:
                    raise FitError(f"one neuron of '{pname}' reaches {int(excess)} destination cores; a core has "
                                   f"{lim['fan_out']} fan-out axons", node=pname,
                                   field="limits.fan_out_axons_per_core")
                cap[pname] = new
    available = lim["cores_per_chip"] * lim["chips"]
    if total > available:
        chips = math.ceil(total / lim["cores_per_chip"])
        alt = smallest_fit(total, lim)
        hint = f"board '{alt}' has enough cores" if alt else \
            f"a board with {chips} chips of {lim['cores_per_chip']} cores (limits.chips = {chips} in a board TOML)"
        raise FitError(f"the model needs {total} cores; the board has {available} (short by {total - available}; "
                       f"{chips} chip(s) of {lim['cores_per_chip']} cores needed, the board has {lim['chips']})",
                       field="limits.cores", hint=hint)
    cores: list[dict[str, Any]] = []
    for pname, pop in prog.pops.items():
        p = prep[pname]
        n_here = np.bincount(pop.core)
        inv = np.empty(pop.size, np.int64)
        inv[p.order] = np.arange(pop.size)
        for k in range(n_here.size):
            idx = np.sort(inv[pop.core == k])                       # positions in locality order
            a, b = int(idx[0]), int(idx[-1]) + 1
            core = core_base[pname] + k
            rec = {"core": core, "chip": core // lim["cores_per_chip"], "pop": pname, "neurons": int(n_here[k]),
                   "synaptic_bytes": int(p.cum_bytes[b] - p.cum_bytes[a] + p.fixed_bytes),
                   "fan_in_axons": p.fan_in(a, b), "fan_out_axons": int(fan_out[core])}
            rec["utilisation"] = {
                "neurons": round(rec["neurons"] / lim["npc"], 4),
                "synaptic_memory": round(rec["synaptic_bytes"] / lim["mem"], 4),
                "fan_in": round(rec["fan_in_axons"] / lim["fan_in"], 4),
                "fan_out": round(rec["fan_out_axons"] / lim["fan_out"], 4),
            }
            cores.append(rec)
        pop.core = pop.core + core_base[pname]
    n_neurons = sum(p.size for p in prog.pops.values())
    n_syn = int(sum(m.nnz for m in nz.values()))
    for key, need, what in (("limits.neurons_per_chip", n_neurons, "neurons"),
                            ("limits.synapses_per_chip", n_syn, "synapses")):
        if board.has(key):
            cap_total = int(board.value(key)) * lim["chips"]
            if need > cap_total:
                raise FitError(f"the model has {need} {what}; the board holds {cap_total} (short by "
                               f"{need - cap_total})", field=key)
    binding = max(("neurons", "synaptic_memory", "fan_in", "fan_out"),
                  key=lambda k: max((c["utilisation"][k] for c in cores), default=0.0))
    mesh = {"cores_per_tile": int(board.value("limits.cores_per_tile", 4)),
            "tiles_x": int(board.value("limits.mesh_tiles_x", 8)), "cores_per_chip": lim["cores_per_chip"]}
    prog.meta["mesh"] = mesh
    return {"cores_used": total, "cores_available": available, "chips_used": math.ceil(total / lim["cores_per_chip"]),
            "neurons": n_neurons, "synapses": n_syn, "cores": cores, "mesh": mesh,
            "fan_out_rounds": rounds, "binding_limit": binding,
            "caps": {n: int(c) for n, c in cap.items() if c < lim["npc"]}}
