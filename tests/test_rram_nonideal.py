"""Each RRAM non-ideality, switched on alone, shows its expected statistical effect."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from scipy.special import ndtr

from spikeforge.backends.rram import RRAMBackend, generate
from spikeforge.backends.rram import device as D
from spikeforge.backends.rram.device import NonIdeal, load_board
from spikeforge.emulators.rram import RRAMEmulator
from spikeforge.interfaces import CompileOptions

BOARD = load_board()


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _lower(g, **extra):
    return RRAMBackend().lower(g, BOARD, CompileOptions(seed=1, extra={f"rram.{k}": v for k, v in extra.items()}))


def _dense_graph(n_in: int = 200, n: int = 100, seed: int = 0) -> nir.NIRGraph:
    """Feed-forward 'reservoir' (no recurrence) with dense positive weights: the step-0 current is the MVM."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.05, 1.0, (n, n_in)).astype(np.float32)
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([n_in])}),
               "w_in": nir.Affine(weight=w, bias=np.zeros(n, np.float32)),
               "lif": nir.LIF(tau=np.full(n, 0.01), r=np.full(n, 10.0), v_leak=np.zeros(n),
                              v_threshold=np.full(n, 1e9), v_reset=np.zeros(n)),
               "output": nir.Output(output_type={"output": np.array([n])})},
        edges=[("input", "w_in"), ("w_in", "lif"), ("lif", "output")],
        metadata={"spikeforge.dt": 1e-3}, type_check=False)


def _step0_current(art, ni, x, seed=0):
    tr = RRAMEmulator(nonideal=ni, seed=seed).run(art, {"input": x}, probes=True)
    return tr.states["lif.current"][0]


def test_levels_quantise_targets():
    g = _dense_graph()
    art = _lower(g, nonideal={"levels": 8})
    gp = art.arrays["tile000.g_pos"].astype(np.float64)
    g_off = art.meta["g_off"]
    step = (1 - g_off) / 7
    k = (gp - g_off) / step
    assert np.allclose(k, np.rint(k), atol=1e-4) and len(np.unique(np.rint(k))) <= 8
    w = np.asarray(g.nodes["w_in"].weight, np.float64).T
    ws = art.arrays["tiles.w_per_g"][0]
    err = art.arrays["tile000.w"] - w
    assert np.abs(err).max() <= ws * step / 2 + 1e-5                   # within half a level
    assert np.abs(err).mean() > ws * step / 8                           # and it really moved the weights


def test_programming_noise_std_grows_with_conductance():
    g = np.tile(np.linspace(0.0, 1.0, 11), (20000, 1))
    ni = NonIdeal(prog_noise=0.05)
    a, _ = D.program(g, g, ni, 0.0, _rng())
    inner = slice(2, 9)                                                 # away from the clipping edges
    std = (a - g).std(axis=0)[inner]
    expect = 0.05 * (0.25 + 0.75 * g[0, inner])
    np.testing.assert_allclose(std, expect, rtol=0.05)
    assert abs((a - g)[:, inner].mean()) < 1e-3


def test_programming_noise_in_emulator_changes_weights_by_expected_amount():
    art = _lower(_dense_graph(), nonideal="off")
    ni = NonIdeal(prog_noise=0.04)
    tile = RRAMEmulator().chip(art, ni, _rng(3))[0]
    ws = art.arrays["tiles.w_per_g"][0]
    dev = (tile.w - art.arrays["tile000.w"]) / ws
    gp, gn = art.arrays["tile000.g_pos"], art.arrays["tile000.g_neg"]
    expect = 0.04 * np.sqrt((0.25 + 0.75 * gp) ** 2 + (0.25 + 0.75 * gn) ** 2)
    z = dev / expect
    # negative-side cells sit at g_off and get clipped at 0 half the time: compare only the interior mean/std loosely
    assert 0.85 < z.std() < 1.05 and abs(z.mean()) < 0.2


def test_read_noise_variance_matches_cell_sum():
    g = _dense_graph(n_in=200, n=50)
    art = _lower(g)
    B = 3000
    x = np.zeros((1, B, 200), np.float32)
    x[:, :, :60] = 1.0                                                  # same 60 active rows in every sample
    ideal = _step0_current(art, "off", x)
    noisy = _step0_current(art, {"read_noise": 0.02}, x)
    np.testing.assert_array_equal(ideal[0], ideal[1])
    ws = art.arrays["tiles.w_per_g"][0]
    gp, gn = art.arrays["tile000.g_pos"].astype(np.float64), art.arrays["tile000.g_neg"].astype(np.float64)
    var = (0.02 * ws) ** 2 * (gp[:60] ** 2 + gn[:60] ** 2).sum(axis=0)
    emp = noisy.var(axis=0)
    ratio = emp / var
    assert 0.9 < ratio.mean() < 1.1 and ratio.min() > 0.75
    assert np.abs(noisy.mean(axis=0) - ideal[0]).max() < 5 * np.sqrt(var.max() / B)    # unbiased


def test_relaxation_broadens_with_log_time():
    g = np.full((200000,), 0.5)
    s = []
    for t in (10.0, 1e4):
        a, _ = D.program(g, g, NonIdeal(relax_time=t, relax_sigma=0.01), 0.0, _rng(1))
        s.append((a - g).std())
    np.testing.assert_allclose(s, [0.01 * np.log10(11.0), 0.01 * np.log10(1e4 + 1)], rtol=0.02)


def test_device_variation_is_relative():
    g = np.tile(np.array([0.2, 0.8]), (100000, 1))
    a, _ = D.program(g, g, NonIdeal(d2d=0.05), 0.0, _rng(2))
    np.testing.assert_allclose((a / g).std(axis=0), [0.05, 0.05], rtol=0.03)


