"""The reference simulator against snnTorch 1.0.0 and Norse 1.1.0 on the same NIR graphs.

Each test builds an NIR graph by hand, the equivalent snnTorch / Norse module directly (same weights, same
parameters), drives both with the same random spikes or currents, and compares spike trains.

Exactness. With dyadic weights (multiples of 1/64) every weighted sum is exact in float32, so the only
possible differences come from the neuron update: refsim computes `keep * v + in * (v_leak + r * I)`,
snnTorch `beta * v + I` and Norse `v + dt/tau * (I + v_leak - v)`. These are equal in real arithmetic but
may round differently, so a membrane potential that lands within a few ulp of the threshold could spike in
one simulator and not in the other (a float32 tie). `compare_spikes` accepts a divergence only when it is
such a tie: before the first differing step of a neuron the two membrane traces agree to `tol`, and at
that step the side that did not spike sits within `tol` below the threshold. After a tie the two runs of
that neuron are different trajectories, so only the first divergence per neuron is checked. Every test
also bounds the number of diverging neurons (measured: zero in all the cases below).
"""

from __future__ import annotations

import nir
import norse.torch as norse
import numpy as np
import pytest
import snntorch as snn
import torch
from norse.torch.functional.iaf import IAFFeedForwardState, IAFParameters
from norse.torch.functional.leaky_integrator_box import LIBoxParameters, LIBoxState
from norse.torch.functional.lif import LIFParameters
from norse.torch.functional.lif_box import LIFBoxFeedForwardState, LIFBoxParameters

from spikeforge import refsim

DT = 1e-3
T, B, NIN, N = 120, 4, 16, 24


@pytest.fixture(autouse=True)
def _no_grad_one_thread():
    """Inference only; one torch thread (tiny per-step ops are slower with a thread pool)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            yield
    finally:
        torch.set_num_threads(threads)


def dyadic_weights(rng: np.random.Generator, shape: tuple[int, ...], scale: int = 24, low: int | None = None):
    """Weights k/64: sums of a few of them are exact in float32, whatever the summation order."""
    low = -scale if low is None else low
    return (rng.integers(low, scale + 1, size=shape) / 64.0).astype(np.float32)


def spikes(rng: np.random.Generator, shape: tuple[int, ...], p: float = 0.25) -> np.ndarray:
    return (rng.random(shape) < p).astype(np.float32)


def mlp_graph(neuron: nir.NIRNode, w: np.ndarray, meta: dict | None = None) -> nir.NIRGraph:
    """Input -> Affine(w, 0) -> neuron -> Output."""
    n_out, n_in = w.shape
    if meta:
        neuron.metadata = dict(meta)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([n_in])),
            "fc": nir.Affine(w, np.zeros(n_out, np.float32)),
            "neuron": neuron,
            "output": nir.Output(np.array([n_out])),
        },
        edges=[("input", "fc"), ("fc", "neuron"), ("neuron", "output")],
    )


def torch_linear(w: np.ndarray) -> torch.nn.Linear:
    lin = torch.nn.Linear(w.shape[1], w.shape[0])
    lin.weight.data = torch.tensor(w)
    lin.bias.data.zero_()
    return lin


def run_ref(graph: nir.NIRGraph, x: np.ndarray, **options) -> tuple[np.ndarray, np.ndarray]:
    res = refsim.simulate(graph, x, dt=DT, probes=True, **options)
    return res.outputs["output"], res.states["neuron.v"]


def compare_spikes(ref_s, ref_v, peer_s, peer_v, thr: float, tol: float = 1e-5) -> int:
    """Assert the spike trains are identical up to float32 threshold ties; return the diverging neurons."""
    ref_s, peer_s = np.asarray(ref_s).reshape(len(ref_s), -1), np.asarray(peer_s).reshape(len(peer_s), -1)
    ref_v, peer_v = np.asarray(ref_v).reshape(ref_s.shape), np.asarray(peer_v).reshape(peer_s.shape)
    diverged = np.flatnonzero((ref_s != peer_s).any(axis=0))
    for col in diverged:
        t0 = int(np.flatnonzero(ref_s[:, col] != peer_s[:, col])[0])
        before = np.abs(ref_v[:t0, col] - peer_v[:t0, col]).max(initial=0.0)
        assert before <= tol, f"neuron {col}: membranes differ by {before} before the first spike difference"
        quiet_v = ref_v[t0, col] if ref_s[t0, col] == 0 else peer_v[t0, col]
        assert 0 <= float(np.float32(thr)) - float(quiet_v) <= tol, (
            f"neuron {col} step {t0}: spike differs but v={quiet_v} is not a tie with threshold {thr}"
        )
    return len(diverged)


# --------------------------------------------------------------------------------------------------
# snnTorch: Leaky (LIF), Synaptic (CubaLIF), RLeaky (recurrent LIF), Conv2d + Leaky
# --------------------------------------------------------------------------------------------------


def snn_leaky_node(beta: float, thr: float, n: int) -> nir.LIF:
    """snnTorch's own NIR export of Leaky: tau = dt/(1-beta), r = tau/dt, v_leak = 0."""
    tau = DT / (1 - beta)
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, tau / DT), v_leak=np.zeros(n),
                   v_threshold=np.full(n, thr), v_reset=np.zeros(n))


