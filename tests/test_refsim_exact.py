"""The reference simulator against closed-form solutions of the NIR neuron equations.

LIF/LI: tau dv/dt = (v_leak - v) + r I. With a constant I and v(0) = v0 (the simulator starts at 0):
    v(t) = v_leak + r I + (v0 - v_leak - r I) e^(-t/tau),
and after k + 1 steps the simulator's state is v((k + 1) dt) (step k integrates over [k dt, (k+1) dt]).
integration="exact" is this formula step by step; Euler converges to it with an error O(dt).
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spikeforge import refsim


def single(node: nir.NIRNode, n: int) -> nir.NIRGraph:
    return nir.NIRGraph(
        nodes={"input": nir.Input(np.array([n])), "neuron": node, "output": nir.Output(np.array([n]))},
        edges=[("input", "neuron"), ("neuron", "output")],
    )


def lif(tau, r, v_leak, thr, n=1) -> nir.LIF:
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, r), v_leak=np.full(n, v_leak),
                   v_threshold=np.full(n, thr), v_reset=np.zeros(n))


def analytic(t, tau, r, v_leak, current, v0=0.0):
    return v_leak + r * current + (v0 - v_leak - r * current) * np.exp(-t / tau)


@pytest.mark.parametrize("v_leak", [0.0, -0.3])
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 2e-6)])
def test_exact_integration_matches_closed_form(v_leak, dtype, rtol):
    tau, r, dt, steps = 20e-3, 2.0, 1e-3, 300
    currents = np.array([0.1, 0.5, 1.0, -0.2])
    g = single(lif(tau, r, v_leak, 1e9, n=4), 4)  # threshold out of reach: pure membrane dynamics
    x = np.broadcast_to(currents, (steps, 1, 4)).astype(np.float32)
    res = refsim.simulate(g, x, dt=dt, probes=True, integration="exact", dtype=dtype)
    v = res.states["neuron.v"][:, 0, :]
    t = (np.arange(steps) + 1)[:, None] * dt
    expected = analytic(t, tau, r, v_leak, currents.astype(np.float32).astype(np.float64))
    scale = np.abs(expected).max()
    np.testing.assert_allclose(v, expected, rtol=0, atol=rtol * scale)
    assert res.spikes.sum() == 0


@pytest.mark.parametrize("current", [0.6, 1.0, 3.0])
def test_exact_first_spike_step_is_the_analytic_crossing(current):
    """v crosses v_th at t* = -tau ln(1 - v_th / (r I)); the first spike is emitted by the step whose end
    (k + 1) dt is the first grid point past t*, i.e. k = ceil(t*/dt) - 1."""
    tau, r, dt, thr = 10e-3, 1.5, 1e-4, 0.8
    t_star = -tau * np.log(1 - thr / (r * current))
    frac = t_star / dt - np.floor(t_star / dt)
    assert 1e-3 < frac < 1 - 1e-3, "keep the crossing away from a grid point"
    steps = int(t_star / dt) + 20
    g = single(lif(tau, r, 0.0, thr), 1)
    x = np.full((steps, 1, 1), current, np.float32)
    out = refsim.simulate(g, x, dt=dt, integration="exact").outputs["output"][:, 0, 0]
    assert int(np.flatnonzero(out)[0]) == int(np.ceil(t_star / dt)) - 1


def test_exact_spike_times_with_reset_are_periodic():
    """After each reset to 0 the trajectory restarts: with ZOH the inter-spike interval is the same
    number of steps, ceil(t*/dt), every time."""
    tau, r, dt, thr, current = 10e-3, 1.0, 1e-4, 0.5, 1.3
    t_star = -tau * np.log(1 - thr / (r * current))
    g = single(lif(tau, r, 0.0, thr), 1)
    x = np.full((2000, 1, 1), current, np.float32)
    out = refsim.simulate(g, x, dt=dt, integration="exact").outputs["output"][:, 0, 0]
    times = np.flatnonzero(out)
    assert len(times) > 10
    np.testing.assert_array_equal(np.diff(times), int(np.ceil(t_star / dt)))


def test_euler_converges_linearly_to_exact():
    """Euler's global error at a fixed time halves when dt halves (first order)."""
    tau, r, v_leak, current, t_end = 5e-3, 1.0, 0.1, 0.7, 20e-3
    errors = []
    dts = [1e-3, 5e-4, 2.5e-4, 1.25e-4]
    for dt in dts:
        steps = int(round(t_end / dt))
        g = single(lif(tau, r, v_leak, 1e9), 1)
        x = np.full((steps, 1, 1), current, np.float32)
        v = refsim.simulate(g, x, dt=dt, probes=True, dtype="float64").states["neuron.v"][-1, 0, 0]
        errors.append(abs(v - analytic(t_end, tau, r, v_leak, np.float64(np.float32(current)))))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert errors[-1] < 1e-2 * abs(analytic(t_end, tau, r, v_leak, current))
    np.testing.assert_allclose(ratios, 2.0, rtol=0.1)