@pytest.mark.parametrize("lrs,hrs", [(0.01, 0.0), (0.0, 0.03), (0.1, 0.1)])
def test_stuck_cell_fractions(lrs, hrs):
    art = _lower(_dense_graph(n_in=400, n=250))
    gp = art.arrays["tile000.g_pos"].astype(np.float64)
    gn = art.arrays["tile000.g_neg"].astype(np.float64)
    g_off = art.meta["g_off"]
    a, b = D.program(gp, gn, NonIdeal(stuck_lrs=lrs, stuck_hrs=hrs), g_off, _rng(4))
    cells = np.concatenate([a.ravel(), b.ravel()])
    targets = np.concatenate([gp.ravel(), gn.ravel()])
    n = cells.size
    at_lrs = np.mean((cells == 1.0) & (targets != 1.0))
    moved_to_off = np.mean((cells == g_off) & (targets != g_off))
    tol = lambda p: 5 * np.sqrt(max(p, 1e-4) * (1 - p) / n) + 2e-3  # noqa: E731
    assert abs(at_lrs - lrs * np.mean(targets != 1.0)) < tol(lrs)
    assert abs(moved_to_off - hrs * np.mean(targets != g_off)) < tol(hrs)


def test_ir_drop_attenuates_far_columns_more():
    art = _lower(_dense_graph(n_in=200, n=200))
    x = np.ones((1, 1, 200), np.float32)
    ideal = _step0_current(art, "off", x)[0]
    dropped = _step0_current(art, {"ir_drop": 2e-5}, x)[0]
    ratio = dropped / ideal
    assert (ratio < 1).all() and ratio.min() > 0.2
    # bit lines further from the word-line drivers lose more: compare first and last quarters
    assert ratio[:50].mean() > ratio[-50:].mean()
    # a weaker wire loses less
    weaker = _step0_current(art, {"ir_drop": 5e-6}, x)[0] / ideal
    assert (weaker > ratio).all()


def test_adc_quantises_and_clips():
    art = _lower(_dense_graph(n_in=200, n=100))
    rng = _rng(5)
    x = (rng.random((1, 400, 200)) < 0.5).astype(np.float32)
    ideal = _step0_current(art, "off", x)
    ws, fs = art.arrays["tiles.w_per_g"][0], art.arrays["tiles.adc_full_scale"][0]
    errs = []
    for bits in (4, 6, 8):
        q = _step0_current(art, {"adc_bits": bits}, x)
        lsb = ws * fs / (2 ** (bits - 1) - 1)
        codes = q / lsb
        assert np.allclose(codes, np.rint(codes), atol=1e-6)
        assert len(np.unique(np.rint(codes))) <= 2 ** bits - 1
        inside = np.abs(ideal) < ws * fs
        assert np.abs(q - ideal)[inside].max() <= lsb / 2 + 1e-9
        errs.append(np.abs(q - ideal)[inside].mean())
    assert errs[0] > errs[1] > errs[2]
    # a full scale below the signal clips it
    art.arrays["tiles.adc_full_scale"] = art.arrays["tiles.adc_full_scale"] * 0.2
    clipped = _step0_current(art, {"adc_bits": 8}, x)
    assert np.abs(clipped).max() <= ws * fs * 0.2 + 1e-9 and (np.abs(ideal) > ws * fs * 0.2).any()


def test_forming_statistics():
    shape = (400, 400)
    for frac in (0.05, 0.3):
        v = D.forming_voltage(frac, BOARD)
        formed, g = D.form(shape, v, BOARD, _rng(6))
        assert abs(formed.mean() - frac) < 0.01
        assert abs(ndtr((v - 3.43) / 0.21) - frac) < 1e-9
        gf = g[formed]
        assert abs(gf.mean() - 12.3e-6) < 0.1e-6 and abs(gf.std() - 1.9e-6) < 0.1e-6
        assert np.all(g[~formed] == pytest.approx(0.1e-6))


def test_zero_shot_reservoir_keeps_density_balance_and_radius():
    from spikeforge.backends.rram.reservoir import spectral_radius

    g = generate(size=200, inputs=32, p_connect=0.1, spectral_radius=0.9, seed=2)
    art = _lower(g, mode="zero_shot")
    w0 = np.asarray(g.nodes["w_rec"].weight, np.float64)
    wz = np.asarray(art.reference.nodes["w_rec"].weight, np.float64)
    assert abs(spectral_radius(wz) - 0.9) < 1e-3
    # cells formed at about the graph's density; weights are conductance differences, not copies
    assert abs(art.meta["zero_shot"]["recurrent"]["formed_fraction"] - (w0 != 0).mean()) < 0.02
    assert np.corrcoef(w0.ravel(), wz.ravel())[0, 1] < 0.5
    # Dale's law survives: excitatory presynaptic rows only have positive weights beyond the pristine leak
    big = np.abs(wz) > 0.05 * np.abs(wz).max()
    assert np.all(wz[:, :160][big[:, :160]] > 0) and np.all(wz[:, 160:][big[:, 160:]] < 0)
    # the emulator with forming alone (no other effect) reproduces those weights
    x = (np.random.default_rng(0).random((15, 3, 32)) < 0.3).astype(np.float32)
    from spikeforge.refsim import simulate

    tr = RRAMEmulator(nonideal="off").run(art, {"input": x}, probes=True)
    ref = simulate(art.reference, {"input": x}, probes=True, dtype="float64")
    np.testing.assert_array_equal(tr.states["lif.spikes"], ref.activity["lif"])