def run_snn_leaky(lif, layer, x):
    mem = lif.reset_mem()
    s, v = [], []
    for t in range(len(x)):
        spk, mem = lif(layer(torch.tensor(x[t])), mem)
        s.append(spk.numpy().copy())
        v.append(mem.numpy().copy())
    return np.stack(s), np.stack(v)


# (snnTorch reset_mechanism, reset_delay) -> refsim reset_timing. Verified by running:
#  * subtract + reset_delay=True: v = beta v + I - s[t-1] thr  -> "delayed" (subtract after integration).
#  * zero + reset_delay=True: v = beta (1 - s[t-1]) v + I, i.e. zeroed *before* integration; the spikes are
#    those of an immediate reset to zero (only the returned mem is the unreset value) -> "immediate".
#  * zero + reset_delay=False -> "immediate".
#  * subtract + reset_delay=False -> "immediate", see test_snntorch_subtract_no_delay_double_threshold.
LEAKY_CASES = [("subtract", True, "delayed"), ("zero", True, "immediate"), ("zero", False, "immediate")]


@pytest.mark.parametrize("beta", [0.75, 0.9])
@pytest.mark.parametrize("mech,delay,timing", LEAKY_CASES)
def test_snntorch_leaky(beta, mech, delay, timing):
    rng = np.random.default_rng(10)
    w, thr = dyadic_weights(rng, (N, NIN)), 1.0
    x = spikes(rng, (T, B, NIN))
    g = mlp_graph(snn_leaky_node(beta, thr, N), w, {"spikeforge.reset": mech, "spikeforge.reset_timing": timing})
    ref_s, ref_v = run_ref(g, x)
    peer_s, peer_v = run_snn_leaky(snn.Leaky(beta=beta, threshold=thr, reset_mechanism=mech,
                                             reset_delay=delay), torch_linear(w), x)
    if mech == "zero" and delay:  # snnTorch returns the membrane before its (deferred) zeroing
        peer_v = np.where(peer_s > 0, 0.0, peer_v)
    assert ref_s.sum() > 0.05 * ref_s.size, "the test must make the layer spike"
    assert compare_spikes(ref_s, ref_v, peer_s, peer_v, thr) <= 1


