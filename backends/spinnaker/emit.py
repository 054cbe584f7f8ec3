"""The emitted PyNN script (code/network.py) and its data file (code/network_data.npz).

The script runs on sPyNNaker (`python network.py inputs.npz --simulator spynnaker`) and on any PyNN
backend installed beside it (`--simulator brian2`, `nest`): populations with per-neuron parameters,
FromListConnector projections (inhibitory weights negative, which every PyNN backend accepts),
SpikeSourceArray inputs from the user's .npz, spike / voltage recording and sim.end(). On sPyNNaker the
ring-buffer shifts spikeforge chose are pinned with `max_expected_summed_weight` (and a time scale factor,
when one was set). Elsewhere the script converts sPyNNaker's one-step delta currents into PyNN's voltage
jumps, and on Brian2 moves threshold and reset after the synapses (sPyNNaker's order) and makes a refractory
step hold V at v_reset as the core does (Brian2's refractory ends one step earlier and lets PyNN's voltage
jumps through), so the same script spikes like the emulator (tests/test_spinnaker_pynn.py).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from spikeforge.emitsafe import py_str
from spikeforge.npzio import save_npz

from .program import Program

SCRIPT = '''#!/usr/bin/env python
"""PyNN network emitted by spikeforge for SpiNNaker (sPyNNaker 7.x). Data: network_data.npz beside this file.

