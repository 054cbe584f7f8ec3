"""Cost model: energy and latency of an emulated run from per-cell operation counts and board constants.

Dynamic energy = sum over cells of (operations x cell bias current x Phi0 x dynamic factor); static energy =
V_b x total bias x static factor x latency (zero for ERSFQ); cooling multiplies chip energy by (1 + overhead).
"""

from __future__ import annotations

from spikeforge.artifact import Artifact
from spikeforge.boards import get_board
from spikeforge.interfaces import CostModel, Profile, ProfileItem, Trace

from .netlist import Netlist


class SFQCostModel(CostModel):
    def __init__(self, cooling_overhead: float | None = None):
        self.cooling_overhead = cooling_overhead

    def profile(self, artifact: Artifact, trace: Trace) -> Profile:
        board = get_board(artifact.board)
        if "code/netlist.json" in artifact.files:
            nl = Netlist.from_json(artifact.files["code/netlist.json"])
            tot, period_fs, latency_fs = nl.totals(), nl.period_fs, nl.latency_fs
        else:   # analytic mode (estimate.py): totals from the artifact's estimate
            est = artifact.meta["estimate"]
            tot = {"jj": est["jj"], "bias_uA": est["bias_uA"], "plumbing_fraction": float("nan")}
            period_fs, latency_fs = int(est["period_fs"]), int(est["latency_fs"])
        batch = max(1, int(trace.meta.get("batch", trace.batch)))
        steps = int(trace.meta.get("timesteps", trace.timesteps))
        phi0, vb = board.value("physics.phi0"), board.value("physics.bias_voltage")
        sf, df = board.value("physics.static_power_factor"), board.value("physics.dynamic_energy_factor")
        eta = self.cooling_overhead
        if eta is None:
            eta = artifact.options.extra.get("sfq.cooling_overhead")
            eta = float(board.value("physics.cooling_overhead") if eta is None else eta)
        charge_uA = sum(trace.meta.get("bias_ops_uA", {}).values())
        dyn_formula = "sum(cell operations x cell bias x Phi0) x dynamic_energy_factor / batch"
        if trace.meta.get("mode") == "array":
            # the array engine counts pulses, not cell operations: each pulse is charged the average switching
            # charge of one pulse path (all cells' bias / pulse paths per step), an estimate
            est = artifact.meta.get("estimate", {})
            charge_uA = trace.total("synops") * tot["bias_uA"] / max(1, int(est.get("pulses_per_step", 1)))
            dyn_formula = "pulses x (total bias / pulse paths) x Phi0 x dynamic_energy_factor / batch (estimate)"
        dyn = charge_uA * 1e-6 * phi0 * df / batch
        latency = ((steps - 1) * period_fs + latency_fs) * 1e-15
        p_static = vb * tot["bias_uA"] * 1e-6 * sf
        stat = p_static * latency
        cite_dyn = [board.cite("physics.phi0"), board.cite("physics.dynamic_energy_factor")] + \
            [board.cite(f"physics.{k}_bias") for k in ("jtl", "split", "merge", "dff", "neuron")]
        cite_stat = [board.cite("physics.bias_voltage"), board.cite("physics.static_power_factor")]
        p = Profile(board=board.name)
        p.energy.append(ProfileItem("dynamic", dyn, "J", dyn_formula, cite_dyn))
        p.energy.append(ProfileItem("static", stat, "J", "V_b x total bias x static_power_factor x latency", cite_stat))
        chip = dyn + stat
        p.latency.append(ProfileItem("per_inference", latency, "s", "(T - 1) x clock period + pipeline latency",
                                     [board.cite("timing.merge_stagger"), board.cite("timing.clock_target")]))
        p.latency.append(ProfileItem("per_step", period_fs * 1e-15, "s", "clock period (one reference time step)", []))
        p.latency.append(ProfileItem("pipeline", latency_fs * 1e-15, "s", "input trigger to output pulse, one step", []))
        cool = [board.cite("physics.cooling_overhead")]
        p.resources += [
            ProfileItem("josephson_junctions", tot["jj"], "JJ", "sum of cell junction counts",
                        [board.cite("parameters.jtl_jj"), board.cite("parameters.merge_jj")]),
            ProfileItem("bias_current", tot["bias_uA"] * 1e-6, "A", "sum of cell bias currents", []),
            ProfileItem("static_power", p_static, "W", "V_b x total bias x static_power_factor", cite_stat),
            ProfileItem("plumbing_fraction", tot["plumbing_fraction"], "-", "JJs in JTL/PTL/SPLIT/MERGE / all JJs", []),
            ProfileItem("energy_with_cooling", chip * (1 + eta), "J", f"chip energy x (1 + {eta} W/W cooling)", cool),
            ProfileItem("cooling_overhead", eta, "W/W", "wall-plug W per W at 4.2 K (parameter)", cool),
            ProfileItem("emulated_events", float(trace.meta.get("events", 0)) / batch, "pulses",
                        "cell input pulses per inference", []),
            ProfileItem("timing_violations", float(trace.meta.get("violation_count", 0)), "-",
                        "violations seen by the emulator (physical mode)", []),
        ]
        p.notes.extend(board.notes)
        p.notes.append(f"energy per inference with cooling ({eta} W/W): {chip * (1 + eta):.4g} J; without: {chip:.4g} J")
        return p