def test_snntorch_leaky_continuous_currents():
    """Gaussian currents straight into the neurons (no Affine), non-dyadic beta: still identical."""
    rng = np.random.default_rng(11)
    beta, thr, n = 0.93, 0.8, 64
    x = rng.normal(0.1, 0.5, size=(200, B, n)).astype(np.float32)
    node = snn_leaky_node(beta, thr, n)
    node.metadata = {"spikeforge.reset": "subtract", "spikeforge.reset_timing": "delayed"}
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([n])), "neuron": node, "output": nir.Output(np.array([n]))},
                     edges=[("input", "neuron"), ("neuron", "output")])
    ref_s, ref_v = run_ref(g, x)
    peer_s, peer_v = run_snn_leaky(snn.Leaky(beta=beta, threshold=thr), torch.nn.Identity(), x)
    assert ref_s.sum() > 100
    assert compare_spikes(ref_s, ref_v, peer_s, peer_v, thr) <= 2


def test_snntorch_subtract_no_delay_double_threshold():
    """snnTorch subtract + reset_delay=False equals refsim's immediate subtract *unless* a neuron's
    membrane after its reset is still above threshold: snnTorch then subtracts the threshold again
    before integrating and undoes it afterwards (`spk - reset`), which checks the next step against
    2 * threshold. Bounded here: each neuron's first divergence comes right after such a step."""
    rng = np.random.default_rng(12)
    beta, thr = 0.75, 1.0
    w = dyadic_weights(rng, (N, NIN), scale=48)
    x = spikes(rng, (T, B, NIN), p=0.3)
    g = mlp_graph(snn_leaky_node(beta, thr, N), w, {"spikeforge.reset": "subtract",
                                                    "spikeforge.reset_timing": "immediate"})
    ref_s, _ = run_ref(g, x)
    peer_s, peer_v = run_snn_leaky(snn.Leaky(beta=beta, threshold=thr, reset_delay=False), torch_linear(w), x)
    ref_s, peer_s, peer_v = (a.reshape(T, -1) for a in (ref_s, peer_s, peer_v))
    above = peer_v > thr  # post-reset membrane still above threshold
    diverged = np.flatnonzero((ref_s != peer_s).any(axis=0))
    assert len(diverged) > 0, "inputs are meant to reach 2 x threshold"
    for col in diverged:
        t0 = int(np.flatnonzero(ref_s[:, col] != peer_s[:, col])[0])
        assert t0 > 0 and above[t0 - 1, col], f"neuron {col} diverged at {t0} without a double-threshold step"
    # Where no neuron ever stays above threshold after a reset, the trains are identical.
    clean = ~above.any(axis=0)
    assert clean.sum() > 0
    np.testing.assert_array_equal(ref_s[:, clean], peer_s[:, clean])


def test_snntorch_leaky_beta_one_is_if():
    """Leaky(beta=1) integrates without leak: NIR IF (r = 1), subtract reset one step late."""
    rng = np.random.default_rng(16)
    thr = 1.0
    w = dyadic_weights(rng, (N, NIN))
    x = spikes(rng, (T, B, NIN))
    node = nir.IF(r=np.ones(N), v_threshold=np.full(N, thr), v_reset=np.zeros(N))
    ref_s, ref_v = run_ref(mlp_graph(node, w, {"spikeforge.reset": "subtract", "spikeforge.reset_timing": "delayed"}),
                           x)
    peer_s, peer_v = run_snn_leaky(snn.Leaky(beta=1.0, threshold=thr), torch_linear(w), x)
    assert ref_s.sum() > 0.05 * ref_s.size
    assert compare_spikes(ref_s, ref_v, peer_s, peer_v, thr) == 0


def test_snntorch_leaky_no_reset_is_li():
    """Leaky(reset_mechanism="none") is a leaky integrator: NIR LI with tau = dt/(1-beta), r = tau/dt;
    its membrane is the LI output (snnTorch still emits spikes, which LI does not)."""
    rng = np.random.default_rng(17)
    beta = 0.8
    x = rng.normal(0.0, 1.0, size=(T, B, N)).astype(np.float32)
    tau = DT / (1 - beta)
    node = nir.LI(tau=np.full(N, tau), r=np.full(N, tau / DT), v_leak=np.zeros(N))
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([N])), "neuron": node, "output": nir.Output(np.array([N]))},
                     edges=[("input", "neuron"), ("neuron", "output")])
    ref = refsim.simulate(g, x, dt=DT).outputs["output"]
    _, mem = run_snn_leaky(snn.Leaky(beta=beta, reset_mechanism="none"), torch.nn.Identity(), x)
    assert np.abs(mem).max() > 1.0
    np.testing.assert_array_equal(ref, mem)  # gain rounds to 1.0: the same float32 operations


