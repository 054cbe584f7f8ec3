"""Energy and latency of the RRAM LSM from the emulator's counts, every figure cited to the board.

Per inference (one sample of T steps), counts averaged over the batch:
  array    = V_read^2 x t_read_pulse x sum over read pulses of the selected row's cell conductance
             (the physical conductances the emulator read: ohmic read energy of the array)
  adc      = conversions x energy.adc_conversion      (one per differential pair of a read tile)
  accum    = partial-sum adds x energy.digital_add
  lif      = neuron updates x energy.lif_update
  readout  = N x C MACs on the spike counts x energy.readout_mac + one counter add per spike
Latency per step: the macros read in parallel (one MVM cycle), then the digital LIF block;
per inference: T steps plus the readout MACs.
"""

from __future__ import annotations

from spikeforge.artifact import Artifact
from spikeforge.interfaces import CostModel, Profile, ProfileItem, Trace

from .device import load_board


class RRAMCostModel(CostModel):
    def profile(self, artifact: Artifact, trace: Trace) -> Profile:
        if artifact.meta.get("engine") == "graph":
            from .cost_programmed import profile_programmed

            return profile_programmed(artifact, trace)
        b = load_board(artifact.board)
        batch = max(1, trace.batch)
        T = max(1, trace.timesteps)
        v, tp = b.value("physics.v_read"), b.value("timing.read_pulse")
        per = lambda key: trace.total(key) / batch  # noqa: E731
        p = Profile(board=b.name)
        items = [
            ("array", v * v * tp * per("array_conductance"), "V_read^2 x t_read x sum(G of read rows)",
             ["physics.v_read", "timing.read_pulse", "physics.g_max"]),
            ("adc", per("adc_conversions") * b.value("energy.adc_conversion"), "conversions x energy.adc_conversion",
             ["energy.adc_conversion"]),
            ("accumulate", per("digital_adds") * b.value("energy.digital_add"), "partial-sum adds x energy.digital_add",
             ["energy.digital_add"]),
            ("lif", per("neuron_updates") * b.value("energy.lif_update"), "neuron updates x energy.lif_update",
             ["energy.lif_update"]),
            ("readout", per("macs") * b.value("energy.readout_mac") + per("spikes") * b.value("energy.digital_add"),
             "N x C MACs on the spike counts x energy.readout_mac + spikes x energy.digital_add (counters)",
             ["energy.readout_mac", "energy.digital_add"]),
        ]
        for name, val, formula, keys in items:
            p.energy.append(ProfileItem(name, float(val), "J", formula + " (per inference)", [b.cite(k) for k in keys]))
        e_inf = p.energy_total
        all_src = sorted({s for i in p.energy for s in i.sources})
        p.resources.append(ProfileItem("energy_per_step", e_inf / T, "J", "energy per inference / T", all_src))
        p.resources.append(ProfileItem("energy_per_inference", e_inf, "J", "sum of the energy components", all_src))
        t_step = b.value("timing.mvm_cycle") + b.value("timing.lif_step")
        t_ro = per("macs") * b.value("timing.readout_mac")
        p.latency.append(ProfileItem("per_step", t_step, "s", "timing.mvm_cycle (macros in parallel) + timing.lif_step",
                                     [b.cite("timing.mvm_cycle"), b.cite("timing.lif_step")]))
        p.latency.append(ProfileItem("per_inference", T * t_step + t_ro, "s", "T x per_step + readout MACs x timing.readout_mac",
                                     [b.cite("timing.mvm_cycle"), b.cite("timing.lif_step"), b.cite("timing.readout_mac")]))
        meta = artifact.meta
        p.resources.append(ProfileItem("tiles", float(meta["macros"]), "macros",
                                       "row blocks (input / recurrent, <= limits.rows) x column blocks (<= limits.cols / 2 neurons)",
                                       [b.cite("limits.rows"), b.cite("limits.cols")]))
        p.resources.append(ProfileItem("cells_used", float(meta["cells_used"]), "cells", "2 x rows x neurons per tile", []))
        p.resources.append(ProfileItem("cell_utilisation", float(meta["cell_utilisation"]), "-",
                                       "cells used / (tiles x rows x cols)", [b.cite("limits.rows"), b.cite("limits.cols")]))
        p.resources.append(ProfileItem("reads_per_step", per("reads") / T, "row pulses", "active word lines per step", []))
        p.notes.append(f"mode={meta['mode']}; non-idealities: " +
                       ", ".join(f"{k}={v}" for k, v in meta["nonideal"].items() if v))
        p.notes.extend(b.notes)
        return p
