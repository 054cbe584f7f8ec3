"""Energy and latency of the programmed-weight mode, every figure a cited board constant.

Per inference (one sample of T steps), counts averaged over the batch:
  mvm        = macro MVMs (one per live input vector per tile per replica) x energy.mvm_core
  adc        = conversions (one per differential pair of a read tile) x energy.adc_conversion
  accumulate = partial-sum adds in the periphery x energy.digital_add
  neurons    = periphery neuron updates x energy.lif_update
Programming is paid once per deployment, not per inference, so it is reported apart:
  programming energy = cells x parameters.write_verify_pulses x energy.program_pulse
  programming time   = rows of all macros (row copies included) x write_verify_pulses x timing.program_pulse
                       (a row at a time)
In-macro copies of a weight (rram.copies) cost no macro and no MVM: their cells are in cells_used (programming
energy), their rows in the programming time, and column copies' conversions in adc.
Latency per step: layers run one after another; a layer's macros work in parallel, but a conv layer
(kernel-stationary) needs one MVM per output position: sum over layers of MVMs/step x timing.mvm_cycle,
plus timing.lif_step for the periphery.
"""

from __future__ import annotations

import numpy as np

from spikeforge.artifact import Artifact
from spikeforge.interfaces import Profile, ProfileItem, Trace

from .device import load_board


def profile_programmed(art: Artifact, trace: Trace) -> Profile:
    b = load_board(art.board)
    batch = max(1, trace.batch)
    T = max(1, trace.timesteps)
    per = lambda key: trace.total(key) / batch  # noqa: E731
    p = Profile(board=b.name)
    items = [
        ("mvm", per("tile_reads") * b.value("energy.mvm_core"), "macro MVMs x energy.mvm_core", ["energy.mvm_core"]),
        ("adc", per("adc_conversions") * b.value("energy.adc_conversion"), "ADC conversions x energy.adc_conversion",
         ["energy.adc_conversion"]),
        ("accumulate", per("digital_adds") * b.value("energy.digital_add"), "partial-sum adds x energy.digital_add",
         ["energy.digital_add"]),
        ("neurons", per("neuron_updates") * b.value("energy.lif_update"), "periphery neuron updates x energy.lif_update",
         ["energy.lif_update"]),
    ]
    for name, val, formula, keys in items:
        p.energy.append(ProfileItem(name, float(val), "J", formula + " (per inference)", [b.cite(k) for k in keys]))
    src = sorted({s for i in p.energy for s in i.sources})
    p.resources.append(ProfileItem("energy_per_step", p.energy_total / T, "J", "energy per inference / T", src))
    p.resources.append(ProfileItem("energy_per_inference", p.energy_total, "J", "sum of the energy components", src))
    meta = art.meta
    mvm_steps = sum(int(lay["positions"] or 1) for lay in meta["layers"])
    t_step = mvm_steps * b.value("timing.mvm_cycle") + b.value("timing.lif_step")
    t_src = [b.cite("timing.mvm_cycle"), b.cite("timing.lif_step")]
    p.latency.append(ProfileItem("per_step", t_step, "s",
                                 f"sum over layers of MVMs per step ({mvm_steps}) x timing.mvm_cycle + timing.lif_step",
                                 t_src))
    p.latency.append(ProfileItem("per_inference", T * t_step, "s", "T x per_step", t_src))
    pulses = float(b.value("parameters.write_verify_pulses"))
    cells = float(meta["cells_used"])
    # row copies inside a macro are more rows to write; column copies share their rows (written with them)
    rows = float(sum((t["rows"][1] - t["rows"][0]) * t.get("copies", (1, 1))[0] for lay in meta["layers"]
                     for t in lay["tiles"]) * meta["replicas"])
    wv = [b.cite("parameters.write_verify_pulses")]
    p.resources.append(ProfileItem("programming_energy", cells * pulses * b.value("energy.program_pulse"), "J",
                                   "once per deployment: cells x write_verify_pulses x energy.program_pulse",
                                   wv + [b.cite("energy.program_pulse")]))
    p.resources.append(ProfileItem("programming_time", rows * pulses * b.value("timing.program_pulse"), "s",
                                   "once per deployment: programmed rows x write_verify_pulses x timing.program_pulse",
                                   wv + [b.cite("timing.program_pulse")]))
    p.resources.append(ProfileItem("tiles", float(meta["macros"]), "macros",
                                   f"row x column tiles of every weight matrix x {meta['replicas']} replicas",
                                   [b.cite("limits.rows"), b.cite("limits.cols"), b.cite("limits.max_macros")]))
    p.resources.append(ProfileItem("cells_used", cells, "cells",
                                   "2 x rows x pairs per tile x in-macro copies (rows x columns) x replicas", []))
    copies = [t.get("copies", (1, 1)) for lay in meta["layers"] for t in lay["tiles"]]
    p.resources.append(ProfileItem("copies_per_weight", float(np.mean([a * b for a, b in copies])), "copies",
                                   "mean over tiles of in-macro copies (row copies summed on a column x column copies "
                                   "converted apart; Boybat et al. 2018), each also x replicas; column copies' ADC "
                                   "conversions are in adc", []))
    p.resources.append(ProfileItem("cell_utilisation", float(meta["cell_utilisation"]), "-",
                                   "mean over tiles of used rows x pairs / (limits.rows x limits.cols / 2)",
                                   [b.cite("limits.rows"), b.cite("limits.cols")]))
    p.resources.append(ProfileItem("mvms_per_inference", per("tile_reads"), "MVMs", "live macro reads", []))
    p.notes.append("mode=programmed; effects: " + ", ".join(f"{k}={v}" for k, v in meta["effects"].items() if v))
    p.notes.append("programming energy/time are once per deployment and not in the per-inference energy")
    p.notes.extend(b.notes)
    return p
