"""The Loihi emulator against Lava 0.10.0 fixed_pt itself: u, v and spikes bit for bit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeforge.backends.loihi._lava_compat import lava_available
from spikeforge.backends.loihi.testing import random_inputs, random_program
from spikeforge.emulators.loihi import (
    MAX_UV,
    Conn,
    Pop,
    Program,
    effective_weights,
    feedforward_order,
    run_program,
)

needs_lava = pytest.mark.skipif(not lava_available(), reason="lava-nc not installed")


def _lava(prog: Program, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from spikeforge.backends.loihi.network_template import run_lava

    spec, arrays = prog.to_data()
    return run_lava(spec, arrays, inputs, probes=True)


def _mismatches(prog: Program, inputs: dict[str, np.ndarray]) -> list[str]:
    lava = _lava(prog, inputs)
    emu = run_program(prog, inputs, probes=True)
    bad = []
    for n in prog.pops:
        for var, mine in (("s", emu.spikes[n]), ("u", emu.u[n]), ("v", emu.v[n])):
            theirs = lava[f"{n}/{var}"].astype(np.int64)
            if not np.array_equal(theirs, mine.astype(np.int64)):
                where = np.argwhere(theirs != mine)[0].tolist()
                bad.append(f"{n}.{var} first differs at (step-1, batch, neuron) {where}")
    return bad


def check_matches_lava(seed: int, stress: bool, steps: int = 12) -> None:
    rng = np.random.default_rng(seed)
    prog = random_program(rng, stress=stress)
    inputs = random_inputs(rng, prog, steps, 1)
    assert _mismatches(prog, inputs) == [], f"seed={seed} stress={stress}"


@needs_lava
@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), stress=st.booleans())
def test_emulator_matches_lava_on_random_networks(seed, stress):
    check_matches_lava(seed, stress)


@needs_lava
@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), stress=st.booleans())
def test_emulator_matches_lava_many_examples(seed, stress):
    check_matches_lava(seed, stress, steps=20)


def _wrap_program() -> Program:
    """Four synapses of -256 << 7 drive a_in << 6 to exactly -2^23 (the +-2^24 correction corner)."""
    pop = Pop(name="p", size=2, du=4095, dv=4095, vth=1000, bias_mant=np.zeros(2, int), bias_exp=np.zeros(2, int))
    w = np.array([[-256, -256, -256, -256], [255, 255, 255, 255]])
    conn = Conn(name="c", src="in", dst="p", weights=w, weight_exp=7, num_weight_bits=8, sign_mode="mixed")
    return Program(inputs={"in": 4}, pops={"p": pop}, conns=[conn])


def test_minus_two_pow_23_becomes_plus_two_pow_23():
    prog = _wrap_program()
    x = np.zeros((3, 1, 4), np.int32)
    x[0] = 1
    res = run_program(prog, {"in": x}, probes=True)
    assert res.u["p"][1, 0, 0] == MAX_UV           # -2^23 wrapped to +2^23 (Lava's one-shot correction)
    assert res.spikes["p"][1, 0, 0]                 # and the neuron fires from it


@needs_lava
def test_wrap_corner_matches_lava():
    prog = _wrap_program()
    x = np.zeros((4, 1, 4), np.int32)
    x[0] = 1
    x[2, 0, :3] = 1
    assert _mismatches(prog, {"in": x}) == []


@needs_lava
def test_weight_rules_match_lava_weightutils():
    from spikeforge.backends.loihi._lava_compat import import_lava

    import_lava()
    from lava.utils.weightutils import SignMode, clip_weights, truncate_weights

    rng = np.random.default_rng(1)
    for _ in range(50):
        w = rng.integers(-400, 400, (5, 7))
        mode = str(rng.choice(["mixed", "excitatory", "inhibitory"]))
        nwb = int(rng.integers(1, 9))
        sm = getattr(SignMode, mode.upper())
        ref = truncate_weights(clip_weights(w, sm, num_bits=8), sm, nwb)
        assert np.array_equal(effective_weights(w, mode, nwb), ref)


def test_batch_equals_samples_run_one_by_one():
    rng = np.random.default_rng(7)
    prog = random_program(rng, max_pops=3, max_size=6)
    inputs = random_inputs(rng, prog, 15, 4)
    whole = run_program(prog, inputs, probes=True)
    for b in range(4):
        one = run_program(prog, {k: v[:, b:b + 1] for k, v in inputs.items()}, probes=True)
        for n in prog.pops:
            assert np.array_equal(one.v[n][:, 0], whole.v[n][:, b])
            assert np.array_equal(one.spikes[n][:, 0], whole.spikes[n][:, b])


def test_event_counts_are_consistent():
    rng = np.random.default_rng(3)
    prog = random_program(rng, max_pops=2, max_size=6)
    inputs = random_inputs(rng, prog, 10, 3)
    res = run_program(prog, inputs)
    total_spikes = sum(int(s.sum()) for s in res.spikes.values())
    assert res.counts["spikes"].sum() == total_spikes
    assert np.all(res.counts["neuron_updates"] == 3 * sum(p.size for p in prog.pops.values()))
    assert np.all(res.counts["active_updates"] <= res.counts["neuron_updates"])
    # synops: every spike of a source times its nonzero effective synapses
    expect = 0.0
    spikes_of = dict(res.spikes)
    spikes_of.update({k: np.asarray(v) != 0 for k, v in inputs.items()})
    for c in prog.conns:
        fan = (effective_weights(c.weights, c.sign_mode, c.num_weight_bits) != 0).sum(axis=0)
        expect += float((spikes_of[c.src] * fan).sum())
    assert res.counts["synops"].sum() == expect


def test_layered_and_stepwise_paths_agree_and_chunking_is_invisible(monkeypatch):
    from spikeforge.emulators import loihi as L

    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        prog = random_program(rng, stress=seed % 2 == 1, recurrent=False)
        inputs = random_inputs(rng, prog, 14, 5)
        a = run_program(prog, inputs, probes=True, method="stepwise")
        b = run_program(prog, inputs, probes=True, method="layered")
        monkeypatch.setattr(L, "LAYERED_ELEMENTS", 20)               # forces one sample per chunk
        c = run_program(prog, inputs, probes=True, method="auto")
        monkeypatch.undo()
        for other in (b, c):
            for n in prog.pops:
                assert np.array_equal(a.spikes[n], other.spikes[n]), (seed, n)
                assert np.array_equal(a.u[n], other.u[n]) and np.array_equal(a.v[n], other.v[n]), (seed, n)
            for k in a.counts:
                np.testing.assert_allclose(a.counts[k], other.counts[k])


def _two_layer(n: int, seed: int, weight_exp: int = 0, du: int = 3000, dv: int = 400) -> Program:
    rng = np.random.default_rng(seed)
    pops = {f"l{k}": Pop(name=f"l{k}", size=n, du=du, dv=dv, vth=int(vth), bias_mant=rng.integers(-50, 50, n),
                         bias_exp=np.full(n, 2), bias_start=2) for k, vth in ((1, 15 * n), (2, 20 * n))}
    for p in pops.values():          # thresholds follow the weight scale so both layers fire
        p.vth = (p.vth << weight_exp) if 0 <= weight_exp <= 10 else max(1, p.vth >> 3)
    conns = [Conn(name="c1", src="in", dst="l1", weights=rng.integers(-60, 100, (n, n)), weight_exp=weight_exp),
             Conn(name="c2", src="l1", dst="l2", weights=rng.integers(-60, 100, (n, n)), weight_exp=weight_exp,
                  delays=rng.integers(0, 3, (n, n)) if seed % 2 else None)]
    return Program(inputs={"in": n}, pops=pops, conns=conns)


@pytest.mark.parametrize("density", [0.05, 0.5])
@pytest.mark.parametrize("weight_exp", [-3, 0, 20, 45])
def test_layered_fast_paths_equal_stepwise(density, weight_exp, monkeypatch):
    """Event-driven (CSR) and BLAS synaptic sums, float64 vs int64 accumulation, int32 wrap of a_in and
    the fused u/v loop against the plain step-by-step integer path."""
    from spikeforge.emulators import loihi as L

    monkeypatch.setattr(L, "SPARSE_MIN_WORK", 0)            # small test sizes would otherwise always use BLAS
    prog = _two_layer(40, seed=weight_exp + 50, weight_exp=weight_exp)
    rng = np.random.default_rng(5)
    x = {"in": (rng.random((30, 2, 40)) < density).astype(np.int32)}
    a = run_program(prog, x, probes=True, method="stepwise")
    b = run_program(prog, x, probes=True, method="layered")
    for n in prog.pops:
        assert np.array_equal(a.spikes[n], b.spikes[n]), n
        assert np.array_equal(a.u[n], b.u[n]) and np.array_equal(a.v[n], b.v[n]), n
    for k in a.counts:
        np.testing.assert_allclose(a.counts[k], b.counts[k])
    assert weight_exp >= 26 or any(s.any() for s in b.spikes.values())   # (w << 26) << 6 wraps to 0
    assert L.SPARSE_DENSITY > 0.05 and L.SPARSE_DENSITY < 0.5      # both branches above were taken


@needs_lava
def test_benchmark_sized_network_matches_lava(monkeypatch):
    """100 neurons per layer, ~10 % input activity (the event-driven path), biases and delays, vs Lava."""
    from spikeforge.emulators import loihi as L

    monkeypatch.setattr(L, "SPARSE_MIN_WORK", 0)
    prog = _two_layer(100, seed=1)
    rng = np.random.default_rng(2)
    x = {"in": (rng.random((25, 1, 100)) < 0.1).astype(np.int32)}
    assert _mismatches(prog, x) == []


def test_compiled_kernels_equal_numpy_path(monkeypatch):
    """The numba kernels (event-driven sum, fused LIF loop) give the numpy path's spikes, u, v and counts."""
    from spikeforge.backends.loihi.testing import random_program
    from spikeforge.emulators import loihi_kernels

    if not loihi_kernels.AVAILABLE:
        pytest.skip("numba not installed")
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        prog = random_program(rng, max_pops=3, max_size=40, recurrent=False)
        n_in = prog.inputs["in"]
        x = (rng.random((30, 3, n_in)) < 0.3).astype(np.int8)
        fast = run_program(prog, {"in": x}, probes=True, method="layered")
        monkeypatch.setattr(loihi_kernels, "AVAILABLE", False)
        slow = run_program(prog, {"in": x}, probes=True, method="layered")
        monkeypatch.setattr(loihi_kernels, "AVAILABLE", True)
        for n in prog.pops:
            np.testing.assert_array_equal(fast.spikes[n], slow.spikes[n])
            np.testing.assert_array_equal(fast.u[n], slow.u[n])
            np.testing.assert_array_equal(fast.v[n], slow.v[n])
        for k in slow.counts:
            np.testing.assert_array_equal(fast.counts[k], slow.counts[k])


