"""SFQ timing faults on tiny hand-built netlists.

Each failure mode (merger collision, DFF setup and hold violations, storage-loop overflow, unbalanced
fan-in) is caught by static timing analysis, stops the emulator in `error` mode with the cell and the
numbers, and in `physical` mode has the consequence the chip would show. Every case has a control
netlist with correct timing that produces the intended result.
"""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.backends.sfq.netlist import Netlist, library_from_board
from spikeforge.backends.sfq.sta import analyse
from spikeforge.boards import get_board
from spikeforge.emulators.sfq import Program, SFQEmulator, TimingViolation

LIB = library_from_board(get_board("sfq-rsfq"))
D_IN, D_MERGE, D_CLKQ = LIB["IN"]["delay_fs"], LIB["MERGE"]["delay_fs"], LIB["DFF"]["delay_fs"]
D_JTL, D_NEURON = LIB["JTL"]["delay_fs"], LIB["NEURON"]["delay_fs"]


def new(period: int) -> Netlist:
    return Netlist(mode="clocked", period_fs=period, library=LIB)


def source(nl: Netlist, name: str, phase: int) -> int:
    c = nl.add(name, "IN", phase_fs=phase)
    nl.inputs[name] = [c]
    return c


def sink(nl: Netlist, src: int, offset: int) -> int:
    c = nl.add("o", "OUT", offset_fs=offset)
    nl.connect(src, "q", c, "a")
    nl.outputs["o"] = [c]
    return c


def run(nl: Netlist, mode: str, T: int = 4, on: tuple[int, ...] = (0,)):
    x = np.zeros((T, 1, 1), np.float32)
    x[list(on)] = 1
    return SFQEmulator().run_program(Program(nl), {k: x for k in nl.inputs}, mode=mode)


def kinds(nl: Netlist) -> set[str]:
    return {v["kind"] for v in analyse(nl).violations}


# ---- merger collision --------------------------------------------------------------------------


def merger(gap_fs: int) -> Netlist:
    nl = new(50_000)
    a, b = source(nl, "a", 0), source(nl, "b", gap_fs)
    m = nl.add("m", "MERGE")
    nl.connect(a, "q", m, "a")
    nl.connect(b, "q", m, "b")
    sink(nl, m, D_IN + D_MERGE)
    return nl


def test_merger_collision() -> None:
    ok, bad = merger(20_000), merger(2_000)
    assert kinds(ok) == set()
    sta = analyse(bad).violations
    assert [v["kind"] for v in sta] == ["merger collision"] and sta[0]["cell"] == "m"
    assert sta[0]["separation_fs"] == 2_000 and sta[0]["min_sep_fs"] == 5_000
    assert run(ok, "error").outputs["o"].sum() == 2
    with pytest.raises(TimingViolation, match=r"merger collision.*'m'.*2\.000 ps.*minimum separation 5\.000 ps") as e:
        run(bad, "error")
    assert e.value.node == "m"
    tr = run(bad, "physical")
    assert tr.outputs["o"].sum() == 1                          # the second pulse is lost
    assert tr.meta["violations_by_kind"] == {"merger collision": 1}


# ---- DFF setup and hold ------------------------------------------------------------------------


def dff(data_phase: int, period: int = 50_000) -> Netlist:
    """Clock root triggered at 0 reaches the DFF at D_IN + k * period; data at data_phase + D_IN."""
    nl = new(period)
    d = source(nl, "d", data_phase)
    clk = nl.add("clk", "CLK", offset_fs=0)
    nl.clock_root = clk
    f = nl.add("ff", "DFF")
    nl.connect(d, "q", f, "d")
    nl.connect(clk, "q", f, "clk")
    sink(nl, f, D_IN + period + D_CLKQ)                         # read by the clock of step 1 -> output step 0
    return nl


def test_dff_setup_violation_reads_one_clock_late() -> None:
    P = 50_000
    ok, bad = dff(30_000), dff(P - 500)                          # data 0.5 ps before clock 1 (setup 1.2 ps)
    assert kinds(ok) == set()
    v = analyse(bad).violations
    assert [x["kind"] for x in v] == ["setup violation"] and v[0]["cell"] == "ff" and v[0]["slack_fs"] == -700
    np.testing.assert_array_equal(run(ok, "error").outputs["o"][:, 0, 0], [1, 0, 0, 0])
    with pytest.raises(TimingViolation, match=r"setup violation.*DFF 'ff'.*0\.500 ps before the clock.*setup 1\.200 ps"):
        run(bad, "error")
    tr = run(bad, "physical")
    np.testing.assert_array_equal(tr.outputs["o"][:, 0, 0], [0, 1, 0, 0])     # late data: next clock
    assert tr.meta["violations_by_kind"] == {"setup violation": 1}


def test_dff_hold_violation_loses_data() -> None:
    ok, bad = dff(5_000), dff(200)                               # bad: data 0.2 ps after clock 0 (hold 0.4 ps)
    assert kinds(ok) == set()
    v = analyse(bad).violations
    assert [x["kind"] for x in v] == ["hold violation"] and v[0]["cell"] == "ff"
    np.testing.assert_array_equal(run(ok, "error").outputs["o"][:, 0, 0], [1, 0, 0, 0])
    with pytest.raises(TimingViolation, match=r"hold violation.*DFF 'ff'.*0\.200 ps after the clock.*hold 0\.400 ps"):
        run(bad, "error")
    tr = run(bad, "physical")
    assert tr.outputs["o"].sum() == 0                            # the data pulse is lost
    assert tr.meta["violations_by_kind"] == {"hold violation": 1}


