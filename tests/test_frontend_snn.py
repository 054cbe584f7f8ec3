"""snnTorch and Norse round trips: export -> normalise -> reference simulator == the framework's own spikes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
norse = pytest.importorskip("norse.torch")

from spikeforge import graph as G  # noqa: E402
from spikeforge import refsim  # noqa: E402
from spikeforge.errors import UnsupportedError  # noqa: E402
from spikeforge.frontends import load_model  # noqa: E402
from spikeforge.frontends.torch import from_norse, from_snntorch  # noqa: E402

T, B = 60, 4
torch.set_num_threads(1)
warnings.filterwarnings("ignore", category=DeprecationWarning)


def _drive(net: torch.nn.Module, seed: int = 0, offset: float = 0.4) -> torch.nn.Module:
    """Mostly excitatory weights so every layer spikes a lot (a silent network proves nothing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) - offset)
                m.bias.zero_()
    return net


def _inputs(shape: tuple[int, ...], seed: int = 1, amp: float = 1.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((T, B, *shape), generator=g) < 0.5).float() * amp


def _run_snntorch(net: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    for m in net.modules():
        if hasattr(m, "reset_mem") and getattr(m, "init_hidden", False):
            m.reset_mem()
    outs = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            o = net(x[t])
            outs.append(o[0] if isinstance(o, tuple) else o)
    return torch.stack(outs).numpy()


def _run_norse(net: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    state, outs = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            o, state = net(x[t], state)
            outs.append(o)
    return torch.stack(outs).numpy()


def _refsim(graph, x: torch.Tensor) -> np.ndarray:
    out = refsim.simulate(graph, x.numpy()).outputs
    assert len(out) == 1
    return next(iter(out.values()))


def _mlp(reset: str, delay: bool = True) -> torch.nn.Module:
    kw = dict(init_hidden=True, reset_mechanism=reset, reset_delay=delay)
    return _drive(torch.nn.Sequential(
        torch.nn.Linear(5, 8), snn.Leaky(beta=0.9, **kw),
        torch.nn.Linear(8, 6), snn.RLeaky(beta=0.8, linear_features=6, **kw),
        torch.nn.Linear(6, 3), snn.Synaptic(alpha=0.8, beta=0.7, output=True, **kw)))


@pytest.mark.parametrize("reset,delay", [("subtract", True), ("zero", True), ("subtract", False), ("zero", False)])
def test_snntorch_lif_recurrent_synaptic_match(reset: str, delay: bool) -> None:
    net = _mlp(reset, delay)
    x = _inputs((5,))
    ref = _run_snntorch(net, x)
    graph = from_snntorch(net, x[0])
    ours = _refsim(graph, x)
    assert 0.1 < ref.mean() < 0.9, "the test network must spike, not saturate"
    if reset == "subtract" and not delay:
        # documented approximation (node metadata): snnTorch subtracts again while v > threshold after a reset
        assert "spikeforge.approximation" in graph.nodes["1"].metadata
        assert (ours.reshape(ref.shape) != ref).mean() < 0.1
    else:
        np.testing.assert_array_equal(ours.reshape(ref.shape), ref)
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert {"LIF", "CubaLIF"} <= kinds
    assert G.schedule(graph).recurrent, "RLeaky must keep its recurrent edge"


def test_snntorch_conventions_are_recorded_and_needed() -> None:
    net = _mlp("subtract")
    x = _inputs((5,))
    graph = from_snntorch(net, x[0], dt=1e-3)
    assert graph.metadata[G.DT_KEY] == 1e-3
    lif = graph.nodes["1"]
    assert lif.metadata["spikeforge.converted_from"] == "snntorch.Leaky"
    assert lif.metadata["spikeforge.reset"] == "subtract"
    assert lif.metadata["spikeforge.reset_timing"] == "delayed"
    assert lif.metadata["spikeforge.source"]["beta"] == pytest.approx(0.9)
    np.testing.assert_allclose(lif.tau, 1e-3 / (1 - 0.9), rtol=1e-5)  # recomputed for dt, not the exporter's 1e-4
    np.testing.assert_allclose(lif.metadata["spikeforge.exported"]["tau"], 1e-4 / (1 - 0.9), rtol=1e-5)
    assert graph.nodes["5"].metadata["spikeforge.cuba_order"] == "current_first"
    # dt only rescales tau/r/w_in consistently: same spikes
    ref = _run_snntorch(net, x)
    np.testing.assert_array_equal(_refsim(graph, x).reshape(ref.shape), ref)
    # ... and the recorded timing matters: the NIR default (immediate) gives different spikes
    for n in graph.nodes.values():
        if "spikeforge.reset_timing" in n.metadata:
            n.metadata["spikeforge.reset_timing"] = "immediate"
    assert (_refsim(graph, x).reshape(ref.shape) != ref).sum() > 0


def test_snntorch_conv_round_trip_and_file(tmp_path) -> None:
    net = _drive(torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), snn.Leaky(beta=0.9, init_hidden=True),
        torch.nn.AvgPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(64, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True)))
    x = _inputs((1, 8, 8))
    ref = _run_snntorch(net, x)
    graph = from_snntorch(net, x[0])
    assert ref.sum() > 50
    np.testing.assert_array_equal(_refsim(graph, x).reshape(ref.shape), ref)
    # NIR file out and in keeps the conventions
    path = tmp_path / "conv.nir"
    G.write(graph, path)
    back = load_model(path)
    assert back.nodes["1"].metadata["spikeforge.reset_timing"] == "delayed"
    np.testing.assert_array_equal(_refsim(back, x).reshape(ref.shape), ref)