usage: python network.py INPUTS.npz [--key input] [--sample 0] [--simulator spynnaker|brian2|nest] [--out out.npz]
"""
import argparse
import importlib
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
STRUCTURE = json.loads({structure})
SIMULATORS = {{"spynnaker": "pyNN.spiNNaker", "brian2": "pyNN.brian2", "nest": "pyNN.nest"}}


def spike_times(counts, dt):
    """(T, n) spike counts -> one list of spike times (ms) per neuron (one spike per step at most)."""
    return [list(np.nonzero(counts[:, i])[0] * dt) for i in range(counts.shape[1])]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs")
    ap.add_argument("--key", default="input")
    ap.add_argument("--sample", type=int, default=0)
    ap.add_argument("--simulator", default="spynnaker", choices=sorted(SIMULATORS))
    ap.add_argument("--out", default="pynn_out.npz")
    a = ap.parse_args(argv)
    sim = importlib.import_module(SIMULATORS[a.simulator])
    if a.simulator == "brian2":  # numpy code generation: no C compiler needed, no minutes-long first build
        import brian2
        brian2.prefs.codegen.target = "numpy"
    data = np.load(os.path.join(HERE, "network_data.npz"), allow_pickle=False)
    user = np.load(a.inputs, allow_pickle=False)
    dt = STRUCTURE["dt_ms"]
    if a.simulator == "spynnaker" and STRUCTURE.get("time_scale_factor"):
        sim.setup(timestep=dt, min_delay=dt, time_scale_factor=STRUCTURE["time_scale_factor"])
    else:
        sim.setup(timestep=dt, min_delay=dt)
    pops = {{}}
    T = None
    for p in STRUCTURE["populations"]:
        if p["kind"] == "SpikeSourceArray":
            key = a.key if len(STRUCTURE["inputs"]) == 1 else p["node"]
            x = np.asarray(user[key])
            T = x.shape[0]
            counts = x[:, a.sample].reshape(T, -1)
            times = spike_times(counts, dt)
            if a.simulator != "spynnaker":  # PyNN's own backends want one Sequence per neuron ...
                from pyNN.parameters import Sequence
                times = [Sequence(x) for x in times]
                if len(times) == 1:  # ... and a bare Sequence for one neuron (a list of one breaks pyNN.brian2)
                    times = times[0]
            pops[p["name"]] = sim.Population(p["size"], sim.SpikeSourceArray(spike_times=times), label=p["name"])
            continue
        params = {{k: data["pop/%s/pynn/%s" % (p["name"], k)].tolist() for k in STRUCTURE["param_keys"][p["kind"]]}}
        hold = a.simulator == "brian2" and max(params.get("tau_refrac", [0.0]), default=0.0) > 0
        if hold:  # sPyNNaker holds V for ceil(tau_refrac / dt) steps after the spike; Brian2 one step fewer
            params["tau_refrac"] = [t + dt for t in params["tau_refrac"]]
        v_init = data["pop/%s/pynn/v_init" % p["name"]]
        celltype = getattr(sim, p["kind"])(**params)
        extra = {{}}
        if a.simulator == "spynnaker":  # pin the ring-buffer shifts spikeforge chose and emulated
            # 0.75 x 2**s lies strictly inside (2**(s-1), 2**s): sPyNNaker derives exactly shift s from it
            extra["additional_parameters"] = {{"max_expected_summed_weight": [0.75 * 2.0 ** s for s in p["shifts"]]}}
        pops[p["name"]] = sim.Population(p["size"], celltype, label=p["name"], **extra)
        init = {{"v": v_init.tolist()}}
        for var in ("isyn_exc", "isyn_inh"):  # IF_curr_exp: the synaptic current starts at the bias ramp's value
            if "pop/%s/pynn/%s" % (p["name"], var) in data.files:
                init[var] = data["pop/%s/pynn/%s" % (p["name"], var)].tolist()
        pops[p["name"]].initialize(**init)
        pops[p["name"]].record(["spikes", "v"] if not p["spiking"] else ["spikes"])
        if a.simulator == "brian2":  # sPyNNaker's step order: add this step's input, then threshold and reset
            grp = pops[p["name"]].brian2_group
            if "spike" in getattr(grp, "thresholder", {{}}):
                grp.thresholder["spike"].when = "after_synapses"
                grp.thresholder["spike"].order = 1
                grp.resetter["spike"].when = "after_synapses"
                grp.resetter["spike"].order = 2
            if hold:  # the core drops a refractory step's input: V stays at v_reset (PyNN's jumps would add it)
                grp.run_regularly("v = v * int(not_refractory) + v_reset * (1 - int(not_refractory))",
                                  when="after_synapses", order=0)
            if p["kind"] == "IF_curr_exp":  # the core adds a step's input to isyn before it integrates V
                grp.state_updater.when = "after_synapses"
                grp.state_updater.order = -1
    kinds = {{p["name"]: p["kind"] for p in STRUCTURE["populations"]}}
    for i, pr in enumerate(STRUCTURE["projections"]):
        base = "proj/%04d/" % i
        w = data[base + "weight"].astype(float)
        if kinds[pr["post"]] == "IF_curr_delta" and a.simulator != "spynnaker":
            # sPyNNaker's delta synapse is a one-step current pulse (nA): V moves by w R (1 - exp(-dt/tau_m)).
            # PyNN's other backends take the voltage jump (mV): convert so every backend sees the same jump.
            tau = data["pop/%s/pynn/tau_m" % pr["post"]][data[base + "post_idx"]]
            cm = data["pop/%s/pynn/cm" % pr["post"]][data[base + "post_idx"]]
            w = w * (tau / cm) * (1.0 - np.exp(-dt / tau))
        conns = [(int(a_), int(b_), float(w_), float(d_) * dt) for a_, b_, w_, d_ in zip(
            data[base + "pre_idx"], data[base + "post_idx"], w, data[base + "delay"])]
        proj = sim.Projection(pops[pr["pre"]], pops[pr["post"]], sim.FromListConnector(conns),
                              receptor_type=pr["receptor"], label=pr["name"])
        if a.simulator == "brian2" and kinds[pr["pre"]] != "SpikeSourceArray":
            # the source's threshold now runs after the synapses, so its spikes reach the pathway one step
            # later: take that step off Brian2's delay (PyNN itself refuses delays below one step)
            import brian2
            for group in proj._brian2_synapses.values():
                for syn in group.values():
                    syn.delay = syn.delay[:] - dt * brian2.ms
    sim.run(T * dt)
    out = {{}}
    for p in STRUCTURE["populations"]:
        if p["kind"] == "SpikeSourceArray":
            continue
        seg = pops[p["name"]].get_data().segments[0]
        counts = np.zeros((T, p["size"]), dtype=np.int32)
        for i, st in enumerate(seg.spiketrains):
            idx = np.rint(np.asarray(st.magnitude) / dt).astype(int)
            idx = idx[(idx >= 0) & (idx < T)]
            np.add.at(counts[:, i], idx, 1)
        out["spikes/" + p["name"]] = counts
        if not p["spiking"]:  # membrane voltage of read-out populations, (T, n)
            sig = np.asarray(seg.filter(name="v")[0].magnitude)
            out["v/" + p["name"]] = sig[:T] / p.get("v_scale", 1.0)  # model units (IF voltages run scaled)
    sim.end()
    np.savez(a.out, **out)
    print(json.dumps({{k: int(v.sum()) for k, v in out.items()}}))


if __name__ == "__main__":
    main()
'''

PARAM_KEYS = {
    "IF_curr_exp": ["v_rest", "v_reset", "v_thresh", "tau_m", "cm", "tau_refrac", "i_offset", "tau_syn_E",
                    "tau_syn_I"],
    "IF_curr_delta": ["v_rest", "v_reset", "v_thresh", "tau_m", "cm", "tau_refrac", "i_offset"],
}


def structure(prog: Program, time_scale_factor: float | None = None) -> dict[str, Any]:
    s = prog.to_meta()
    s["param_keys"] = PARAM_KEYS
    s["time_scale_factor"] = time_scale_factor
    return s


def emit_files(prog: Program, time_scale_factor: float | None = None) -> dict[str, str | bytes]:
    """Script text and data-file bytes (deterministic)."""
    # every user string (node names, labels) reaches the script only inside this one escaped literal
    text = SCRIPT.format(structure=py_str(json.dumps(structure(prog, time_scale_factor), sort_keys=True)))
    data = {k: v for k, v in prog.to_arrays().items() if "/raw/" not in k}
    with tempfile.TemporaryDirectory() as d:  # npzio writes deterministic bytes to a path
        save_npz(Path(d) / "data.npz", data)
        blob = (Path(d) / "data.npz").read_bytes()
    readme = (
        "# SpiNNaker program emitted by spikeforge\n\n"
        "`network.py` builds the PyNN network from `network_data.npz` (per-neuron parameters, FromListConnector\n"
        "lists: pre, post, weight in nA (negative = inhibitory), delay in steps).\n\n"
        "    python network.py inputs.npz --simulator spynnaker   # on a SpiNNaker board (sPyNNaker 7.x)\n"
        "    python network.py inputs.npz --simulator brian2      # anywhere PyNN + Brian2 are installed\n\n"
        "Inputs: the same .npz `spikeforge emulate` takes, key `input`, (T, B, ...) spike counts; `--sample` picks\n"
        "the batch element (a SpikeSourceArray sends at most one spike per neuron per step).\n"
    )
    return {"code/network.py": text, "code/network_data.npz": blob, "code/README.md": readme}