# ---- storage-loop overflow -----------------------------------------------------------------------


def neuron_net(capacity: int, exc_phases: list[int], inh_phases: list[int], clk_at: int, threshold: int,
               period: int = 200_000, extra_jtl: dict[int, int] | None = None) -> Netlist:
    """Inputs merged into a neuron's exc / inh ports; the clock reaches the neuron at clk_at (+ k period)."""
    nl = new(period)
    n = nl.add("nrn", "NEURON", threshold=threshold, capacity=capacity, reset="zero", clk_fs=clk_at)
    extra_jtl = extra_jtl or {}

    def tree(phases: list[int], port: str, tag: str) -> None:
        ends = nl.merge_tree(n, port, len(phases), f"nrn.{tag}")
        for k, (ph, (mc, mp, depth)) in enumerate(zip(phases, ends)):
            s = source(nl, f"{tag}{k}", ph - depth * D_MERGE - extra_jtl.get(k, 0) * D_JTL - D_IN)
            drv, port_ = s, "q"
            if extra_jtl.get(k):
                j = nl.add(f"{tag}{k}.jtl", "JTL", stages=extra_jtl[k])
                nl.connect(s, "q", j, "a")
                drv, port_ = j, "q"
            nl.connect(drv, port_, mc, mp)

    tree(exc_phases, "exc", "e")
    if inh_phases:
        tree(inh_phases, "inh", "i")
    clk = nl.add("clk", "CLK", offset_fs=clk_at - D_IN)
    nl.clock_root = clk
    nl.connect(clk, "q", n, "clk")
    sink(nl, n, clk_at + D_NEURON)
    return nl


def test_storage_loop_overflow_neuron() -> None:
    # +3 then -2 fluxons before the clock, threshold 1: an ideal loop holds 1 and fires
    exc, inh = [10_000, 25_000, 40_000], [55_000, 70_000]
    ok, bad = neuron_net(8, exc, inh, 100_000, 1), neuron_net(2, exc, inh, 100_000, 1)
    assert kinds(ok) == kinds(bad) == set()                      # timing is clean in both
    assert any("capacity 2" in w for w in analyse(bad).warnings)
    np.testing.assert_array_equal(run(ok, "error").outputs["o"][:, 0, 0], [1, 0, 0, 0])
    # the third fluxon escapes (the loop saturates at 2), in both modes: defined behaviour, not a violation
    for mode in ("error", "physical"):
        tr = run(bad, mode)
        assert tr.outputs["o"].sum() == 0                        # the escaped fluxon is missing: 2 - 2 = 0
        assert tr.meta["violations_by_kind"] == {} and tr.meta["saturations_by_population"] == {"": 1}


def test_storage_loop_overflow_dff() -> None:
    nl = new(50_000)
    a, b = source(nl, "a", 0), source(nl, "b", 20_000)
    m = nl.add("m", "MERGE")
    nl.connect(a, "q", m, "a")
    nl.connect(b, "q", m, "b")
    clk = nl.add("clk", "CLK", offset_fs=35_000)
    nl.clock_root = clk
    f = nl.add("ff", "DFF")
    nl.connect(m, "q", f, "d")
    nl.connect(clk, "q", f, "clk")
    sink(nl, f, 35_000 + D_IN + D_CLKQ)
    assert "storage-loop overflow" in kinds(nl)
    with pytest.raises(TimingViolation, match=r"storage-loop overflow.*DFF 'ff'.*second data pulse"):
        run(nl, "error")
    tr = run(nl, "physical")
    assert tr.outputs["o"].sum() == 1                            # two in, one stored, one read out


# ---- unbalanced fan-in ---------------------------------------------------------------------------


def test_unbalanced_fan_in_lands_in_setup_window() -> None:
    """Two leaves of one merger tree; one path carries 12 unplanned JTL stages (42 ps) and lands 1 ps before
    the clock instead of 43 ps before: inside the 3 ps setup window."""
    clk = 100_000
    ok = neuron_net(8, [50_000, 57_000], [], clk, 2)
    bad = neuron_net(8, [50_000, clk - 1_000], [], clk, 2, extra_jtl={1: 12})
    assert kinds(ok) == set()
    v = analyse(bad).violations
    assert [x["kind"] for x in v] == ["setup violation"] and v[0]["cell"] == "nrn"
    assert v[0]["arrival_fs"] == clk - 1_000 and v[0]["clock_fs"] == clk
    np.testing.assert_array_equal(run(ok, "error").outputs["o"][:, 0, 0], [1, 0, 0, 0])
    with pytest.raises(TimingViolation, match=r"setup violation.*NEURON 'nrn'.*1\.000 ps before the clock"):
        run(bad, "error")
    tr = run(bad, "physical")
    np.testing.assert_array_equal(tr.outputs["o"][:, 0, 0], [0, 1, 0, 0])     # counted one clock late


def test_unbalanced_fan_in_collides_in_merger_tree() -> None:
    """Without delay balancing two leaves reach the same merger together: one pulse is lost."""
    clk = 100_000
    bad = neuron_net(8, [50_000, 50_000], [], clk, 2)
    v = analyse(bad).violations
    assert {x["kind"] for x in v} == {"merger collision", "neuron input collision"} or \
        {x["kind"] for x in v} == {"merger collision"}
    with pytest.raises(TimingViolation, match="merger collision"):
        run(bad, "error")
    tr = run(bad, "physical")
    assert tr.outputs["o"].sum() == 0                            # threshold 2 never reached
