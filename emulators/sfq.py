"""Pulse-level emulator of SFQ netlists: discrete events in integer femtoseconds.

Every cell is a small timed state machine with the library's timing rules:

* JTL / PTL / SPLIT / IN / CLK: pass (or copy) the pulse after their delay.
* MERGE: two input pulses closer than ``min_sep_fs`` collide.
* DFF: one-fluxon store; data within ``setup_fs`` before a clock or ``hold_fs`` after it violates timing,
  a second data pulse while full overflows.
* NEURON: clocked storage loop counting fluxons (exc +1, inh -1) up to a capacity; on its clock it fires
  when the count reaches the threshold, resets (zero / subtract, immediate / delayed) and leaks (L-R decay).
  A pulse that would take the loop past +-capacity escapes through the loop's escape junction: the count
  saturates. That is the cell's defined behaviour (like a saturating register), not a timing fault, so it is
  counted per population in ``trace.meta["saturations_by_population"]``, never as a violation.
* SYN: Josephson comparator passing each pulse with probability p (seeded).
* OUT: SFQ/DC converter; records pulses, converted to time steps.

Modes: ``error`` stops at the first violation with the cell, the times and the rule; ``physical`` does what
the chip would do (colliding pulse dropped, late data caught one clock later, a second fluxon into a DFF
escapes) and counts the violations in ``trace.meta``. Neuron saturation happens in both modes.

The event queue is a calendar: a heapq of distinct pulse times and, per time, a list of ``cell << 2 | port``
ints sorted before processing, so pulses at the same femtosecond resolve by cell id then port and runs are
deterministic. Pulses through JTL/PTL/SPLIT (no timing rules) are compiled into direct fan-out lists;
their operation counts are credited after the run (``fast=False`` schedules every cell as an event).
"""

from __future__ import annotations

import random
from heapq import heapify, heappop, heappush
from typing import Any

import numpy as np

from spikeforge.artifact import Artifact
from spikeforge.backends.sfq.netlist import PORTS, Netlist
from spikeforge.errors import InputError, SpikeforgeError
from spikeforge.interfaces import Emulator, Trace

from .sfq_array import run_arrays

PASS, MERGE, SYN, NEURON, DFF, OUT = range(6)
_CODE = {"IN": PASS, "CLK": PASS, "JTL": PASS, "PTL": PASS, "SPLIT": PASS, "MERGE": MERGE, "SYN": SYN,
         "NEURON": NEURON, "DFF": DFF, "OUT": OUT}
MODES = ("error", "physical")
_NEVER = -(1 << 60)


class TimingViolation(SpikeforgeError):
    """A timing rule broken while emulating in `error` mode: names the cell, the rule and the times."""


def _ps(t: int) -> str:
    return f"{t / 1000:.3f} ps"