def test_snntorch_unsupported_reset_none() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), snn.Leaky(beta=0.9, init_hidden=True, reset_mechanism="none"))
    with pytest.raises(UnsupportedError, match="reset_mechanism='none'"):
        from_snntorch(net, torch.zeros(1, 3))


def _norse_net() -> torch.nn.Module:
    return _drive(norse.SequentialState(
        torch.nn.Linear(5, 8), norse.LIFCell(),
        torch.nn.Linear(8, 6), norse.LIFBoxCell(),
        torch.nn.Linear(6, 4), norse.IAFCell()), offset=0.1)


def test_norse_lif_cuba_if_match() -> None:
    net = _norse_net()
    x = _inputs((5,), amp=4.0)
    ref = _run_norse(net, x)
    graph = from_norse(net, x[0])
    assert 0.1 < ref.mean() < 0.9
    np.testing.assert_array_equal(_refsim(graph, x), ref)
    cuba = graph.nodes["1"]
    assert cuba.metadata["spikeforge.converted_from"] == "norse.LIFCell"
    np.testing.assert_allclose(cuba.tau_mem, 1 / 100.0, rtol=1e-6)  # true tau, not dt/tau_inv
    np.testing.assert_allclose(cuba.metadata["spikeforge.exported"]["tau_mem"], 1e-3 / 100.0, rtol=1e-5)
    np.testing.assert_allclose(cuba.w_in, (1 / 200.0) / 1e-3, rtol=1e-5)


def test_norse_cuba_order_is_current_first() -> None:
    """Norse 1.1 LIFCell adds the input to i *before* integrating v: voltage_first would be wrong."""
    net = _norse_net()
    x = _inputs((5,), amp=4.0)
    ref = _run_norse(net, x)
    graph = from_norse(net, x[0])
    graph.nodes["1"].metadata["spikeforge.cuba_order"] = "voltage_first"
    assert (_refsim(graph, x) != ref).sum() > 0


def test_norse_conv_round_trip() -> None:
    net = _drive(norse.SequentialState(torch.nn.Conv2d(1, 3, 3), norse.LIFBoxCell(),
                                       torch.nn.Conv2d(3, 2, 3), norse.LIFCell()), offset=0.2)
    x = _inputs((1, 8, 8), amp=3.0)
    ref = _run_norse(net, x)
    graph = from_norse(net, x[0])
    assert ref.sum() > 30
    np.testing.assert_array_equal(_refsim(graph, x).reshape(ref.shape), ref)


def test_norse_unmapped_module_is_named() -> None:
    net = norse.SequentialState(torch.nn.Linear(3, 2), norse.LIFCell(), torch.nn.Tanh())
    with pytest.raises(UnsupportedError, match="Tanh"):
        from_norse(net, torch.zeros(1, 3))