@pytest.mark.parametrize("mech,delay,timing", [("subtract", True, "delayed"), ("zero", True, "delayed"),
                                               ("zero", False, "immediate")])
def test_snntorch_synaptic(mech, delay, timing):
    """Synaptic: syn = alpha syn + I; mem = beta mem + syn. Its zero reset with reset_delay=True zeroes
    *after* integration (unlike Leaky), hence "delayed" for both mechanisms."""
    rng = np.random.default_rng(13)
    alpha, beta, thr = 0.5, 0.75, 1.0
    w = dyadic_weights(rng, (N, NIN), scale=16)
    x = spikes(rng, (T, B, NIN))
    ts, tm = DT / (1 - alpha), DT / (1 - beta)
    node = nir.CubaLIF(tau_syn=np.full(N, ts), tau_mem=np.full(N, tm), r=np.full(N, tm / DT),
                       w_in=np.full(N, ts / DT), v_leak=np.zeros(N), v_threshold=np.full(N, thr),
                       v_reset=np.zeros(N))
    g = mlp_graph(node, w, {"spikeforge.reset": mech, "spikeforge.reset_timing": timing,
                            "spikeforge.cuba_order": "current_first"})
    ref_s, ref_v = run_ref(g, x)
    lif = snn.Synaptic(alpha=alpha, beta=beta, threshold=thr, reset_mechanism=mech, reset_delay=delay)
    layer = torch_linear(w)
    syn, mem = lif.reset_mem()
    s, v = [], []
    for t in range(T):
        spk, syn, mem = lif(layer(torch.tensor(x[t])), syn, mem)
        s.append(spk.numpy().copy())
        v.append(mem.numpy().copy())
    assert ref_s.sum() > 0.05 * ref_s.size
    assert compare_spikes(ref_s, ref_v, np.stack(s), np.stack(v), thr) <= 1


def test_snntorch_rleaky_recurrent():
    """RLeaky: mem = beta mem + I + V spk[t-1]; in NIR the recurrent Affine sits on a back edge, which the
    reference simulator reads with one step of latency."""
    rng = np.random.default_rng(14)
    beta, thr = 0.75, 1.0
    w = dyadic_weights(rng, (N, NIN))
    v_rec = dyadic_weights(rng, (N, N), scale=16)
    x = spikes(rng, (T, B, NIN))
    node = snn_leaky_node(beta, thr, N)
    node.metadata = {"spikeforge.reset": "subtract", "spikeforge.reset_timing": "delayed"}
    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([NIN])), "fc": nir.Affine(w, np.zeros(N, np.float32)),
               "neuron": node, "rec": nir.Affine(v_rec, np.zeros(N, np.float32)),
               "output": nir.Output(np.array([N]))},
        edges=[("input", "fc"), ("fc", "neuron"), ("neuron", "rec"), ("rec", "neuron"), ("neuron", "output")],
    )
    ref_s, ref_v = run_ref(g, x)
    lif = snn.RLeaky(beta=beta, threshold=thr, linear_features=N)
    lif.recurrent.weight.data = torch.tensor(v_rec)
    lif.recurrent.bias.data.zero_()
    layer = torch_linear(w)
    spk, mem = lif.init_rleaky()
    s, v = [], []
    for t in range(T):
        spk, mem = lif(layer(torch.tensor(x[t])), spk, mem)
        s.append(spk.numpy().copy())
        v.append(mem.numpy().copy())
    peer_s = np.stack(s)
    assert ref_s.sum() > 0.05 * ref_s.size
    assert compare_spikes(ref_s, ref_v, peer_s, np.stack(v), thr) <= 1
    # The recurrence matters: without the back edge the trains differ.
    g2 = mlp_graph(snn_leaky_node(beta, thr, N), w, node.metadata)
    assert (refsim.simulate(g2, x, dt=DT).outputs["output"] != peer_s).any()