def test_compiled_event_sum_equals_numpy_on_large_sparse_activity(monkeypatch):
    """Large enough for the event-driven path (sparse spikes x dense weight table), with delays and exps."""
    from spikeforge.emulators import loihi_kernels

    if not loihi_kernels.AVAILABLE:
        pytest.skip("numba not installed")
    rng = np.random.default_rng(7)
    n = 300
    pops = {f"l{k}": Pop(name=f"l{k}", size=n, du=int(rng.integers(0, 4096)), dv=400, vth=4 * n,
                         bias_mant=np.zeros(n, int), bias_exp=np.zeros(n, int)) for k in (1, 2)}
    conns = [Conn(name="c1", src="in", dst="l1", weights=rng.integers(-60, 100, (n, n)), weight_exp=-2,
                  delays=rng.integers(0, 3, (n, n))),
             Conn(name="c2", src="l1", dst="l2", weights=rng.integers(-60, 100, (n, n)), weight_exp=1)]
    prog = Program(inputs={"in": n}, pops=pops, conns=conns)
    x = (rng.random((80, 2, n)) < 0.05).astype(np.int8)
    fast = run_program(prog, {"in": x}, probes=True)
    monkeypatch.setattr(loihi_kernels, "AVAILABLE", False)
    slow = run_program(prog, {"in": x}, probes=True)
    assert slow.spikes["l2"].any()
    for k in pops:
        np.testing.assert_array_equal(fast.spikes[k], slow.spikes[k])
        np.testing.assert_array_equal(fast.v[k], slow.v[k])