def test_euler_spike_time_converges():
    """The first Euler spike time approaches the analytic crossing as dt shrinks (error <= ~dt-scale)."""
    tau, r, thr, current = 10e-3, 1.0, 0.6, 1.0
    t_star = -tau * np.log(1 - thr / (r * current))
    errs = []
    for dt in [1e-3, 1e-4, 1e-5]:
        steps = int(2 * t_star / dt)
        g = single(lif(tau, r, 0.0, thr), 1)
        out = refsim.simulate(g, np.full((steps, 1, 1), current, np.float32), dt=dt,
                              dtype="float64").outputs["output"][:, 0, 0]
        errs.append(abs((np.flatnonzero(out)[0] + 1) * dt - t_star))
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] <= 3e-5  # a few grid steps of 1e-5


def test_cuba_li_euler_converges_to_double_exponential():
    """CubaLI with constant input: i = w_in I (1 - e^(-t/ts)),
    v = r w_in I [1 - (tm e^(-t/tm) - ts e^(-t/ts)) / (tm - ts)]; Euler (current_first) is first order."""
    ts, tm, r, w_in, current, t_end = 2e-3, 8e-3, 1.5, 0.5, 1.0, 12e-3
    exact = r * w_in * current * (1 - (tm * np.exp(-t_end / tm) - ts * np.exp(-t_end / ts)) / (tm - ts))
    errors = []
    for dt in [4e-4, 2e-4, 1e-4, 5e-5]:
        node = nir.CubaLI(tau_syn=np.array([ts]), tau_mem=np.array([tm]), r=np.array([r]), v_leak=np.zeros(1),
                          w_in=np.array([w_in]))
        steps = int(round(t_end / dt))
        res = refsim.simulate(single(node, 1), np.full((steps, 1, 1), current, np.float32), dt=dt,
                              dtype="float64", probes=True)
        errors.append(abs(res.outputs["output"][-1, 0, 0] - exact))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert errors[-1] < 0.02 * exact
    np.testing.assert_allclose(ratios, 2.0, rtol=0.15)


def test_if_integrates_without_dt_unless_asked():
    """IF: v += r I per step (sinabs/snnTorch/Norse); if_dt=True gives the literal Euler form v += dt r I."""
    node = nir.IF(r=np.array([2.0]), v_threshold=np.array([1e9]), v_reset=np.zeros(1))
    x = np.full((50, 1, 1), 0.25, np.float32)
    v = refsim.simulate(single(node, 1), x, dt=1e-3, probes=True).states["neuron.v"][:, 0, 0]
    np.testing.assert_allclose(v, 0.5 * (np.arange(50) + 1))
    v_dt = refsim.simulate(single(node, 1), x, dt=1e-3, probes=True, if_dt=True).states["neuron.v"][:, 0, 0]
    np.testing.assert_allclose(v_dt, 0.5e-3 * (np.arange(50) + 1), rtol=1e-6)