def conv_graph(neuron: nir.NIRNode, w: np.ndarray, b: np.ndarray, hw: int, meta: dict) -> nir.NIRGraph:
    cin, cout = w.shape[1], w.shape[0]
    conv = nir.Conv2d(input_shape=(hw, hw), weight=w, stride=1, padding=1, dilation=1, groups=1, bias=b)
    neuron.metadata = dict(meta)
    return nir.NIRGraph(
        nodes={"input": nir.Input(np.array([cin, hw, hw])), "conv": conv, "neuron": neuron,
               "output": nir.Output(np.array([cout, hw, hw]))},
        edges=[("input", "conv"), ("conv", "neuron"), ("neuron", "output")],
    )


def torch_conv(w: np.ndarray, b: np.ndarray) -> torch.nn.Conv2d:
    conv = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=1)
    conv.weight.data = torch.tensor(w)
    conv.bias.data = torch.tensor(b)
    return conv


def test_snntorch_conv2d_leaky():
    rng = np.random.default_rng(15)
    cin, cout, hw, beta, thr = 2, 4, 8, 0.9, 1.0
    w = dyadic_weights(rng, (cout, cin, 3, 3), scale=32)
    b = (rng.integers(-4, 5, size=cout) / 64).astype(np.float32)
    x = spikes(rng, (60, B, cin, hw, hw), p=0.3)
    shape = (cout, hw, hw)
    tau = DT / (1 - beta)
    node = nir.LIF(tau=np.full(shape, tau), r=np.full(shape, tau / DT), v_leak=np.zeros(shape),
                   v_threshold=np.full(shape, thr), v_reset=np.zeros(shape))
    g = conv_graph(node, w, b, hw, {"spikeforge.reset": "subtract", "spikeforge.reset_timing": "delayed"})
    ref_s, ref_v = run_ref(g, x)
    assert ref_s.shape == (60, B, cout, hw, hw)
    peer_s, peer_v = run_snn_leaky(snn.Leaky(beta=beta, threshold=thr), torch_conv(w, b), x)
    assert ref_s.sum() > 0.05 * ref_s.size
    assert compare_spikes(ref_s, ref_v, peer_s, peer_v, thr) <= 2


# --------------------------------------------------------------------------------------------------
# Norse: LIFBoxCell (LIF), LIFCell (CubaLIF), IAFCell (IF), LIBoxCell (LI), Conv2d + IAFCell / LIFBoxCell
# --------------------------------------------------------------------------------------------------


def run_norse(cell, layer, x, state=None):
    s, v = [], []
    for t in range(len(x)):
        z, state = cell(layer(torch.tensor(x[t])), state)
        s.append(z.numpy().copy())
        v.append(state.v.detach().numpy().copy())
    return np.stack(s), np.stack(v)


