"""Energy and latency of a SpiNNaker run from emulated event counts and the board's cited constants.

Two views are reported side by side and never added together twice:

* board power: (idle chips + active cores) x run time, plus router energy per packet hop
  (SpiNNMachine's measured board constants);
* per-event: synaptic events x 13.3 nJ + neuron updates x 26 nJ (keras-spiking ModelEnergy, Hoppner 2019),
  given as a note-level cross-check item ("per_event_model") in `resources`.

Latency is real time: ticks x tick length x the time scale factor the emulated cycle counts require.
"""

from __future__ import annotations

from spikeforge.artifact import Artifact
from spikeforge.boardspec import get_board
from spikeforge.interfaces import CostModel, Profile, ProfileItem, Trace


class SpiNNakerCostModel(CostModel):
    def profile(self, artifact: Artifact, trace: Trace) -> Profile:
        board = get_board(artifact.board)
        mapping = artifact.meta.get("mapping", {})
        batch = max(1, trace.batch)
        T = trace.timesteps
        dt_ms = float(artifact.meta.get("dt_ms", 1.0))
        cores_info = trace.meta.get("cores", {})
        # the slower of what the program is configured with and what its emulated cycle counts need
        tsf = max(float(cores_info.get("time_scale_factor", 1.0)), float(artifact.meta.get("time_scale_factor") or 1.0))
        # sPyNNaker runs one machine time step per tick of dt (real time when dt = 1 ms), slowed by the factor
        step_s = dt_ms / 1000.0 * tsf
        run_s = T * step_s
        n_chips = int(mapping.get("n_chips", 1))
        n_cores = int(mapping.get("n_cores", 1))
        p = Profile(board=board.name)
        e_idle = n_chips * board.value("energy.idle_chip_w") * run_s
        p.energy.append(ProfileItem("idle_chips", e_idle, "J", f"{n_chips} chips x idle_chip_w x run time {run_s:.4g} s",
                                    [board.cite("energy.idle_chip_w"), board.cite("timing.tick_s")]))
        e_cores = n_cores * board.value("energy.active_core_w") * run_s
        p.energy.append(ProfileItem("active_cores", e_cores, "J", f"{n_cores} cores x active_core_w x run time",
                                    [board.cite("energy.active_core_w")]))
        packets = trace.total("packets") / batch
        hops = float(mapping.get("mean_route_chips", 1.0))
        e_pkt = packets * hops * board.value("energy.packet_bits") * board.value("energy.router_bit_j")
        p.energy.append(ProfileItem("routing", e_pkt, "J",
                                    f"{packets:.0f} packets x {hops:.2f} routers per delivery (mean over routes) x packet_bits x "
                                    "router_bit_j",
                                    [board.cite("energy.packet_bits"), board.cite("energy.router_bit_j")]))
        syn = trace.total("synops") / batch
        upd = trace.total("neuron_updates") / batch
        e_event = syn * board.value("energy.synop_j") + upd * board.value("energy.neuron_update_j")
        p.resources.append(ProfileItem("per_event_model_energy", e_event, "J",
                                       "synaptic events x synop_j + neuron updates x neuron_update_j "
                                       "(keras-spiking ModelEnergy figures; an alternative estimate, not added)",
                                       [board.cite("energy.synop_j"), board.cite("energy.neuron_update_j")]))
        p.latency.append(ProfileItem("per_step", step_s, "s", f"dt {dt_ms} ms (real-time tick) x time scale factor {tsf}",
                                     [board.cite("timing.tick_s"), board.cite("timing.clock_hz")]))
        p.latency.append(ProfileItem("per_inference", run_s, "s", f"{T} steps x per_step", [board.cite("timing.tick_s")]))
        p.resources.append(ProfileItem("cores", n_cores, "cores", "partitioned slices + delay extensions",
                                       [board.cite("limits.neurons_per_core")]))
        p.resources.append(ProfileItem("chips", n_chips, "chips", "chips holding at least one core",
                                       [board.cite("limits.app_cores_per_chip")]))
        routing = mapping.get("routing", {})
        p.resources.append(ProfileItem("max_routing_entries", routing.get("max_entries", 0), "entries",
                                       "largest per-chip table before compression",
                                       [board.cite("limits.router_entries")]))
        p.resources.append(ProfileItem("max_cycles_per_tick", cores_info.get("max_cycles", 0.0), "cycles",
                                       "worst core and tick: overhead + neurons x c_n + syn events x c_s + packets x "
                                       "c_p + spikes x c_o", [board.cite("timing.cycles_per_tick"),
                                                              board.cite("timing.cycles_per_synaptic_event"),
                                                              board.cite("timing.cycles_per_neuron_update")]))
        p.resources.append(ProfileItem("time_scale_factor", tsf, "x", "max cycles / (clock_hz x dt), rounded up to 0.1, >= 1",
                                       [board.cite("timing.clock_hz")]))
        p.resources.append(ProfileItem("whole_board_idle_energy", board.value("energy.idle_board_w") * run_s, "J",
                                       "idle_board_w x run time (the whole board powered; not added)",
                                       [board.cite("energy.idle_board_w")]))
        hot = sorted((c for c in cores_info.get("per_core", []) if c.get("dropped_packet_risk")),
                     key=lambda c: -c["max_cycles"])
        for c in hot[:5]:
            p.notes.append(f"core {c['population']}[{c['slice']}] ({c['neurons']} neurons): up to "
                           f"{c['max_cycles']:.0f} cycles per step, {c['overrun_ticks']} overrun steps, "
                           f"{c['max_packets_per_tick']:.0f} packets in one step: dropped-packet risk at real time")
        if cores_info.get("overruns"):
            p.notes.append(f"{cores_info['overruns']} core-steps exceed the per-step cycle budget (clock x dt) at "
                           f"real time: run with time_scale_factor >= {cores_info.get('time_scale_factor')}")
        p.notes.extend(board.notes)
        return p
