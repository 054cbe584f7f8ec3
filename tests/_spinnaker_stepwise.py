"""The per-step ring-buffer SpiNNaker emulator that emulators/spinnaker.py replaced, kept as a test oracle.

It follows the core's step literally (ring slot t, isyn, V, threshold, decay, then deliver this step's spikes
into slot t + d); the fast emulator computes each population's ring-buffer input for a block of steps with one
matrix product and must give bit-identical spikes, voltages and saturation counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spikeforge.backends.spinnaker import fixed as F
from spikeforge.backends.spinnaker.program import Program
from spikeforge.emulators.spinnaker import _group_projections


def simulate_stepwise(prog: Program, inputs: dict[str, np.ndarray] | np.ndarray, probes: bool = False) -> dict[str, Any]:
    """Run the program on (T, B, *shape) spike-count inputs. Integer state throughout."""
    if isinstance(inputs, np.ndarray):
        inputs = {next(iter(prog.inputs)): inputs}
    src: dict[str, np.ndarray] = {}
    T = B = None
    for node, pname in prog.inputs.items():
        x = np.asarray(inputs[node])
        pop = prog.pop(pname)
        src[pname] = np.rint(x.reshape(x.shape[0], x.shape[1], pop.size)).astype(np.int32)
        T, B = x.shape[0], x.shape[1]
    assert T is not None and B is not None
    groups = _group_projections(prog)
    neurons = [p for p in prog.populations if not p.is_source]
    max_d = max((int(pr.delay.max()) for pr in prog.projections if pr.delay.size), default=1)
    R = max_d + 1
    st: dict[str, dict[str, np.ndarray]] = {}
    for p in neurons:
        n = p.size
        raw = {k: np.asarray(v, dtype=np.int64) for k, v in p.raw.items()}
        st[p.name] = {
            "v": np.broadcast_to(raw["v_init"], (B, n)).copy(),
            "timer": np.zeros((B, n), np.int64),
            "isyn": np.stack([np.broadcast_to(raw.get(k, np.zeros(n, np.int64)), (B, n))  # initial current
                              for k in ("isyn_exc_init", "isyn_inh_init")]).astype(np.int64),
            "ring": np.zeros((2, R, B, n), np.int64),
            "raw": raw,
        }
    spikes: dict[str, np.ndarray] = {}
    outputs_v: dict[str, np.ndarray] = {}
    readout_pops = {r.population for r in prog.readouts}
    for p in prog.populations:  # bool: a neuron fires at most once per step (sources carry counts)
        spikes[p.name] = np.zeros((T, B, p.size), bool)
    for pn in readout_pops:
        outputs_v[pn] = np.zeros((T, B, prog.pop(pn).size), np.float64)
    state_v: dict[str, np.ndarray] = {}
    saturations = np.zeros(T)
    for p in prog.populations:
        if p.is_source:
            spikes[p.name] = src[p.name]
    for t in range(T):
        slot = t % R
        for p in neurons:
            s = st[p.name]
            raw = s["raw"]
            for r in (0, 1):
                cell = s["ring"][r, slot]
                over = cell > 0xFFFF
                if over.any():
                    saturations[t] += float(over.sum())
                    cell = np.minimum(cell, 0xFFFF)
                inp = F.wrap32(cell << p.shifts[r])
                if p.kind == "IF_curr_exp":
                    init = raw["exc_init"] if r == 0 else raw["inh_init"]
                    add = (inp * init) >> 32   # decay_s1615(input, init)
                else:
                    add = inp
                s["isyn"][r] = F.wrap32(s["isyn"][r] + add)
                s["ring"][r, slot] = 0
            total = F.wrap32(s["isyn"][0] - s["isyn"][1] + raw["i_offset"])
            v = s["v"]
            free = s["timer"] <= 0
            alpha = F.wrap32(F.mul_kk(total, raw["r_mem"]) + raw["v_rest"])
            v_new = F.wrap32(alpha - F.mul_kk(raw["exp_tc"], F.wrap32(alpha - v)))
            v = np.where(free, v_new, v)
            s["timer"] = np.where(free, s["timer"], s["timer"] - 1)
            if p.spiking:
                fired = v >= raw["v_thresh"]
                v = np.where(fired, raw["v_reset"], v)
                s["timer"] = np.where(fired, raw["t_refract"], s["timer"])
                spikes[p.name][t] = fired
            s["v"] = v
            if p.kind == "IF_curr_exp":
                s["isyn"][0] = (s["isyn"][0] * raw["exc_decay"]) >> 32
                s["isyn"][1] = (s["isyn"][1] * raw["inh_decay"]) >> 32
            else:
                s["isyn"][:] = 0
            if p.name in readout_pops:  # back to model units (IF populations run with scaled voltages)
                outputs_v[p.name][t] = v / (F.ONE * p.v_scale)
            if probes:
                state_v.setdefault(p.name, np.zeros((T, B, p.size)))[t] = v / (F.ONE * p.v_scale)
        # deliver this step's spikes into later slots
        for post, items in groups.items():
            ring = st[post]["ring"]
            for pre, r, d, M in items:
                sp_t = spikes[pre][t]
                if not sp_t.any():
                    continue
                ring[r, (t + d) % R] += np.rint(np.asarray(sp_t.astype(np.float64) @ M)).astype(np.int64)
    return {"spikes": spikes, "v": state_v, "outputs_v": outputs_v, "saturations": saturations}