class Program:
    """A netlist compiled to flat lists for the event loop."""

    def __init__(self, nl: Netlist):
        nl.validate()
        self.nl = nl
        n = len(nl.cells)
        self.n = n
        self.shift = 2 + max(1, n).bit_length()
        lib = nl.library
        self.names = [c.name for c in nl.cells]
        self.types = [c.type for c in nl.cells]
        self.code = [_CODE[c.type] for c in nl.cells]
        delay = []
        for c in nl.cells:
            base = int(lib[c.type]["delay_fs"])
            if c.type == "JTL":
                base *= int(c.params.get("stages", 1))
            elif c.type == "PTL":
                base = int(c.params.get("delay_fs", base))
            delay.append(base)
        self.delay = delay
        portidx = {t: ({p: i for i, p in enumerate(ins)}, {p: i for i, p in enumerate(outs)})
                   for t, (ins, outs) in PORTS.items()}
        outs: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        slots: list[list[tuple[int, int, int] | None]] = [[None] * len(PORTS[c.type][1]) for c in nl.cells]
        for s, sp, d, dp, dl in nl.wires:
            k = portidx[self.types[s]][1][sp]
            slots[s][k] = (d, portidx[self.types[d]][0][dp], dl)
        for c in range(n):
            for slot in slots[c]:
                if slot is not None:
                    d, dp, dl = slot
                    outs[c].append(((d << 2) | dp, delay[c] + dl))
        self.outs = [tuple(o) for o in outs]
        # Compiled fan-out: pulses through JTL/PTL/SPLIT are deterministic, so each emitting cell gets the
        # list of stateful cells it reaches (with summed delays) and the pass-through cells it switches,
        # whose operation counts are credited after the run. Timing rules live only in stateful cells.
        passthrough = [self.code[c] == PASS and self.types[c] not in ("IN", "CLK") for c in range(n)]
        fast: list[tuple[tuple[int, int], ...]] = []
        through: list[tuple[int, ...]] = []
        for c in range(n):
            dst: list[tuple[int, int]] = []
            via: list[int] = []
            stack = [(dk, d) for dk, d in reversed(self.outs[c])]
            while stack:
                dk, d = stack.pop()
                tgt = dk >> 2
                if passthrough[tgt]:
                    via.append(tgt)
                    stack.extend((dk2, d + d2) for dk2, d2 in reversed(self.outs[tgt]))
                else:
                    dst.append((dk, d))
            fast.append(tuple(dst))
            through.append(tuple(via))
        self.fast_outs = fast
        self.through = through
        self.sep = [int(lib[t].get("min_sep_fs", 0)) for t in self.types]
        self.setup = [int(lib[t].get("setup_fs", 0)) for t in self.types]
        self.hold = [int(lib[t].get("hold_fs", 0)) for t in self.types]
        prm = [c.params for c in nl.cells]
        self.p = [float(q.get("p", 1.0)) for q in prm]
        self.theta = [int(q.get("threshold", 1)) for q in prm]
        self.cap = [int(q.get("capacity", 1 << 30)) << int(q.get("frac_bits", 0)) for q in prm]
        self.subtract = [q.get("reset", "zero") == "subtract" for q in prm]
        self.sub = [int(q.get("reset_sub", q.get("threshold", 1))) for q in prm]
        self.v_reset = [int(q.get("v_reset", 0)) for q in prm]
        self.delayed = [q.get("reset_timing", "immediate") == "delayed" for q in prm]
        # exact leak (backends/sfq/leak.py): count x leak_num / 2^leak_bits per clock, remainder carried;
        # a synaptic pulse is 2^frac_bits counter units
        self.leak_num = [int(q.get("leak_num", 0)) if q.get("leak", "none") == "decay" else 0 for q in prm]
        self.leak_bits = [int(q.get("leak_bits", 0)) for q in prm]
        self.unit = [1 << int(q.get("frac_bits", 0)) for q in prm]
        self.clk_fs = [int(q.get("clk_fs", 0)) for q in prm]
        self.offset = [int(q.get("offset_fs", q.get("phase_fs", 0))) for q in prm]
        self.layer = [str(q.get("layer", "")) for q in prm]
        self.index = [int(q.get("index", -1)) for q in prm]
        self.v_unit = [float(q.get("v_unit", 0.0)) for q in prm]
        self.out_index: dict[int, tuple[str, int]] = {}
        for node, ids in nl.outputs.items():
            for i, c in enumerate(ids):
                self.out_index[c] = (node, i)

    # ------------------------------------------------------------------------------------------
    def simulate(self, triggers: list[tuple[int, int]], *, mode: str = "physical", seed: int = 0,
                 ops: list[int] | None = None, violations: list[dict[str, Any]] | None = None,
                 max_violations: int = 1000, fast: bool = True,
                 kinds: dict[str, int] | None = None, saturations: dict[str, int] | None = None,
                 vlog: list[tuple[int, int, int]] | None = None) -> tuple[list[tuple[int, int]], list[int],
                                                       list[int], int]:
        """Run one sample. triggers: (time_fs, cell) pulses into IN/CLK cells.

        Returns (out pulses (t, cell), neuron fires and neuron input pulses as raw event keys, events)."""
        if mode not in MODES:
            raise SpikeforgeError(f"unknown emulator mode {mode!r}; allowed: {MODES}")
        error = mode == "error"
        S = self.shift
        n = self.n
        code, sep, setup, hold = self.code, self.sep, self.setup, self.hold
        outs = self.fast_outs if fast else self.outs
        emits = [0] * n
        prob, theta, cap, subtract, v_reset, sub = self.p, self.theta, self.cap, self.subtract, self.v_reset, self.sub
        delayed, leak_num, leak_bits, unit = self.delayed, self.leak_num, self.leak_bits, self.unit
        acc = [0] * n                 # NEURON leak accumulator (carried remainder)
        if ops is None:
            ops = [0] * n
        if violations is None:
            violations = []
        rnd = random.Random(seed).random
        ops_before = sum(ops)
        # Calendar of pending pulses: a heap of distinct times, and per time the (cell << 2 | port) list.
        # Balanced SFQ netlists deliver many pulses at identical times, so most pulses skip the heap.
        buckets: dict[int, list[int]] = {}
        for t, c in triggers:
            buckets.setdefault(t, []).append(c << 2)
        times = list(buckets)
        heapify(times)
        push, pop = heappush, heappop
        # cell state
        last_in = [_NEVER] * n        # MERGE / NEURON / DFF: last data pulse time
        last_port = [0] * n
        last_delta = [0] * n
        last_clk = [_NEVER] * n
        count = [0] * n               # NEURON fluxons, DFF stored bit
        pending = [False] * n         # NEURON delayed reset
        out_pulses: list[tuple[int, int]] = []
        fires: list[int] = []
        syn_in: list[int] = []

        def violate(kind: str, c: int, t: int, msg: str, **nums: Any) -> None:
            rec = {"kind": kind, "cell": self.names[c], "type": self.types[c], "time_fs": t, "message": msg}
            rec.update(nums)
            if kinds is not None:
                kinds[kind] = kinds.get(kind, 0) + 1
            if error:
                raise TimingViolation(f"{kind}: {msg}", node=self.names[c])
            if len(violations) < max_violations:
                violations.append(rec)

        while times:
            t = pop(times)
            batch = buckets.pop(t)
            if len(batch) > 1:
                batch.sort()
            for cp in batch:
                c = cp >> 2
                ops[c] += 1
                k = code[c]
                if k == PASS:
                    emits[c] += 1
                    for dk, d in outs[c]:
                        tt = t + d
                        bk = buckets.get(tt)
                        if bk is None:
                            buckets[tt] = [dk]
                            push(times, tt)
                        else:
                            bk.append(dk)
                elif k == MERGE:
                    prev = last_in[c]
                    if t - prev < sep[c]:
                        port = cp & 3
                        violate("merger collision", c, t,
                                f"MERGE '{self.names[c]}': pulse on input {'ab'[port]} at {_ps(t)} arrives "
                                f"{_ps(t - prev)} after the pulse on input {'ab'[last_port[c]]} at {_ps(prev)} "
                                f"(minimum separation {_ps(sep[c])}); the second pulse is lost",
                                separation_fs=t - prev, min_sep_fs=sep[c])
                        continue
                    last_in[c] = t
                    last_port[c] = cp & 3
                    emits[c] += 1
                    for dk, d in outs[c]:
                        tt = t + d
                        bk = buckets.get(tt)
                        if bk is None:
                            buckets[tt] = [dk]
                            push(times, tt)
                        else:
                            bk.append(dk)
                elif k == SYN:
                    if rnd() < prob[c]:
                        emits[c] += 1
                        for dk, d in outs[c]:
                            tt = t + d
                            bk = buckets.get(tt)
                            if bk is None:
                                buckets[tt] = [dk]
                                push(times, tt)
                            else:
                                bk.append(dk)
                elif k == NEURON:
                    port = cp & 3
                    if port == 2:  # clock: evaluate the storage loop
                        v = count[c]
                        late = 0
                        if t - last_in[c] < setup[c]:
                            violate("setup violation", c, t,
                                    f"NEURON '{self.names[c]}': input pulse at {_ps(last_in[c])} is {_ps(t - last_in[c])} "
                                    f"before the clock at {_ps(t)} (setup {_ps(setup[c])}); it is counted one clock late",
                                    slack_fs=(t - last_in[c]) - setup[c])
                            late = last_delta[c]
                            v -= late
                        if delayed[c] and pending[c]:
                            v = v - sub[c] if subtract[c] else v_reset[c]
                        fired = v >= theta[c]
                        if fired:
                            fires.append((t << S) | cp)
                            emits[c] += 1
                            for dk, d in outs[c]:
                                tt = t + d
                                bk = buckets.get(tt)
                                if bk is None:
                                    buckets[tt] = [dk]
                                    push(times, tt)
                                else:
                                    bk.append(dk)
                            if not delayed[c]:
                                v = v - sub[c] if subtract[c] else v_reset[c]
                        pending[c] = fired
                        if vlog is not None:  # probes: post-reset state, before the leak (refsim's v)
                            vlog.append((t, c, v))
                        if leak_num[c] and v:  # leak unit: carry-outs of acc += v x num are leak fluxons
                            a = acc[c] + v * leak_num[c]
                            lk = a >> leak_bits[c]
                            acc[c] = a - (lk << leak_bits[c])
                            v -= lk
                        count[c] = v + late
                        last_clk[c] = t
                    else:
                        if t - last_in[c] < sep[c]:
                            violate("neuron input collision", c, t,
                                    f"NEURON '{self.names[c]}': pulse on {('exc', 'inh')[port]} at {_ps(t)} is "
                                    f"{_ps(t - last_in[c])} after the previous input (minimum {_ps(sep[c])}); it is lost",
                                    separation_fs=t - last_in[c], min_sep_fs=sep[c])
                            continue
                        if t - last_clk[c] < hold[c]:
                            violate("hold violation", c, t,
                                    f"NEURON '{self.names[c]}': input on {('exc', 'inh')[port]} at {_ps(t)} is "
                                    f"{_ps(t - last_clk[c])} after the clock at {_ps(last_clk[c])} (hold {_ps(hold[c])}); "
                                    "it is lost", slack_fs=(t - last_clk[c]) - hold[c])
                            continue
                        delta = unit[c] if port == 0 else -unit[c]
                        v = count[c] + delta
                        if v > cap[c] or v < -cap[c]:   # the fluxon escapes: the loop saturates
                            if saturations is not None:
                                saturations[self.layer[c]] = saturations.get(self.layer[c], 0) + 1
                            delta = 0
                            v = count[c]
                        count[c] = v
                        last_in[c] = t
                        last_delta[c] = delta
                        syn_in.append((t << S) | cp)
                elif k == DFF:
                    if cp & 3 == 0:  # data
                        if t - last_clk[c] < hold[c]:
                            violate("hold violation", c, t,
                                    f"DFF '{self.names[c]}': data at {_ps(t)} is {_ps(t - last_clk[c])} after the clock at "
                                    f"{_ps(last_clk[c])} (hold {_ps(hold[c])}); the data pulse is lost",
                                    slack_fs=(t - last_clk[c]) - hold[c])
                            continue
                        if count[c]:
                            violate("storage-loop overflow", c, t,
                                    f"DFF '{self.names[c]}': second data pulse at {_ps(t)} while still holding the one "
                                    f"from {_ps(last_in[c])}; the loop stores one fluxon, the new one escapes",
                                    count=2, capacity=1)
                            continue
                        count[c] = 1
                        last_in[c] = t
                    else:  # clock
                        last_clk[c] = t
                        if count[c]:
                            if t - last_in[c] < setup[c]:
                                violate("setup violation", c, t,
                                        f"DFF '{self.names[c]}': data at {_ps(last_in[c])} is {_ps(t - last_in[c])} before "
                                        f"the clock at {_ps(t)} (setup {_ps(setup[c])}); it is read out one clock late",
                                        slack_fs=(t - last_in[c]) - setup[c])
                                continue
                            count[c] = 0
                            emits[c] += 1
                            for dk, d in outs[c]:
                                tt = t + d
                                bk = buckets.get(tt)
                                if bk is None:
                                    buckets[tt] = [dk]
                                    push(times, tt)
                                else:
                                    bk.append(dk)
                else:  # OUT
                    out_pulses.append((t, c))
        for c in range(n):
            e = emits[c]
            if e and fast:
                for q in self.through[c]:
                    ops[q] += e
        events = sum(ops) - ops_before
        return out_pulses, fires, syn_in, events


