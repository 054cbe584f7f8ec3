"""Brian2 networks -> NIR: the reference simulator reproduces Brian2's own spike times (numpy target)."""

from __future__ import annotations

import numpy as np
import pytest

b2 = pytest.importorskip("brian2")

from spikeforge import refsim  # noqa: E402
from spikeforge.errors import SpikeforgeError, UnsupportedError  # noqa: E402
from spikeforge.frontends import load_model  # noqa: E402
from spikeforge.frontends.brian2 import from_brian2  # noqa: E402

b2.prefs.codegen.target = "numpy"
b2.BrianLogger.suppress_name("unused_brian_object")  # the refusal tests build groups they never run
ms, mV, nA, Hz, Mohm = b2.ms, b2.mV, b2.nA, b2.Hz, b2.Mohm
T = 2000  # steps of 0.1 ms


def match_fraction(ref_steps: np.ndarray, ref_idx: np.ndarray, ours: np.ndarray, tol: int = 1) -> float:
    """Fraction of spikes paired (same neuron, |dt| <= tol steps), over the larger of the two counts."""
    matched = total = 0
    for n in range(ours.shape[1]):
        a = sorted(ref_steps[ref_idx == n].tolist())
        b = np.nonzero(ours[:, n])[0].tolist()
        total += max(len(a), len(b))
        for s in a:
            hit = next((u for u in b if abs(u - s) <= tol), None)
            if hit is not None:
                matched += 1
                b.remove(hit)
    return matched / max(total, 1)


@pytest.fixture(scope="module")
def simulated():
    """One Brian2 run of three groups: LIF (exact, v_reset != v_leak), LIF behind it, CUBA LIF (euler)."""
    b2.start_scope()
    b2.seed(3)
    b2.defaultclock.dt = 0.1 * ms
    tau, tau_s = 10 * ms, 5 * ms  # noqa: F841  (resolved by name, as Brian2 does)
    lif = "dv/dt = (-65*mV - v)/tau : volt"
    P = b2.PoissonGroup(30, 50 * Hz, name="poisson")
    G1 = b2.NeuronGroup(15, lif, threshold="v > -55*mV", reset="v = -70*mV", method="exact", name="lif1")
    G2 = b2.NeuronGroup(8, lif, threshold="v >= -55*mV", reset="v = -65*mV", method="exact", name="lif2")
    G3 = b2.NeuronGroup(6, "dv/dt = (-v + R*I)/tau : volt\ndI/dt = -I/tau_s : amp\nR : ohm",
                        threshold="v > 10*mV", reset="v = 0*mV", method="euler", name="cuba")
    G1.v = -65 * mV
    G2.v = -65 * mV
    G3.R = "(50 + 10*i)*Mohm"
    S1 = b2.Synapses(P, G1, "w : volt", on_pre="v_post += w", name="s_in")
    S1.connect(p=0.5)
    S1.w = "rand()*4*mV"
    S1.delay = "rand()*3*ms"
    S2 = b2.Synapses(G1, G2, "w : volt", on_pre="v += w", name="s_hid")
    S2.connect(p=0.6)
    S2.w = "rand()*6*mV"
    S2.delay = "rand()*2*ms"
    S3 = b2.Synapses(P, G3, "w : amp", on_pre="I_post += w", delay=1 * ms, name="s_cuba")
    S3.connect(p=0.5)
    S3.w = "rand()*0.1*nA"
    mons = {g.name: b2.SpikeMonitor(g) for g in (P, G1, G2, G3)}
    net = b2.Network(P, G1, G2, G3, S1, S2, S3, *mons.values())
    graph = from_brian2(net)
    net.run(T * b2.defaultclock.dt)
    dt = float(b2.defaultclock.dt)
    spikes = {k: (np.rint(np.asarray(m.t / b2.second) / dt).astype(int), np.asarray(m.i)) for k, m in mons.items()}
    x = np.zeros((T, 1, 30), np.float32)
    x[spikes["poisson"][0], 0, spikes["poisson"][1]] = 1
    return graph, spikes, refsim.simulate(graph, {"poisson": x}).outputs