@pytest.mark.parametrize("v_leak", [0.0, 0.05])
def test_norse_lifbox(v_leak):
    """LIFBoxCell: v += dt/tau (I + v_leak - v); z = v - v_th > 0; v = (1-z) v + z v_reset: NIR LIF with
    r = 1, Euler, immediate reset to v_reset, strict threshold. Norse starts at v = v_leak, the reference
    simulator at 0: the Norse side gets an explicit zero initial state."""
    rng = np.random.default_rng(20)
    tau, thr, vr = 5e-3, 0.2, -0.1
    w = dyadic_weights(rng, (N, NIN), scale=48)
    x = spikes(rng, (T, B, NIN), p=0.3)
    node = nir.LIF(tau=np.full(N, tau), r=np.ones(N), v_leak=np.full(N, v_leak), v_threshold=np.full(N, thr),
                   v_reset=np.full(N, vr))
    g = mlp_graph(node, w, {"spikeforge.reset": "zero", "spikeforge.reset_timing": "immediate",
                            "spikeforge.threshold_cmp": ">"})
    ref_s, ref_v = run_ref(g, x)
    p = LIFBoxParameters(tau_mem_inv=torch.tensor(1 / tau), v_leak=torch.tensor(v_leak), v_th=torch.tensor(thr),
                         v_reset=torch.tensor(vr))
    peer_s, peer_v = run_norse(norse.LIFBoxCell(p, dt=DT), torch_linear(w), x,
                               LIFBoxFeedForwardState(v=torch.zeros(B, N)))
    assert ref_s.sum() > 0.05 * ref_s.size
    assert compare_spikes(ref_s, ref_v, peer_s, peer_v, thr) <= 1
    if v_leak:  # and with Norse's default initial state (v = v_leak) the early steps differ
        default_s, _ = run_norse(norse.LIFBoxCell(p, dt=DT), torch_linear(w), x)
        assert (default_s != peer_s).any()


def test_norse_lifcell_cubalif():
    """LIFCell: i += I (a jump); v += dt/tau_mem (v_leak - v + i); i -= dt/tau_syn i; reset to v_reset.
    That is NIR CubaLIF with w_in = tau_syn/dt, r = 1, current_first (v sees this step's input);
    voltage_first does not match."""
    rng = np.random.default_rng(21)
    ts, tm, thr, vr = 4e-3, 8e-3, 0.3, -0.1
    w = dyadic_weights(rng, (N, NIN), scale=16)
    x = spikes(rng, (T, B, NIN), p=0.3)

    def node():
        return nir.CubaLIF(tau_syn=np.full(N, ts), tau_mem=np.full(N, tm), r=np.ones(N),
                           w_in=np.full(N, ts / DT), v_leak=np.zeros(N), v_threshold=np.full(N, thr),
                           v_reset=np.full(N, vr))

    meta = {"spikeforge.reset": "zero", "spikeforge.reset_timing": "immediate"}
    ref_s, ref_v = run_ref(mlp_graph(node(), w, {**meta, "spikeforge.cuba_order": "current_first"}), x)
    p = LIFParameters(tau_syn_inv=torch.tensor(1 / ts), tau_mem_inv=torch.tensor(1 / tm),
                      v_leak=torch.tensor(0.0), v_th=torch.tensor(thr), v_reset=torch.tensor(vr))
    peer_s, peer_v = run_norse(norse.LIFCell(p, dt=DT), torch_linear(w), x)
    assert ref_s.sum() > 0.05 * ref_s.size
    assert compare_spikes(ref_s, ref_v, peer_s, peer_v, thr) <= 1
    other, _ = run_ref(mlp_graph(node(), w, {**meta, "spikeforge.cuba_order": "voltage_first"}), x)
    assert (other != peer_s).any()


def test_norse_iaf():
    """IAFCell: v += I (no dt); z = v - v_th > 0; reset to v_reset: NIR IF with r = 1. Norse starts at
    v = v_reset, the reference simulator at 0: the Norse side gets an explicit zero initial state."""
    rng = np.random.default_rng(22)
    thr, vr = 0.5, -0.25
    w = dyadic_weights(rng, (N, NIN))
    x = spikes(rng, (T, B, NIN))
    node = nir.IF(r=np.ones(N), v_threshold=np.full(N, thr), v_reset=np.full(N, vr))
    ref_s, ref_v = run_ref(mlp_graph(node, w, {"spikeforge.reset": "zero"}), x)
    cell = norse.IAFCell(IAFParameters(v_th=torch.tensor(thr), v_reset=torch.tensor(vr)), dt=DT)
    peer_s, peer_v = run_norse(cell, torch_linear(w), x, IAFFeedForwardState(v=torch.zeros(B, N)))
    assert ref_s.sum() > 0.05 * ref_s.size
    assert compare_spikes(ref_s, ref_v, peer_s, peer_v, thr) == 0  # dyadic sums: IF is exact
    default_s, _ = run_norse(cell, torch_linear(w), x)  # Norse's own initial state v = v_reset
    assert (default_s != peer_s).any()


