"""Energy and latency per inference from the emulator's event counts and Davies et al. 2018, Table 2.

Energy = synops x E_synop + active updates x E_active + inactive updates x E_inactive
         + spikes x E_spike(within tile) + E-W hops x E_hop_ew + N-S hops x E_hop_ns.
Latency per Loihi step = slowest core (its synops x t_synop + active x t_active + inactive x t_inactive)
         + the chip-wide barrier (Table 2's upper figure); per inference = sum over the run's Loihi steps.
All counts are averaged over the batch (per inference). Loihi 2 figures are Loihi-1-derived estimates.
"""

from __future__ import annotations

import numpy as np

from spikeforge.artifact import Artifact
from spikeforge.boards import get_board
from spikeforge.interfaces import CostModel, Profile, ProfileItem, Trace


class LoihiCostModel(CostModel):
    def profile(self, artifact: Artifact, trace: Trace) -> Profile:
        board = get_board(artifact.board)
        B = max(1, int(trace.meta.get("batch", trace.batch)))
        tot = {k: trace.total(k) / B for k in ("synops", "active_updates", "neuron_updates", "spikes",
                                                 "hops_x", "hops_y", "packets")}
        inactive = max(0.0, tot["neuron_updates"] - tot["active_updates"])
        c = board.cite
        p = Profile(board=board.name)
        p.energy += [
            ProfileItem("synaptic_ops", tot["synops"] * board.value("energy.synop"), "J",
                        f"{tot['synops']:.0f} synops x energy.synop", [c("energy.synop")]),
            ProfileItem("neuron_updates_active", tot["active_updates"] * board.value("energy.neuron_update_active"),
                        "J", f"{tot['active_updates']:.0f} active updates x energy.neuron_update_active",
                        [c("energy.neuron_update_active")]),
            ProfileItem("neuron_updates_inactive", inactive * board.value("energy.neuron_update_inactive"), "J",
                        f"{inactive:.0f} inactive updates x energy.neuron_update_inactive",
                        [c("energy.neuron_update_inactive")]),
            ProfileItem("spikes", tot["spikes"] * board.value("energy.spike_within_tile"), "J",
                        f"{tot['spikes']:.0f} spikes x energy.spike_within_tile", [c("energy.spike_within_tile")]),
            ProfileItem("mesh_hops",
                        tot["hops_x"] * board.value("energy.hop_east_west")
                        + tot["hops_y"] * board.value("energy.hop_north_south"), "J",
                        f"{tot['hops_x']:.0f} E-W hops x energy.hop_east_west + {tot['hops_y']:.0f} N-S hops x "
                        "energy.hop_north_south", [c("energy.hop_east_west"), c("energy.hop_north_south")]),
        ]
        t_syn, t_act = board.value("timing.synop"), board.value("timing.neuron_update_active")
        t_in, t_bar = board.value("timing.neuron_update_inactive"), board.value("timing.barrier_max")
        steps = len(next(iter(trace.counts.values()))) if trace.counts else trace.timesteps
        per_core = trace.meta.get("per_core") or {}
        if per_core:
            syn, act = np.asarray(per_core["synops"]) / B, np.asarray(per_core["active_updates"]) / B
            size = np.asarray(per_core["neurons"]) / B
            core_t = syn * t_syn + act * t_act + (size[None, :] - act) * t_in          # (steps, cores)
            compute = float(core_t.max(axis=1).sum())
            formula = "sum over steps of max over cores (synops x timing.synop + active x timing.neuron_update_active"\
                      " + inactive x timing.neuron_update_inactive)"
        else:
            cores = max(1, int(artifact.meta.get("mapping", {}).get("cores_used", 1)))
            compute = (tot["synops"] * t_syn + tot["active_updates"] * t_act + inactive * t_in) / cores
            formula = "(synops x t_synop + active x t_active + inactive x t_inactive) / cores (no per-core counts)"
        tsrc = [c("timing.synop"), c("timing.neuron_update_active"), c("timing.neuron_update_inactive")]
        barrier = steps * t_bar
        total = compute + barrier
        p.latency += [
            ProfileItem("per_inference", total, "s", f"compute + barrier over {steps} Loihi steps", tsrc
                        + [c("timing.barrier_max")]),
            ProfileItem("per_step", total / max(1, steps), "s", "per_inference / Loihi steps", []),
            ProfileItem("compute", compute, "s", formula, tsrc),
            ProfileItem("barrier", barrier, "s", f"{steps} steps x timing.barrier_max", [c("timing.barrier_max")]),
        ]
        mapping = artifact.meta.get("mapping", {})
        p.resources += [
            ProfileItem("cores", float(mapping.get("cores_used", 0)), "core",
                        "partition by every per-core limit (backends/loihi/mapping.py)",
                        [c("limits.cores"), c("limits.neurons_per_core"), c("limits.synaptic_memory_per_core")]),
            ProfileItem("chips", float(mapping.get("chips_used", 1)), "chip", "cores // cores per chip",
                        [c("limits.chips")]),
            ProfileItem("interchip_packets", trace.total("interchip_packets") / B, "packet",
                        "spike packets to cores on another chip, per inference (energy unpublished, not charged)",
                        []),
            ProfileItem("neurons", float(mapping.get("neurons", 0)), "neuron", "sum of population sizes", []),
            ProfileItem("synapses", float(mapping.get("synapses", 0)), "synapse", "nonzero effective weights", []),
            ProfileItem("loihi_steps", float(steps), "step", "model timesteps + pipeline latency", []),
        ]
        p.notes.extend(board.notes)
        if board.const("energy.synop").status == "estimate":
            p.notes.append(f"{board.name}: energy and latency figures are Loihi-1-derived estimates "
                           "(Davies et al. 2018 Table 2); Loihi 2 per-operation figures are unpublished.")
        p.notes.append("Davies et al. 2018 Table 2 figures are pre-silicon simulations at 0.75 V.")
        return p