def _refractory_programs(n: int) -> list[Program]:
    """Random programs (recurrent ones too) whose populations hold v for 1-3 steps after a spike."""
    progs = []
    for seed in range(n):
        rng = np.random.default_rng(700 + seed)
        prog = random_program(rng, stress=seed % 3 == 2, recurrent=seed % 2 == 1)
        for p in prog.pops.values():
            p.refractory = int(rng.integers(1, 4))
        progs.append(prog)
    return progs


def test_refractory_holds_v_and_both_paths_agree():
    """Lava's LIFRefractory rule in fixed point: v stays 0 for k steps after a spike, u integrates on."""
    fired = changed = 0
    for i, prog in enumerate(_refractory_programs(12)):
        inputs = random_inputs(np.random.default_rng(i), prog, 16, 3)
        a = run_program(prog, inputs, probes=True, method="stepwise")
        plain = Program(inputs=prog.inputs, pops={n: replace(p, refractory=0) for n, p in prog.pops.items()},
                        conns=prog.conns)
        b = run_program(plain, inputs, probes=True, method="stepwise")
        for n, p in prog.pops.items():
            s, v = a.spikes[n], a.v[n]
            for k in range(1, p.refractory + 1):       # the k steps after a spike: no spike, v = 0
                assert not np.any(s[k:][s[:-k]]) and np.all(v[k:][s[:-k]] == 0), (i, n, k)
            fired += int(s.sum())
            changed += int(not np.array_equal(v, b.v[n]))
        spec, arrays = prog.to_data()
        assert {n: q.refractory for n, q in Program.from_data(spec, arrays).pops.items()} == \
            {n: q.refractory for n, q in prog.pops.items()}
        if feedforward_order(prog) is not None:
            c = run_program(prog, inputs, probes=True, method="layered")
            for n in prog.pops:
                assert np.array_equal(a.spikes[n], c.spikes[n]) and np.array_equal(a.v[n], c.v[n]), (i, n)
                assert np.array_equal(a.u[n], c.u[n]), (i, n)
    assert fired > 50 and changed > 3


@needs_lava
def test_refractory_emulator_matches_lava_lif_refractory():
    """The emitted script's fixed-point LIFRefractory model, run by Lava, equals the emulator bit for bit."""
    for prog in _refractory_programs(3):
        rng = np.random.default_rng(3)
        inputs = random_inputs(rng, prog, 12, 1)
        assert _mismatches(prog, inputs) == []