def test_norse_lifbox_continuous_weights_ties_bounded():
    """Gaussian weights, non-dyadic dt/tau: refsim's `keep * v + gain * I` and Norse's
    `v + dt/tau (I - v)` round differently (membranes differ by up to ~1 ulp-scale 1e-6 here), so a
    membrane within that distance of the threshold could spike on one side only. Bounded: every
    divergence must be such a tie (compare_spikes), and at most 1 % of the neurons (measured: none)."""
    rng = np.random.default_rng(23)
    n, tau, thr = 64, 3e-3, 0.3
    w = (rng.normal(size=(n, NIN)) * 0.4).astype(np.float32)
    x = spikes(rng, (200, B, NIN), p=0.3)
    node = nir.LIF(tau=np.full(n, tau), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.full(n, thr),
                   v_reset=np.zeros(n))
    ref_s, ref_v = run_ref(mlp_graph(node, w, {"spikeforge.reset": "zero"}), x)
    p = LIFBoxParameters(tau_mem_inv=torch.tensor(1 / tau), v_th=torch.tensor(thr))
    peer_s, peer_v = run_norse(norse.LIFBoxCell(p, dt=DT), torch_linear(w), x)
    same = (ref_s == peer_s).reshape(len(x), -1).all(axis=0)
    gap = np.abs(ref_v - peer_v).reshape(len(x), -1)[:, same].max()
    assert 0 < gap < 5e-6, "the two updates should round differently, but only by float32 noise"
    assert ref_s.mean() > 0.05
    assert compare_spikes(ref_s, ref_v, peer_s, peer_v, thr, tol=5e-6) <= 0.01 * B * n


def test_compare_spikes_accepts_only_ties():
    """The comparison helper must reject a real difference and accept a float32 tie."""
    s = np.zeros((4, 1, 2), np.float32)
    v = np.array([[0.1, 0.2], [0.2, 0.25], [0.3, 0.0], [0.1, 0.1]], np.float32)[:, None, :]
    assert compare_spikes(s, v, s.copy(), v.copy(), thr=0.3) == 0
    tie_s = s.copy()
    tie_s[2, 0, 0] = 1.0  # peer spikes where refsim sat exactly at the threshold (v > thr is false)
    tie_v = v.copy()
    tie_v[2, 0, 0] = 0.0
    assert compare_spikes(s, v, tie_s, tie_v, thr=0.3) == 1
    real_s = s.copy()
    real_s[1, 0, 1] = 1.0  # refsim's v = 0.25 is far below the threshold: not a tie
    with pytest.raises(AssertionError, match="not a tie"):
        compare_spikes(s, v, real_s, v.copy(), thr=0.3)
    drift_v = v.copy()
    drift_v[0, 0, 0] += 0.01  # membranes already apart before the spike difference
    with pytest.raises(AssertionError, match="membranes differ"):
        compare_spikes(s, v, tie_s, np.where(tie_s > 0, 0.0, drift_v), thr=0.3)


def test_norse_libox():
    """LIBoxCell: v += dt/tau (v_leak - v + I): NIR LI with r = 1 (Norse starts at v_leak; we pass 0)."""
    rng = np.random.default_rng(24)
    tau, v_leak = 5e-3, 0.05
    x = rng.normal(0.2, 1.0, size=(T, B, N)).astype(np.float32)
    node = nir.LI(tau=np.full(N, tau), r=np.ones(N), v_leak=np.full(N, v_leak))
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([N])), "neuron": node, "output": nir.Output(np.array([N]))},
                     edges=[("input", "neuron"), ("neuron", "output")])
    ref = refsim.simulate(g, x, dt=DT).outputs["output"]
    cell = norse.LIBoxCell(LIBoxParameters(tau_mem_inv=torch.tensor(1 / tau), v_leak=torch.tensor(v_leak)), dt=DT)
    state = LIBoxState(v=torch.zeros(B, N))
    out = []
    for t in range(T):
        v, state = cell(torch.tensor(x[t]), state)
        out.append(v.numpy().copy())
    out = np.stack(out)
    assert np.abs(out).max() > 0.1
    np.testing.assert_allclose(ref, out, rtol=0, atol=4e-6)  # same recurrence, different rounding


