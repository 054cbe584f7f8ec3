"""Static timing analysis of an SFQ netlist over one clock period.

Every source is assumed to fire (inputs, neurons, DFFs, comparators passing), so each pulse path is walked
once from its source with the library delays. Then per cell:

* MERGE: any two arrivals (either input, including the next period's first one) closer than min_sep_fs.
* NEURON: inputs closer than min_sep_fs; each input must land in its capture window
  ``[clk - period + hold, clk - setup]`` (captured by the clock of the same step); exactly one clock.
* DFF: data must land in ``[clk + hold, clk + period - setup]`` (captured by the next step's clock), at most
  one data pulse per period (a DFF stores one fluxon).
* Storage-loop capacity: the worst case (threshold - 1 + excitatory pulses per period) is a warning.

Every violation names the cell, the port, the times and the rule, like the emulator's error mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .netlist import Netlist


def _ps(t: int) -> str:
    return f"{t / 1000:.3f} ps"


@dataclass
class StaReport:
    period_fs: int
    violations: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for v in self.violations:
            kinds[v["kind"]] = kinds.get(v["kind"], 0) + 1
        return {"period_fs": self.period_fs, "violations": len(self.violations), "by_kind": kinds,
                "warnings": len(self.warnings), "checked": self.checked}

    def text(self, limit: int = 50) -> str:
        lines = [f"static timing: period {_ps(self.period_fs)}, {len(self.violations)} violation(s), "
                 f"{len(self.warnings)} warning(s); checked {self.checked}"]
        lines += [f"  VIOLATION {v['kind']}: {v['message']}" for v in self.violations[:limit]]
        if len(self.violations) > limit:
            lines.append(f"  ... {len(self.violations) - limit} more")
        lines += [f"  warning: {w}" for w in self.warnings[:limit]]
        return "\n".join(lines) + "\n"


def analyse(nl: Netlist) -> StaReport:
    """Walk all pulse paths of step 0 and check every timing rule of the library."""
    from spikeforge.emulators.sfq import DFF, MERGE, NEURON, OUT, PASS, SYN, Program

    prog = Program(nl)
    P = nl.period_fs
    rep = StaReport(P)
    arrivals: list[list[tuple[int, int]]] = [[] for _ in range(prog.n)]
    stack: list[tuple[int, int, int]] = []
    for ids in nl.inputs.values():
        stack.extend((prog.offset[c], c, 0) for c in ids)
    if nl.clock_root >= 0:
        stack.append((prog.offset[nl.clock_root], nl.clock_root, 0))
    while stack:
        t, c, port = stack.pop()
        k = prog.code[c]
        if k in (MERGE, NEURON, DFF, OUT):
            arrivals[c].append((t, port))
        fire = k in (PASS, MERGE, SYN) or (k == NEURON and port == 2) or (k == DFF and port == 1)
        if fire:
            for dk, d in prog.outs[c]:
                stack.append((t + d, dk >> 2, dk & 3))
    checked = {"MERGE": 0, "NEURON": 0, "DFF": 0}

    def add(kind: str, c: int, msg: str, **nums: Any) -> None:
        rec = {"kind": kind, "cell": prog.names[c], "type": prog.types[c], "message": msg}
        rec.update(nums)
        rep.violations.append(rec)

    for c in range(prog.n):
        k = prog.code[c]
        arr = sorted(arrivals[c])
        name = prog.names[c]
        if k == MERGE:
            checked["MERGE"] += 1
            sep = prog.sep[c]
            times = [t for t, _ in arr]
            for (t0, p0), (t1, p1) in zip(arr, arr[1:]):
                if t1 - t0 < sep:
                    add("merger collision", c, f"MERGE '{name}': pulses on {'ab'[p0]} at {_ps(t0)} and {'ab'[p1]} at "
                        f"{_ps(t1)} are {_ps(t1 - t0)} apart (minimum {_ps(sep)})", separation_fs=t1 - t0,
                        min_sep_fs=sep)
            if len(times) > 1 and times[0] + P - times[-1] < sep:
                add("merger collision", c, f"MERGE '{name}': last pulse at {_ps(times[-1])} and next period's first at "
                    f"{_ps(times[0] + P)} are {_ps(times[0] + P - times[-1])} apart (minimum {_ps(sep)})",
                    separation_fs=times[0] + P - times[-1], min_sep_fs=sep)
        elif k in (NEURON, DFF):
            checked[prog.types[c]] += 1
            clk_port = 2 if k == NEURON else 1
            clks = [t for t, p in arr if p == clk_port]
            data = [(t, p) for t, p in arr if p != clk_port]
            if len(clks) != 1:
                add("clock", c, f"{prog.types[c]} '{name}' receives {len(clks)} clock pulses per period (expected 1)",
                    clocks=len(clks))
                continue
            clk = clks[0]
            setup, hold = prog.setup[c], prog.hold[c]
            if k == NEURON:
                lo, hi, pname = clk - P + hold, clk - setup, ("exc", "inh")
                sep = prog.sep[c]
                for (t0, _), (t1, p1) in zip(data, data[1:]):
                    if t1 - t0 < sep:
                        add("neuron input collision", c, f"NEURON '{name}': inputs at {_ps(t0)} and {_ps(t1)} ({pname[p1]}) "
                            f"are {_ps(t1 - t0)} apart (minimum {_ps(sep)})", separation_fs=t1 - t0, min_sep_fs=sep)
                n_exc = sum(1 for _, p in data if p == 0)
                u = prog.unit[c]
                worst = prog.theta[c] - 1 + n_exc * u
                if worst > prog.cap[c]:
                    rep.warnings.append(f"NEURON '{name}': up to {worst / u:g} fluxons per period (threshold "
                                        f"{prog.theta[c] / u:g} - {1 / u:g} + {n_exc} excitatory pulses) > capacity "
                                        f"{prog.cap[c] // u}")
            else:
                lo, hi, pname = clk + hold, clk + P - setup, ("d",)
                if len(data) > 1:
                    add("storage-loop overflow", c, f"DFF '{name}' can receive {len(data)} data pulses per period "
                        "but stores one fluxon", count=len(data), capacity=1)
            for t, p in data:
                if t > hi:
                    add("setup violation", c, f"{prog.types[c]} '{name}': {pname[p]} arrives at {_ps(t)}, clock at "
                        f"{_ps(clk)}, needs to arrive by {_ps(hi)} (setup {_ps(setup)}, slack {_ps(hi - t)}); "
                        "it is captured one step late", slack_fs=hi - t, arrival_fs=t, clock_fs=clk)
                elif t < lo:
                    add("hold violation", c, f"{prog.types[c]} '{name}': {pname[p]} arrives at {_ps(t)}, earliest allowed "
                        f"{_ps(lo)} (clock at {_ps(clk)}, hold {_ps(hold)}, slack {_ps(t - lo)})", slack_fs=t - lo,
                        arrival_fs=t, clock_fs=clk)
    rep.checked = checked
    return rep
