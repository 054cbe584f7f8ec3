"""Emitted files: JSON netlist, JoSIM top-level deck and its cell library, and a text report."""

from __future__ import annotations

from typing import Any

from spikeforge.boards import Board
from spikeforge.emitsafe import spice_comment
from spikeforge.errors import SpikeforgeError

from .cells import cell_library, used_subcircuits
from .netlist import PORTS, Netlist
from .options import CELL_LIBRARIES, CellFile
from .sta import StaReport


def _p(fs_: int) -> str:
    return f"{fs_ / 1000:.3f}p"


def josim_deck(nl: Netlist, *, library: str = "spikeforge", custom_cells: str | None = None,
               steps: int = 4, stimulus: dict[str, list[list[int]]] | None = None) -> str:
    """JoSIM top level: one subcircuit instance per cell, PTL (T) elements for wire delays.

    `library` 'spikeforge' includes the emitted `cells.cir` (cells.py); 'RSFQlib' includes the RSFQlib v3p0
    originals from an `RSFQlib/` checkout beside the deck and `cells.cir` for the neuron and comparator only.
    `custom_cells` (a validated relative path) replaces the emitted SF_NEURON/SF_COMPARATOR. User strings
    (cell names) only reach comments, through `spice_comment`. Unwired input pins go to ground, unwired
    outputs into a termination resistor, so every net is driven once and read. Stimulus: for each input
    node a list per element of step indices that carry a spike (default: a spike at step 0); every
    source is a monotone PWL."""
    if library not in CELL_LIBRARIES:
        raise SpikeforgeError(f"sfq.cell_library={library!r}: must be one of {list(CELL_LIBRARIES)}",
                              field="sfq.cell_library")
    P = nl.period_fs
    used = used_subcircuits(nl.library, {c.type for c in nl.cells})
    lines = ["* spikeforge SFQ top level (JoSIM). Generated.",
             f"* mode {nl.mode}, period {_p(P)}, {len(nl.cells)} cells, {len(nl.wires)} wires",
             "* wire delays are PTL T-elements; cells come from the included library"]
    if library == "RSFQlib":
        lines += [f".include RSFQlib/{sub}.cir" for sub in used if not sub.startswith("SF_")]
    if custom_cells is not None and any(sub.startswith("SF_") for sub in used):
        lines.append(f".include {CellFile(custom_cells)}")
    lines.append(".include cells.cir")
    node_out: dict[tuple[int, str], str] = {}
    node_in: dict[tuple[int, str], str] = {}
    tlines: list[str] = []
    for i, (s, sp, d, dp, dl) in enumerate(nl.wires):
        a = f"w{i}"
        node_out[(s, sp)] = a
        if dl > 0:
            b = f"w{i}d"
            tlines.append(f"T{i} {a} 0 {b} 0 TD={_p(dl)} Z0=5")
            node_in[(d, dp)] = b
        else:
            node_in[(d, dp)] = a
    body: list[str] = []
    src: list[str] = []
    term: list[str] = []

    def pin_in(idx: int, p: str) -> str:
        if p == "trig":
            return node_in.get((idx, p), f"trig{idx}")
        return node_in.get((idx, p), "0")

    def pin_out(idx: int, p: str) -> str:
        if (idx, p) in node_out:
            return node_out[(idx, p)]
        term.append(f"Rterm{idx}{p} u{idx}{p} 0 4")
        return f"u{idx}{p}"

    for idx, c in enumerate(nl.cells):
        ins, outs = PORTS[c.type]
        pins = [pin_in(idx, p) for p in ins] + [pin_out(idx, p) for p in outs]
        sub = nl.library[c.type]["josim"]
        tag = f"X{idx}"
        body.append(spice_comment(f"{c.name} ({c.type})"))
        if c.type == "JTL":
            stages = int(c.params.get("stages", 1))
            prev = pins[0]
            for k in range(stages):
                nxt = pins[1] if k == stages - 1 else f"j{idx}_{k}"
                body.append(f"{tag}_{k} {prev} {nxt} {sub}")
                prev = nxt
        elif c.type == "PTL":
            tx, rx = sub.split("+")
            body += [f"{tag}tx {pins[0]} p{idx}a {tx}",
                     f"T{tag} p{idx}a 0 p{idx}b 0 TD={_p(int(c.params['delay_fs']))} Z0=5",
                     f"{tag}rx p{idx}b {pins[1]} {rx}"]
        elif c.type == "SYN":
            body.append(f"{tag} {pins[0]} {pins[1]} ctl{idx} {sub}")
            src.append(f"Ictl{idx} 0 ctl{idx} pwl(0 0 5p {float(c.params.get('i_ctrl_uA', 0.0)):.4f}u)")
        elif c.type == "OUT":
            body.append(f"{tag} {pins[0]} vout{idx} {sub}")
        else:
            body.append(f"{tag} {' '.join(pins)} {sub}")
    stimulus = stimulus or {}
    for node, ids in nl.inputs.items():
        pattern = stimulus.get(node)
        for i, c in enumerate(ids):
            steps_on = pattern[i] if pattern is not None else [0]
            off = int(nl.cells[c].params.get("phase_fs", 0))
            src.append(f"Iin{c} 0 {pin_in(c, 'trig')} {_pwl([k * P + off for k in steps_on], P)}")
    if nl.clock_root >= 0:
        off = int(nl.cells[nl.clock_root].params.get("offset_fs", 0))
        src.append(f"Iclk 0 {pin_in(nl.clock_root, 'trig')} {_pwl([k * P + off for k in range(steps)], P)}")
    prints = []
    for ids in nl.outputs.values():
        for c in ids:
            prints += [spice_comment(f"{nl.cells[c].name} (SFQ/DC output voltage)"), f".print V(vout{c})"]
    tstop = steps * P + nl.latency_fs + 50_000 + _LEAD_FS
    return "\n".join(lines + ["", "* cells"] + body + ["", "* wire delays"] + tlines + ["", "* terminations"] + term
                     + ["", "* sources"] + src + ["", f".tran 0.1p {_p(tstop)} 0 0.1p"] + prints + [".end", ""])