@pytest.mark.parametrize("kind", ["iaf", "lifbox"])
def test_norse_conv2d(kind):
    rng = np.random.default_rng(25)
    cin, cout, hw, thr = 2, 4, 8, 0.5
    w = dyadic_weights(rng, (cout, cin, 3, 3), scale=48, low=-16)
    b = (rng.integers(-4, 5, size=cout) / 64).astype(np.float32)
    x = spikes(rng, (60, B, cin, hw, hw), p=0.3)
    shape = (cout, hw, hw)
    if kind == "iaf":
        node = nir.IF(r=np.ones(shape), v_threshold=np.full(shape, thr), v_reset=np.zeros(shape))
        cell, state = norse.IAFCell(IAFParameters(v_th=torch.tensor(thr)), dt=DT), None
    else:
        tau, thr = 4e-3, 0.25
        node = nir.LIF(tau=np.full(shape, tau), r=np.ones(shape), v_leak=np.zeros(shape),
                       v_threshold=np.full(shape, thr), v_reset=np.zeros(shape))
        cell = norse.LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.tensor(1 / tau), v_th=torch.tensor(thr)), dt=DT)
        state = None
    g = conv_graph(node, w, b, hw, {"spikeforge.reset": "zero", "spikeforge.reset_timing": "immediate"})
    ref_s, ref_v = run_ref(g, x)
    peer_s, peer_v = run_norse(cell, torch_conv(w, b), x, state)
    assert ref_s.sum() > 0.02 * ref_s.size
    assert compare_spikes(ref_s, ref_v, peer_s, peer_v, thr) <= 2


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_sweep_continuous_weights_against_both_peers(seed):
    """Larger, non-dyadic sweep (run by `make bench`): snnTorch Leaky and Norse LIFBoxCell on Gaussian
    weights and random beta / tau; every divergence must be a tie, at most 0.5 % of neurons."""
    rng = np.random.default_rng(100 + seed)
    n, nin, steps, batch = 256, 64, 300, 8
    w = (rng.normal(size=(n, nin)) * 0.3).astype(np.float32)
    x = spikes(rng, (steps, batch, nin), p=0.2)
    beta, thr = float(rng.uniform(0.8, 0.98)), float(rng.uniform(0.5, 1.5))
    g = mlp_graph(snn_leaky_node(beta, thr, n), w, {"spikeforge.reset": "subtract",
                                                    "spikeforge.reset_timing": "delayed"})
    ref_s, ref_v = run_ref(g, x)
    peer_s, peer_v = run_snn_leaky(snn.Leaky(beta=beta, threshold=thr), torch_linear(w), x)
    assert compare_spikes(ref_s, ref_v, peer_s, peer_v, thr, tol=1e-5 * max(1.0, thr)) <= 0.005 * batch * n

    tau = float(rng.uniform(2e-3, 20e-3))
    node = nir.LIF(tau=np.full(n, tau), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.full(n, thr * 0.3),
                   v_reset=np.zeros(n))
    ref_s, ref_v = run_ref(mlp_graph(node, w, {"spikeforge.reset": "zero"}), x)
    p = LIFBoxParameters(tau_mem_inv=torch.tensor(1 / tau), v_th=torch.tensor(thr * 0.3))
    peer_s, peer_v = run_norse(norse.LIFBoxCell(p, dt=DT), torch_linear(w), x)
    assert ref_s.sum() > 0
    assert compare_spikes(ref_s, ref_v, peer_s, peer_v, thr * 0.3, tol=1e-5) <= 0.005 * batch * n