@pytest.mark.parametrize("group", ["lif1", "lif2", "cuba"])
def test_brian2_spike_times_agree(simulated, group: str) -> None:
    graph, spikes, outs = simulated
    ours = outs[f"{group}_out"][:, 0]
    steps, idx = spikes[group]
    assert len(steps) > 50, "the group must spike for the comparison to mean anything"
    frac = match_fraction(steps, idx, ours)
    assert frac >= 0.99, f"{group}: {frac:.4f} of spikes within one step"


def test_brian2_graph_structure(simulated) -> None:
    graph, _, _ = simulated
    assert graph.metadata["spikeforge.dt"] == pytest.approx(1e-4)
    delays = [n for k, n in graph.nodes.items() if k.startswith("s_in_delay")]
    assert len(delays) > 10  # per-synapse delays, grouped by value
    lif1 = graph.nodes["lif1"]
    assert type(lif1).__name__ == "LIF"
    np.testing.assert_allclose(lif1.tau, 0.01)
    np.testing.assert_allclose(lif1.metadata["spikeforge.v_offset"], -0.065, rtol=1e-6)
    np.testing.assert_allclose(lif1.v_threshold, 0.010, rtol=1e-5)  # -55 mV relative to the initial -65 mV
    assert lif1.metadata["spikeforge.integration"] == "exact"
    cuba = graph.nodes["cuba"]
    assert type(cuba).__name__ == "CubaLIF"
    np.testing.assert_allclose(cuba.r, 50e6 + 10e6 * np.arange(6), rtol=1e-6)
    assert graph.nodes["lif2"].metadata["spikeforge.threshold_cmp"] == ">="


HH_SCRIPT = '''
from brian2 import *
prefs.codegen.target = "numpy"
area = 20000*umetre**2
Cm = 1*ufarad*cm**-2 * area
gl = 5e-5*siemens*cm**-2 * area
El = -65*mV
EK = -90*mV
ENa = 50*mV
g_na = 100*msiemens*cm**-2 * area
g_kd = 30*msiemens*cm**-2 * area
VT = -63*mV
eqs = Equations("""
dv/dt = (gl*(El-v) - g_na*(m*m*m)*h*(v-ENa) - g_kd*(n*n*n*n)*(v-EK) + I)/Cm : volt
dm/dt = 0.32*(mV**-1)*4*mV/exprel((13.*mV-v+VT)/(4*mV))/ms*(1-m)-0.28*(mV**-1)*5*mV/exprel((v-VT-40.*mV)/(5*mV))/ms*m : 1
dn/dt = 0.032*(mV**-1)*5*mV/exprel((15.*mV-v+VT)/(5*mV))/ms*(1.-n)-.5*exp((10.*mV-v+VT)/(40.*mV))/ms*n : 1
dh/dt = 0.128*exp((17.*mV-v+VT)/(18.*mV))/ms*(1.-h)-4./(1+exp((40.*mV-v+VT)/(5.*mV)))/ms*h : 1
I : amp
""")
hh = NeuronGroup(2, eqs, threshold="v > -40*mV", refractory="v > -40*mV", method="exponential_euler", name="hh")
net = Network(hh)
'''

LIF_SCRIPT = '''
from brian2 import *
tau = 20*ms
P = SpikeGeneratorGroup(2, [0, 1, 0], [1, 2, 3]*ms, name="gen")
G = NeuronGroup(3, "dv/dt = -v/tau : 1", threshold="v > 1", reset="v -= 1", name="lif")
S = Synapses(P, G, on_pre="v += 0.6", name="syn")
S.connect()
net = Network(P, G, S)
'''