class DigitsSNN(torch.nn.Module):
    """Used by the state_dict loading test through model_class='tests.test_frontend_snn:DigitsSNN'."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(5, 4)
        self.lif = snn.Leaky(beta=0.85, init_hidden=True, output=True)

    def forward(self, x):
        return self.lif(self.fc(x))


def test_state_dict_with_model_class(tmp_path) -> None:
    net = _drive(DigitsSNN())
    path = tmp_path / "snn.pt"
    torch.save(net.state_dict(), path)
    graph = load_model(path, model_class=f"{__name__}:DigitsSNN", input_shape=(5,))
    x = _inputs((5,))
    ref = _run_snntorch(net, x)
    np.testing.assert_array_equal(_refsim(graph, x).reshape(ref.shape), ref)


def test_norse_recurrent_and_flatten() -> None:
    """LIFRecurrentCell (not in Norse's exporter) becomes Linear -> CubaLIF with a recurrent Linear."""
    net = _drive(norse.SequentialState(
        torch.nn.Conv2d(1, 2, 3), norse.LIFBoxCell(), torch.nn.AvgPool2d(2), torch.nn.Flatten(),
        norse.LIFRecurrentCell(18, 6), torch.nn.Linear(6, 3), norse.LIFCell()), offset=0.15)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # the cell draws its weights from the global RNG: fix them here
        net[4].input_weights.copy_(torch.rand(6, 18, generator=g) - 0.2)
        net[4].recurrent_weights.copy_(torch.rand(6, 6, generator=g) - 0.5)
    x = _inputs((1, 8, 8), amp=4.0)
    ref = _run_norse(net, x)
    graph = from_norse(net, x[0])
    assert G.schedule(graph).recurrent
    assert graph.nodes["4.lif"].metadata["spikeforge.converted_from"] == "norse.LIFRecurrentCell"
    assert 0.05 < ref.mean() < 0.95
    np.testing.assert_array_equal(_refsim(graph, x).reshape(ref.shape), ref)


def test_snntorch_dropout_is_bridged_once() -> None:
    """Dropout (identity in eval) is dropped; nirtorch's own bypass edge must not double the input."""
    net = _drive(torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Dropout(0.2), snn.Leaky(beta=0.9, init_hidden=True),
        torch.nn.Linear(8, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True))).eval()
    x = _inputs((5,))
    ref = _run_snntorch(net, x)
    graph = from_snntorch(net, x[0])
    assert len(graph.edges) == len(set(graph.edges))
    assert 0.05 < ref.mean() < 0.95
    np.testing.assert_array_equal(_refsim(graph, x).reshape(ref.shape), ref)


@pytest.mark.parametrize("case", ["rsynaptic", "per_neuron_beta", "conv_rleaky"])
def test_snntorch_more_neurons(case: str) -> None:
    """RSynaptic; a per-neuron beta (snnTorch's own exporter fails on it); a convolutional RLeaky."""
    if case == "rsynaptic":
        net = torch.nn.Sequential(torch.nn.Linear(5, 6), snn.RSynaptic(alpha=0.7, beta=0.8, linear_features=6,
                                                                       init_hidden=True, output=True))
        shape: tuple[int, ...] = (5,)
    elif case == "per_neuron_beta":
        net = torch.nn.Sequential(torch.nn.Linear(5, 6), snn.Leaky(beta=torch.linspace(0.5, 0.95, 6), learn_beta=True,
                                                                   init_hidden=True, output=True))
        shape = (5,)
    else:
        net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 2, 3, padding=1),
            snn.RLeaky(beta=0.8, conv2d_channels=2, kernel_size=3, init_hidden=True),
            torch.nn.Flatten(), torch.nn.Linear(128, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True))
        shape = (1, 8, 8)
    _drive(net, offset=0.45)
    x = _inputs(shape)
    ref = _run_snntorch(net, x)
    graph = from_snntorch(net, x[0])
    assert ref.sum() > 20
    np.testing.assert_array_equal(_refsim(graph, x).reshape(ref.shape), ref)
    if case != "per_neuron_beta":
        assert G.schedule(graph).recurrent
    else:
        np.testing.assert_allclose(graph.nodes["1"].tau, 1e-4 / (1 - np.linspace(0.5, 0.95, 6)), rtol=1e-4)