def cells_file(nl: Netlist) -> str:
    """code/cells.cir: the subcircuits the deck instantiates, biased with the board's per-cell currents."""
    used = used_subcircuits(nl.library, {c.type for c in nl.cells})
    bias: dict[str, float] = {}
    for e in nl.library.values():
        parts = str(e["josim"]).split("+")
        for sub in parts:
            bias[sub] = float(e["bias_uA"]) / len(parts)
    return cell_library(used, bias)


_LEAD_FS = 10_000   # every stimulus starts at least 10 ps into the run: edges never need negative times
_RISE_FS = 3_000


def _pwl(times: list[int], period: int) -> str:
    """Current steps into a DC/SFQ converter: one rising edge (one SFQ pulse) per time, times strictly rising."""
    pts = [(0, 0.0)]
    half = max(2 * _RISE_FS, period // 2)
    for t in sorted(set(times)):
        t = t + _LEAD_FS
        a = max(t - _RISE_FS, pts[-1][0] + 1)
        t = max(t, a + 1)
        pts += [(a, 0.0), (t, 600.0), (t + half - _RISE_FS, 600.0), (t + half, 0.0)]
    return "pwl(" + " ".join(f"{_p(x) if x else '0'} {f'{y:g}u' if y else '0'}" for x, y in pts) + ")"


def report_text(nl: Netlist, board: Board, info: dict[str, Any], sta: StaReport, figures: dict[str, Any]) -> str:
    tot = nl.totals()
    L = []
    L.append(f"spikeforge SFQ report: board {board.name}, coding {nl.mode}")
    L.append(f"  cells {len(nl.cells)}, wires {len(nl.wires)}")
    L.append(f"  Josephson junctions      {tot['jj']:>12d}")
    L.append(f"    plumbing (JTL/PTL/SPLIT/MERGE) {tot['plumbing_jj']} = {100 * tot['plumbing_fraction']:.1f} %"
             f"; clock tree {tot['clock_jj']}")
    for t, d in sorted(tot["by_type"].items()):
        L.append(f"    {t:<7s} cells {d['cells']:>8d}  JJ {d['jj']:>9d}  bias {d['bias_uA'] / 1000:>10.3f} mA")
    L.append(f"  total bias current       {tot['bias_uA'] / 1e6:.6g} A")
    L.append(f"  static power             {figures['static_power_W']:.6g} W   (V_b {figures['v_bias']} V x I_bias x "
             f"{figures['static_factor']})")
    L.append(f"  dynamic power            {figures['dynamic_power_W']:.6g} W   (upper bound: every cell switches once "
             f"per clock, I_bias x Phi0 x f_clk x {figures['dynamic_factor']})")
    L.append(f"  clock period (window)    {nl.period_fs / 1000:.1f} ps = {1e3 / max(1, nl.period_fs) * 1e3:.3g} GHz"
             f"  (bound by: {info['period_binding']})")
    L.append(f"  pipeline latency         {nl.latency_fs / 1000:.1f} ps (input to output, one step)")
    T = figures["timesteps"]
    L.append(f"  per inference ({T} steps): latency {figures['latency_s']:.6g} s")
    L.append(f"    dynamic energy (upper bound: every cell switches once per step) {figures['dynamic_J']:.6g} J")
    L.append(f"    static energy {figures['static_J']:.6g} J")
    L.append(f"    chip energy   {figures['chip_J']:.6g} J;  with cooling ({figures['cooling']} W/W) "
             f"{figures['wall_J']:.6g} J")
    L.append("  (`spikeforge profile` gives the emulated, activity-based dynamic energy)")
    for name, li in info["layers"].items():
        L.append(f"  layer {name}: {li['neurons']} {li['kind']} neurons, {li['synapses']} synapses, max fan-in "
                 f"{li['max_fanin_pulses']} pulses/step, threshold <= {li['threshold_max']}, clock phase "
                 f"{info['layer_clock_fs'].get(name, 0) / 1000:.1f} ps")
    for n in info["notes"]:
        L.append(f"  note: {n}")
    L.append(sta.text(limit=20).rstrip())
    return "\n".join(L) + "\n"


def compile_figures(nl: Netlist, board: Board, timesteps: int, cooling: float | None = None) -> dict[str, Any]:
    """Compile-time energy and latency (no activity yet): static power, worst-case dynamic energy."""
    tot = nl.totals()
    return figures(tot["jj"], tot["bias_uA"], tot["plumbing_fraction"], nl.period_fs, nl.latency_fs, board,
                   timesteps, cooling)


def figures(jj: int, bias_uA: float, plumbing: float, period_fs: int, latency_fs: int, board: Board, timesteps: int,
            cooling: float | None = None) -> dict[str, Any]:
    """Static power, worst-case dynamic energy and latency from totals (netlist or estimate)."""
    phi0 = board.value("physics.phi0")
    vb = board.value("physics.bias_voltage")
    sf = board.value("physics.static_power_factor")
    df = board.value("physics.dynamic_energy_factor")
    eta = float(board.value("physics.cooling_overhead") if cooling is None else cooling)
    p_static = vb * bias_uA * 1e-6 * sf
    latency = ((timesteps - 1) * period_fs + latency_fs) * 1e-15
    dyn = bias_uA * 1e-6 * phi0 * df * timesteps
    chip = dyn + p_static * latency
    p_dyn = bias_uA * 1e-6 * phi0 * df / (period_fs * 1e-15) if period_fs else 0.0
    return {"timesteps": timesteps, "static_power_W": p_static, "dynamic_power_W": p_dyn, "dynamic_factor": df,
            "v_bias": vb, "static_factor": sf, "latency_s": latency, "dynamic_J": dyn, "static_J": p_static * latency,
            "chip_J": chip, "cooling": eta, "wall_J": chip * (1 + eta), "jj": jj, "bias_A": bias_uA * 1e-6,
            "plumbing_fraction": plumbing}


def estimate_report(est: dict[str, Any], budget: dict[str, Any], board: Board, figs: dict[str, Any]) -> str:
    """code/report.txt when no netlist was built: the analytic counts and what they cost."""
    L = [f"spikeforge SFQ report: board {board.name} ({est['method']}; netlist and JoSIM deck not built: "
         "above sfq.netlist_max_pulses, use --set sfq.netlist=always)",
         f"  synapses {est['synapses']:,}, pulse paths per step {est['pulses_per_step']:,}",
         f"  cells {est['cells']:,}, Josephson junctions {est['jj']:,} ({budget['chips']} chip(s) of "
         f"{budget['jj_per_chip']:,} JJ, board allows {budget['max_chips']})"]
    L += [f"    {t:<7s} {n:>12,}" for t, n in sorted(est["cells_by_type"].items()) if n]
    L.append(f"  exact-leak bit slices {est['leak_slices']:,}; JTL stages {est['jtl_stages']:,}")
    L.append(f"  clock period {est['period_fs'] / 1000:.1f} ps (bound by {est['period_binding']}), pipeline latency "
             f"{est['latency_fs'] / 1000:.1f} ps")
    L.append(f"  total bias current {figs['bias_A']:.6g} A, static power {figs['static_power_W']:.6g} W")
    L.append(f"  per inference ({figs['timesteps']} steps): latency {figs['latency_s']:.6g} s, chip energy "
             f"{figs['chip_J']:.6g} J, with cooling {figs['wall_J']:.6g} J")
    return "\n".join(L) + "\n"
