"""Place populations onto Loihi cores within the board's per-core limits.

Greedy, in population order: a core takes neurons of one population while its compartment count,
synaptic memory (incoming synapses x bits per synapse) and fan-in axons (distinct source neurons with a
synapse into the core) stay within the board limits. Then fan-out axons (one per source neuron and
destination core) and the chip totals are checked. Anything over a limit is a FitError naming the limit,
the need and the shortfall.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spikeforge.boards import Board
from spikeforge.emulators.loihi import Program, effective_weights
from spikeforge.errors import FitError


def synapse_bits(num_weight_bits: int, sign_mode: str, delayed: bool, overhead: int) -> int:
    """Estimated bits of one stored synapse: weight (+ sign bit when mixed) + delay field + index overhead."""
    return int(num_weight_bits) + (1 if sign_mode == "mixed" else 0) + (6 if delayed else 0) + int(overhead)


def map_program(prog: Program, board: Board) -> dict[str, Any]:
    """Assign `pop.core` for every population (in place); return the mapping report."""
    npc = int(board.value("limits.neurons_per_core"))
    mem = int(board.value("limits.synaptic_memory_per_core"))
    fan_in_lim = int(board.value("limits.fan_in_axons_per_core"))
    fan_out_lim = int(board.value("limits.fan_out_axons_per_core"))
    n_cores = int(board.value("limits.cores")) * int(board.value("limits.chips", 1))
    overhead = int(board.value("limits.synapse_overhead_bits", 0))
    src_sizes = dict(prog.inputs)
    src_sizes.update({n: p.size for n, p in prog.pops.items()})
    nz = {c.name: effective_weights(c.weights, c.sign_mode, c.num_weight_bits) != 0 for c in prog.conns}
    cores: list[dict[str, Any]] = []
    next_core = 0
    for pname, pop in prog.pops.items():
        incoming = [c for c in prog.conns if c.dst == pname]
        bits_row = np.zeros(pop.size)
        for c in incoming:
            bits_row += nz[c.name].sum(axis=1) * synapse_bits(c.num_weight_bits, c.sign_mode,
                                                              c.delays is not None, overhead)
        bytes_row = np.ceil(bits_row / 8.0)
        core_of = np.zeros(pop.size, np.int64)
        i = 0
        while i < pop.size:
            used_bytes = 0.0
            axons = {s: np.zeros(src_sizes[s], bool) for s in {c.src for c in incoming}}
            start = i
            while i < pop.size and i - start < npc:
                new_axons = {s: a.copy() for s, a in axons.items()}
                for c in incoming:
                    new_axons[c.src] |= nz[c.name][i]
                fan_in = int(sum(a.sum() for a in new_axons.values()))
                if used_bytes + bytes_row[i] > mem or fan_in > fan_in_lim:
                    if i == start:
                        if bytes_row[i] > mem:
                            raise FitError(f"one neuron needs {int(bytes_row[i])} B of synaptic memory; a core has "
                                           f"{mem} B (short by {int(bytes_row[i] - mem)} B)", node=pname,
                                           field="limits.synaptic_memory_per_core")
                        raise FitError(f"one neuron has {fan_in} fan-in axons; a core has {fan_in_lim} (short by "
                                       f"{fan_in - fan_in_lim})", node=pname, field="limits.fan_in_axons_per_core")
                    break
                axons = new_axons
                used_bytes += bytes_row[i]
                i += 1
            core_of[start:i] = next_core
            cores.append({"core": next_core, "pop": pname, "neurons": i - start, "synaptic_bytes": int(used_bytes),
                          "fan_in_axons": int(sum(a.sum() for a in axons.values()))})
            next_core += 1
        pop.core = core_of
    if next_core > n_cores:
        raise FitError(f"the model needs {next_core} cores; the board has {n_cores} (short by {next_core - n_cores})",
                       field="limits.cores", hint="prune or shrink the model, or use a board with more chips")
    # fan-out axons: one per (source neuron, destination core)
    fan_out = np.zeros(next_core, np.int64)
    for c in prog.conns:
        if c.src not in prog.pops:
            continue
        src_core = prog.pops[c.src].core
        dst_core = prog.pops[c.dst].core
        m = nz[c.name]
        for j in range(m.shape[1]):
            fan_out[src_core[j]] += len(np.unique(dst_core[m[:, j]]))
    for rec in cores:
        rec["fan_out_axons"] = int(fan_out[rec["core"]])
        if rec["fan_out_axons"] > fan_out_lim:
            raise FitError(f"core {rec['core']} ({rec['pop']}) needs {rec['fan_out_axons']} fan-out axons; a core has "
                           f"{fan_out_lim} (short by {rec['fan_out_axons'] - fan_out_lim})",
                           node=rec["pop"], field="limits.fan_out_axons_per_core")
        rec["utilisation"] = {
            "neurons": round(rec["neurons"] / npc, 4),
            "synaptic_memory": round(rec["synaptic_bytes"] / mem, 4),
            "fan_in": round(rec["fan_in_axons"] / fan_in_lim, 4),
            "fan_out": round(rec["fan_out_axons"] / fan_out_lim, 4),
        }
    n_neurons = sum(p.size for p in prog.pops.values())
    n_syn = int(sum(m.sum() for m in nz.values()))
    for key, need, what in (("limits.neurons_per_chip", n_neurons, "neurons"),
                            ("limits.synapses_per_chip", n_syn, "synapses")):
        if board.has(key):
            cap = int(board.value(key)) * int(board.value("limits.chips", 1))
            if need > cap:
                raise FitError(f"the model has {need} {what}; the board holds {cap} (short by {need - cap})", field=key)
    mesh = {"cores_per_tile": int(board.value("limits.cores_per_tile", 4)),
            "tiles_x": int(board.value("limits.mesh_tiles_x", 8))}
    prog.meta["mesh"] = mesh
    return {"cores_used": next_core, "cores_available": n_cores, "neurons": n_neurons, "synapses": n_syn,
            "cores": cores, "mesh": mesh}