def test_brian2_script_file_and_subtract_reset(tmp_path) -> None:
    path = tmp_path / "net.py"
    path.write_text(LIF_SCRIPT)
    with pytest.raises(SpikeforgeError, match="trust"):
        load_model(path)  # executing a .py needs the trust flag
    graph = load_model(path, trust=True)
    lif = graph.nodes["lif"]
    assert lif.metadata["spikeforge.reset"] == "subtract"
    assert lif.metadata["spikeforge.reset_timing"] == "immediate"
    x = np.zeros((60, 1, 2), np.float32)
    x[[10, 30], 0, 0] = 1
    x[20, 0, 1] = 1
    out = refsim.simulate(graph, {"gen": x}).outputs["lif_out"][:, 0]
    # input spikes at steps 10, 20, 30 add 0.6 each, seen from the next step; v decays with tau = 20 ms:
    # 0.6 -> 1.2 (minus decay) crosses 1 at step 21 in Brian2's timing
    v = 0.0
    expect = []
    a = np.exp(-1e-4 / 0.02)
    for t in range(60):
        v *= a
        if v > 1:
            expect.append(t)
            v -= 1
        if t in (10, 20, 30):
            v += 0.6
    assert np.nonzero(out[:, 0])[0].tolist() == expect
    with pytest.raises(SpikeforgeError, match="dt"):
        load_model(path, dt=1e-3, trust=True)


def test_brian2_hodgkin_huxley_is_refused(tmp_path) -> None:
    path = tmp_path / "hh.py"
    path.write_text(HH_SCRIPT)
    with pytest.raises(UnsupportedError) as err:
        load_model(path, trust=True)
    msg = str(err.value)
    assert "hh" in msg and "Hodgkin-Huxley" in msg and "\n" not in msg


def test_brian2_refractory_is_refused() -> None:
    b2.start_scope()
    G = b2.NeuronGroup(2, "dv/dt = -v/(10*ms) : 1", threshold="v > 1", reset="v = 0", refractory=2 * ms,
                       name="refr")
    with pytest.raises(UnsupportedError, match="refractory"):
        from_brian2(b2.Network(G, b2.PoissonGroup(2, 10 * Hz)))


def test_brian2_if_and_li_groups() -> None:
    """IF (v changed only by synapses) spikes match; LI's v equals Brian2's v after one step of decay."""
    b2.start_scope()
    b2.seed(2)
    b2.defaultclock.dt = 0.1 * ms
    P = b2.PoissonGroup(10, 100 * Hz, name="p")
    IFG = b2.NeuronGroup(4, "v : 1", threshold="v > 1", reset="v = 0", name="ifg")
    LI = b2.NeuronGroup(3, "dv/dt = -v/(5*ms) : 1", method="exact", name="li")
    S1 = b2.Synapses(P, IFG, "w : 1", on_pre="v += w", name="s_if")
    S1.connect(p=0.5)
    S1.w = "rand()*0.4"
    S1.delay = "rand()*2*ms"
    S2 = b2.Synapses(P, LI, on_pre="v += 0.3", name="s_li")
    S2.connect(p=0.5)
    mons = {g.name: b2.SpikeMonitor(g) for g in (P, IFG)}
    st = b2.StateMonitor(LI, "v", record=True)
    net = b2.Network(P, IFG, LI, S1, S2, st, *mons.values())
    graph = from_brian2(net)
    assert type(graph.nodes["ifg"]).__name__ == "IF" and type(graph.nodes["li"]).__name__ == "LI"
    net.run(1500 * b2.defaultclock.dt)
    sp = {k: (np.rint(np.asarray(m.t / b2.second) / 1e-4).astype(int), np.asarray(m.i)) for k, m in mons.items()}
    x = np.zeros((1500, 1, 10), np.float32)
    x[sp["p"][0], 0, sp["p"][1]] = 1
    out = refsim.simulate(graph, {"p": x}).outputs
    assert len(sp["ifg"][0]) > 20
    assert match_fraction(*sp["ifg"], out["ifg_out"][:, 0]) >= 0.99
    # StateMonitor records at the start of a step (after the previous step's jumps); the refsim's output is
    # v after this step's integration, i.e. that value decayed once
    v_b2 = np.asarray(st.v) * np.exp(-1e-4 / 5e-3)
    np.testing.assert_allclose(out["li_out"][:, 0].T, v_b2, atol=1e-5)