def _probe(prog: Program, states: dict[str, np.ndarray], fires: list[int], vlog: list[tuple[int, int, int]],
           b: int, T: int, B: int) -> None:
    """Hidden-layer probes under NIR node names: '<node>.s' spikes and '<node>.v' in float units."""
    P, S = prog.nl.period_fs, prog.shift
    sizes: dict[str, int] = {}
    for c, name in enumerate(prog.layer):
        if name and prog.types[c] == "NEURON":
            sizes[name] = max(sizes.get(name, 0), prog.index[c] + 1)
    for name, n in sizes.items():
        states.setdefault(f"{name}.s", np.zeros((T, B, n), np.float32))
        states.setdefault(f"{name}.v", np.zeros((T, B, n), np.float32))
    for k in fires:
        t, c = k >> S, (k >> 2) & ((1 << (S - 2)) - 1)
        step = (t - prog.clk_fs[c] + P // 2) // P
        if 0 <= step < T:
            states[f"{prog.layer[c]}.s"][step, b, prog.index[c]] = 1.0
    for t, c, v in vlog:
        step = (t - prog.clk_fs[c] + P // 2) // P
        if 0 <= step < T:
            states[f"{prog.layer[c]}.v"][step, b, prog.index[c]] = v * prog.v_unit[c]


def _shaped(tr: Trace, program: dict[str, Any] | None) -> Trace:
    """Probes in the NIR node's own shape (T, B, *node_shape), as the Trace contract says."""
    if program:
        for key in list(tr.states):
            node = key.rsplit(".", 1)[0]
            shape = program["layers"].get(node, {}).get("shape")
            if shape:
                a = tr.states[key]
                tr.states[key] = a.reshape(a.shape[0], a.shape[1], *shape)
    return tr


def prepare_inputs(sizes: dict[str, int], encoding: dict[str, str], inputs: dict[str, np.ndarray]
                   ) -> dict[str, np.ndarray]:
    """Check and flatten inputs to (T, B, n) 0/1 pulses; sigma-delta encode analog inputs."""
    T = B = None
    flat: dict[str, np.ndarray] = {}
    for node, n in sizes.items():
        if node not in inputs:
            raise InputError(f"no data for input node '{node}'; got keys {sorted(inputs)}")
        x = np.asarray(inputs[node])
        if x.ndim < 2:
            raise InputError(f"input '{node}' must be shaped (time, batch, ...), got {x.shape}")
        x = x.reshape(x.shape[0], x.shape[1], -1)
        if x.shape[2] != n:
            raise InputError(f"input '{node}' has {x.shape[2]} elements per sample, the netlist has {n}")
        if encoding.get(node) == "sigma-delta":
            if x.size and (x.min() < 0 or x.max() > 1):
                raise InputError(f"analog input '{node}' must lie in [0, 1] for the sigma-delta front end; "
                                 f"found [{x.min():.3g}, {x.max():.3g}]")
            # pulse whenever the running sum crosses the next integer: rate = value, at most 1 per step
            acc = np.floor(np.cumsum(x.astype(np.float64), axis=0) + 1e-9)
            x = np.diff(acc, axis=0, prepend=0.0) > 0
        vals = np.unique(x)
        if not np.all(np.isin(vals, (0, 1))):
            raise InputError(f"input '{node}' must be spikes (0/1) for the SFQ fabric; found values {vals[:5]}",
                             hint="rate-code graded inputs first")
        if T is None:
            T, B = x.shape[0], x.shape[1]
        elif (x.shape[0], x.shape[1]) != (T, B):
            raise InputError("all inputs must share time and batch sizes")
        flat[node] = x
    return flat


_CACHE: dict[int, tuple[str, Program]] = {}


#: `auto` runs a timing-clean clocked netlist pulse by pulse up to this many pulse paths x steps x samples;
#: beyond it the array engine (equal spike for spike except where pulse order decides a saturation) runs,
#: and verify replays a bounded subset of samples pulse by pulse (backends/sfq/backend.py)
PULSE_AUTO_MAX = 20_000_000


def pulse_workload(artifact: Artifact, inputs: dict[str, np.ndarray]) -> int:
    """Pulse paths x steps x samples: the upper bound on the pulse engine's neuron-input events."""
    first = np.asarray(next(iter(inputs.values())))
    per_step = int((artifact.meta.get("estimate") or {}).get("pulses_per_step", 0))
    return per_step * int(first.shape[0]) * int(first.shape[1] if first.ndim > 1 else 1)


def program_for(artifact: Artifact) -> Program:
    text = artifact.files.get("code/netlist.json")
    if text is None:
        raise SpikeforgeError("artifact has no code/netlist.json; was it compiled for an sfq board?")
    if isinstance(text, bytes):
        text = text.decode()
    hit = _CACHE.get(id(artifact))
    if hit is not None and hit[0] is text:
        return hit[1]
    prog = Program(Netlist.from_json(text))
    _CACHE.clear()
    _CACHE[id(artifact)] = (text, prog)
    return prog


class SFQEmulator(Emulator):
    """Runs the artifact's netlist sample by sample; mode 'error' or 'physical'."""

    def __init__(self, mode: str | None = None, seed: int | None = None, fast: bool = True,
                 engine: str | None = None):
        self.fast = fast
        if engine not in (None, "auto", "pulse", "array"):
            raise SpikeforgeError(f"unknown SFQ emulator engine {engine!r}; allowed: auto, pulse, array")
        self.engine = engine
        if mode is not None and mode not in MODES:
            raise SpikeforgeError(f"unknown emulator mode {mode!r}; allowed: {MODES}")
        self.mode = mode
        self.seed = seed
        self.last_cell_ops: np.ndarray | None = None
        self.last_violations: list[dict[str, Any]] = []
        self.last_run: tuple[int, int] | None = None
        self.last_trace: Trace | None = None

    def run(self, artifact: Artifact, inputs: dict[str, np.ndarray], *, probes: bool = False) -> Trace:
        program = artifact.meta.get("program")
        engine = self.engine or str(artifact.options.extra.get("sfq.emulator", "auto"))
        if engine == "auto" and "code/netlist.json" in artifact.files and program is not None \
                and program.get("coding") == "clocked" and artifact.meta.get("timing_clean", True):
            engine = "pulse" if pulse_workload(artifact, inputs) <= PULSE_AUTO_MAX else "array"
        if engine == "array" or (engine == "auto" and "code/netlist.json" not in artifact.files):
            if program is None or program.get("coding") != "clocked" or not artifact.meta.get("timing_clean", True):
                raise SpikeforgeError("the array emulator needs a timing-clean clocked program; use the pulse engine",
                                      field="sfq.emulator")
            flat = prepare_inputs({k: int(v["size"]) for k, v in program["inputs"].items()},
                                  {k: v["encoding"] for k, v in program["inputs"].items()}, inputs)
            tr = run_arrays(program, artifact.arrays, flat, probes=probes)
            self.last_run, self.last_trace = (id(artifact), id(inputs)), tr
            return _shaped(tr, program)
        prog = program_for(artifact)
        tr = self.run_program(prog, inputs, mode=self.mode or str(artifact.options.extra.get("sfq.mode", "physical")),
                              seed=artifact.options.seed if self.seed is None else self.seed, probes=probes)
        self.last_run, self.last_trace = (id(artifact), id(inputs)), tr
        return _shaped(tr, program)

    def run_program(self, prog: Program, inputs: dict[str, np.ndarray] | np.ndarray, *, mode: str = "physical",
                    seed: int = 0, probes: bool = False) -> Trace:
        nl = prog.nl
        if isinstance(inputs, np.ndarray):
            if len(nl.inputs) != 1:
                raise InputError(f"netlist has {len(nl.inputs)} inputs; pass a dict")
            inputs = {next(iter(nl.inputs)): inputs}
        flat = prepare_inputs({k: len(v) for k, v in nl.inputs.items()}, nl.meta.get("input_encoding", {}), inputs)
        first = next(iter(flat.values()))
        T, B = first.shape[0], first.shape[1]
        assert T is not None and B is not None
        P = nl.period_fs
        ops = [0] * prog.n
        violations: list[dict[str, Any]] = []
        outs = {node: np.zeros((T, B, len(ids)), dtype=np.float32) for node, ids in nl.outputs.items()}
        spikes = np.zeros(T)
        synops = np.zeros(T)
        layer_spk: dict[str, float] = {}
        layer_syn: dict[str, float] = {}
        events = 0
        kinds: dict[str, int] = {}
        sats: dict[str, int] = {}
        states: dict[str, np.ndarray] = {}
        clk_triggers = []
        if nl.clock_root >= 0:
            off = prog.offset[nl.clock_root]
            clk_triggers = [(k * P + off, nl.clock_root) for k in range(T)]
        clk_arr = np.asarray(prog.clk_fs, dtype=np.int64)
        fire_cell = np.zeros(prog.n, dtype=np.int64)
        syn_cell = np.zeros(prog.n, dtype=np.int64)
        layer_cells: dict[str, np.ndarray] = {}
        for c, name in enumerate(prog.layer):
            if name and prog.types[c] == "NEURON":
                layer_cells.setdefault(name, []).append(c)  # type: ignore[arg-type]
        layer_cells = {k: np.asarray(v) for k, v in layer_cells.items()}
        for b in range(B):
            trig = list(clk_triggers)
            for node, ids in nl.inputs.items():
                tt, ii = np.nonzero(flat[node][:, b, :])
                for t, i in zip(tt.tolist(), ii.tolist()):
                    c = ids[i]
                    trig.append((t * P + prog.offset[c], c))
            nviol = len(violations)
            vlog: list[tuple[int, int, int]] | None = [] if probes else None
            out_p, fires, syn_in, ev = prog.simulate(trig, mode=mode, seed=seed * 1_000_003 + b, ops=ops,
                                                     violations=violations, fast=self.fast, kinds=kinds,
                                                     saturations=sats, vlog=vlog)
            if probes:
                _probe(prog, states, fires, vlog or [], b, T, B)
            for v in violations[nviol:]:
                v["sample"] = b
            events += ev
            for t, c in out_p:
                node, i = prog.out_index[c]
                step = (t - prog.offset[c] + P // 2) // P
                if 0 <= step < T:
                    outs[node][step, b, i] += 1
            S = prog.shift
            for keys, per_step, per_cell, ceil in ((fires, spikes, fire_cell, False), (syn_in, synops, syn_cell, True)):
                if not keys:
                    continue
                k = np.asarray(keys, dtype=np.int64)
                t = k >> S
                c = (k >> 2) & ((1 << (S - 2)) - 1)
                rel = t - clk_arr[c]
                step = -((-rel) // P) if ceil else (rel + P // 2) // P
                ok = (step >= 0) & (step < T)
                np.add.at(per_step, step[ok], 1)
                per_cell += np.bincount(c, minlength=prog.n)
        for name, idx in layer_cells.items():
            layer_spk[name] = float(fire_cell[idx].sum())
            layer_syn[name] = float(syn_cell[idx].sum())
        self.last_cell_ops = np.asarray(ops, dtype=np.int64)
        self.last_violations = violations
        ops_by_type: dict[str, int] = {}
        charge: dict[str, float] = {}
        for c, o in enumerate(ops):
            if o:
                t = prog.types[c]
                ops_by_type[t] = ops_by_type.get(t, 0) + o
                charge[t] = charge.get(t, 0.0) + o * nl.cell_bias_uA(nl.cells[c])
        layer_counts = {name: {"spikes": layer_spk.get(name, 0.0), "synops": layer_syn.get(name, 0.0)}
                        for name in sorted(set(layer_spk) | set(layer_syn)) if name}
        return Trace(
            outputs=outs,
            counts={"spikes": spikes, "synops": synops},
            layer_counts=layer_counts,
            states=states,
            meta={"batch": B, "timesteps": T, "mode": mode, "events": events, "period_fs": P,
                  "violation_count": sum(kinds.values()), "violations_by_kind": kinds,
                  "violations": violations[:50], "ops_by_type": ops_by_type, "bias_ops_uA": charge,
                  "saturations_by_population": sats, "saturation_count": sum(sats.values())},
        )
