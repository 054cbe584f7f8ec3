"""Emitted files: JSON netlist, JoSIM top-level deck including the user's cell library, and a text report."""

from __future__ import annotations

import re
from typing import Any

from spikeforge.boards import Board
from spikeforge.emitsafe import spice_comment
from spikeforge.errors import SpikeforgeError

from .netlist import PORTS, Netlist
from .sta import StaReport

#: what an .include path in the deck may contain: a whitelist, so a --set value cannot add cards
_INCLUDE_PATH = re.compile(r"^[A-Za-z0-9_/~.][A-Za-z0-9_./~+-]{0,255}$")


def _include_path(value: str, key: str) -> str:
    if not _INCLUDE_PATH.match(value):
        raise SpikeforgeError(f"--set {key}={value!r}: a cell-library path may hold only letters, digits and "
                              "_ . / ~ + - (no spaces, quotes or line breaks)", field=key)
    return value


def _p(fs_: int) -> str:
    return f"{fs_ / 1000:.3f}p"


def josim_deck(nl: Netlist, *, library_dir: str = "RSFQlib", custom_lib: str = "spikeforge_sfq_cells.cir",
               steps: int = 4, stimulus: dict[str, list[list[int]]] | None = None) -> str:
    """JoSIM top level: one subcircuit instance per cell, PTL (T) elements for wire delays.

    RSFQlib cells are included from `library_dir`; the neuron (SF_NEURON) and comparator (SF_COMPARATOR)
    cells are not in RSFQlib and come from `custom_lib`, which the user supplies. Input stimulus: for
    each input node a list per element of step indices that carry a spike (default: a spike at step 0)."""
    library_dir = _include_path(library_dir, "sfq.cell_library")
    custom_lib = _include_path(custom_lib, "sfq.custom_cells")
    P = nl.period_fs
    used = sorted({nl.library[c.type]["josim"] for c in nl.cells})
    lines = ["* spikeforge SFQ top level (JoSIM). Generated; edit the .include paths to your cell library.",
             f"* mode {nl.mode}, period {_p(P)}, {len(nl.cells)} cells, {len(nl.wires)} wires",
             "* RSFQlib cells embed PTL drivers/receivers ('T' suffix); wire delays are PTL T-elements."]
    for sub in used:
        for part in sub.split("+"):
            if part.startswith("SF_"):
                continue
            lines.append(f".include {library_dir}/{part}.cir")
    if any(c.type in ("NEURON", "SYN") for c in nl.cells):
        lines.append("* user cells (not in RSFQlib): SF_NEURON (exc inh clk q), SF_COMPARATOR (a q ctrl)")
        lines.append(f".include {custom_lib}")
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
    for idx, c in enumerate(nl.cells):
        ins, outs = PORTS[c.type]
        pins = [node_in.get((idx, p), f"nc{idx}_{p}") for p in ins] + \
               [node_out.get((idx, p), f"nc{idx}_{p}") for p in outs]
        sub = nl.library[c.type]["josim"]
        tag = f"X{idx}"
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
            body += [spice_comment(f"{c.name} p={c.params.get('p')}"), f"{tag} {pins[0]} {pins[1]} ctl{idx} {sub}"]
            src.append(f"Ictl{idx} 0 ctl{idx} pwl(0 0 5p {float(c.params.get('i_ctrl_uA', 0.0)):.4f}u)")
        elif c.type == "OUT":
            body += [spice_comment(c.name), f"{tag} {pins[0]} vout{idx} {sub}"]
        elif c.type == "NEURON":
            prm = " ".join(f"{k}={c.params[k]}" for k in ("threshold", "capacity", "reset", "leak") if k in c.params)
            body += [spice_comment(f"{c.name} {prm}"), f"{tag} {' '.join(pins)} {sub}"]
        else:
            body += [spice_comment(c.name), f"{tag} {' '.join(pins)} {sub}"]
    stimulus = stimulus or {}
    for node, ids in nl.inputs.items():
        pattern = stimulus.get(node)
        for i, c in enumerate(ids):
            steps_on = pattern[i] if pattern is not None else [0]
            off = int(nl.cells[c].params.get("phase_fs", 0))
            src.append(f"Iin{c} 0 {node_in.get((c, 'trig'), f'nc{c}_trig')} {_pwl([k * P + off for k in steps_on], P)}")
    if nl.clock_root >= 0:
        off = int(nl.cells[nl.clock_root].params.get("offset_fs", 0))
        src.append(f"Iclk 0 {node_in.get((nl.clock_root, 'trig'), 'nc_clk')} "
                   f"{_pwl([k * P + off for k in range(steps)], P)}")
    prints = []
    for ids in nl.outputs.values():
        for c in ids:
            prints += [spice_comment(f"{nl.cells[c].name} (SFQ/DC output voltage)"), f".print V(vout{c})"]
    tstop = steps * P + nl.latency_fs + 50_000
    return "\n".join(lines + ["", "* cells"] + body + ["", "* wire delays"] + tlines + ["", "* sources"] + src
                     + ["", f".tran 0.1p {_p(tstop)} 0 0.1p"] + prints + [".end", ""])


def _pwl(times: list[int], period: int) -> str:
    """Current steps into a DC/SFQ converter: one rising edge (one SFQ pulse) per time."""
    pts = ["0 0"]
    half = max(3000, period // 2)
    last = 0
    for t in sorted(times):
        a = max(t - 3000, last + 1)
        pts += [f"{_p(a)} 0", f"{_p(t)} 600u", f"{_p(t + half - 3000)} 600u", f"{_p(t + half)} 0"]
        last = t + half
    return "pwl(" + " ".join(pts) + ")"


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
    phi0 = board.value("physics.phi0")
    vb = board.value("physics.bias_voltage")
    sf = board.value("physics.static_power_factor")
    df = board.value("physics.dynamic_energy_factor")
    eta = float(board.value("physics.cooling_overhead") if cooling is None else cooling)
    p_static = vb * tot["bias_uA"] * 1e-6 * sf
    latency = ((timesteps - 1) * nl.period_fs + nl.latency_fs) * 1e-15
    dyn = tot["bias_uA"] * 1e-6 * phi0 * df * timesteps
    chip = dyn + p_static * latency
    p_dyn = tot["bias_uA"] * 1e-6 * phi0 * df / (nl.period_fs * 1e-15) if nl.period_fs else 0.0
    return {"timesteps": timesteps, "static_power_W": p_static, "dynamic_power_W": p_dyn, "dynamic_factor": df, "v_bias": vb, "static_factor": sf,
            "latency_s": latency, "dynamic_J": dyn, "static_J": p_static * latency, "chip_J": chip,
            "cooling": eta, "wall_J": chip * (1 + eta), "jj": tot["jj"], "bias_A": tot["bias_uA"] * 1e-6,
            "plumbing_fraction": tot["plumbing_fraction"]}
