"""`--set` keys the Loihi backend reads today (provisional: the Loihi engineer's file supersedes this one)."""

from __future__ import annotations

from spikeforge.options import Opt

OPTIONS: dict[str, Opt] = {
    "loihi.horizon_steps": Opt(int, 100, "steps over which the lowering checks state ranges", min=1, max=10_000_000),
    "loihi.split_sign": Opt(bool, True, "split mixed-sign weights into excitatory/inhibitory synapses"),
    "loihi.allow_extra_latency": Opt(bool, False, "accept lowerings that add pipeline latency"),
}
