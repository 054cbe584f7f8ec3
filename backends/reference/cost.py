"""Host-CPU cost estimate for the reference board (coarse: FLOPs x per-FLOP figures from the board spec)."""

from __future__ import annotations

from spikeforge.artifact import Artifact
from spikeforge.boardspec import get_board
from spikeforge.interfaces import CostModel, Profile, ProfileItem, Trace


class ReferenceCostModel(CostModel):
    def profile(self, artifact: Artifact, trace: Trace) -> Profile:
        board = get_board(artifact.board)
        e_flop, t_flop = board.value("energy.flop"), board.value("timing.flop")
        batch = max(1, trace.batch)
        # A dense CPU simulator pays for every weight every step (2 FLOPs per MAC) plus ~4 FLOPs per neuron.
        macs = float(artifact.meta.get("dense_macs_per_step", 0)) * trace.timesteps
        neuron_flops = 4.0 * trace.total("neuron_updates") / batch
        flops = 2.0 * macs + neuron_flops
        src = [board.cite("energy.flop")]
        p = Profile(board=board.name)
        p.energy.append(ProfileItem("compute", flops * e_flop, "J", "(2 x dense MACs + 4 x neuron updates) x energy.flop", src))
        p.latency.append(ProfileItem("per_inference", flops * t_flop, "s", "FLOPs x timing.flop", [board.cite("timing.flop")]))
        p.latency.append(ProfileItem("per_step", flops * t_flop / max(1, trace.timesteps), "s", "per_inference / T", []))
        p.resources.append(ProfileItem("flops_per_inference", flops, "FLOP", "2 x MACs + neuron work", []))
        p.notes.extend(board.notes)
        return p
