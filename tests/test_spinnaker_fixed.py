"""S16.15 arithmetic and single-neuron traces of the SpiNNaker emulator, derived by hand from the C sources.

Sources (sPyNNaker 7.4.1 / spinn_common): maths-util.h (kdivk), stdfix-exp.c (expk, expulr), decay.h
(decay_s1615, decay_s1615_to_u032), neuron_model_lif_impl.h (closed-form LIF, refractory countdown),
neuron_impl_standard.h (order of a step), synapse_types_{exponential,delta}_impl.h, synapses.c (16-bit
saturating ring buffers, `w << shift` into s16.15).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from spikeforge.backends.spinnaker import fixed as F
from spikeforge.backends.spinnaker.program import Population, Program, Projection, Readout
from spikeforge.emulators.spinnaker import simulate

ONE = 32768  # s16.15 raw of 1.0


# ---- the on-core constants ---------------------------------------------------------------------------
def test_exp_tc_anchor_20ms():
    # kdivk(1.0, 20.0) = (32768 << 15) // 655360 = 1073741824 // 655360 = 1638 (0.049988, not 0.05)
    assert F.kdivk(ONE, 20 * ONE) == 1638
    # the checked value the shipped binary holds for exp(-dt/tau_m) at dt = 1 ms, tau_m = 20 ms
    assert F.lif_exp_tc(ONE, 20 * ONE) == 31170


def test_exp_tc_differs_from_host_rounding():
    # tau_m = 2 ms: the float exp(-0.5) * 32768 = 19874.80 rounds to 19875 on a host, but the core computes
    # expk(-kdivk(1, 2)) = expk(-16384), truncating the 64-bit kernel result >> 17: 19874
    assert round(math.exp(-0.5) * ONE) == 19875
    assert F.lif_exp_tc(ONE, 2 * ONE) == 19874


@pytest.mark.parametrize("x", list(range(-340000, 0, 4099)) + [-1, -16384, -32768])
def test_expk_close_to_exp_for_negative_arguments(x):
    exact = math.exp(x / ONE) * ONE
    assert 0 <= exact - F.expk(x) < 1.5  # truncation: never above, within one LSB (+ table error)


@pytest.mark.parametrize("x", [-6553, -1638, -32768, -100000])
def test_expulr_relative_error(x):
    exact = math.exp(x / ONE) * 2**32
    assert abs(F.expulr(x) - exact) / exact < 2e-6


def test_expk_saturation_and_zero():
    assert F.expk(0) == ONE                      # __exp_hi[13] = 2**32, >> 17 = 32768
    assert F.expk(-340696) == 0                  # below the table: 0
    assert F.expk(363409) == 2**31 - 1           # above: INT32_MAX


def test_exponential_synapse_decay_and_init_tau5():
    # kdivk(1, 5) = 2**30 // 163840 = 6553; decay = expulr(-6553)
    decay, init = F.exp_synapse_decay_init(ONE, 5 * ONE)
    assert abs(decay / 2**32 - math.exp(-6553 / ONE)) < 2e-6
    # init = decay_s1615_to_u032(kdivk(5, 1) = 163840, 0xFFFFFFFF - decay) = (163840 * inv) >> 15 = 5 * inv
    assert init == (5 * (0xFFFFFFFF - decay)) & 0xFFFFFFFF


def test_mul_and_decay_floor_toward_minus_infinity():
    assert F.mul_kk(-1, ONE // 2) == -1          # -1 * 0.5 = -0.5 LSB -> floor -1 (not 0)
    assert F.mul_kk(3, ONE // 2) == 1            # 1.5 LSB -> 1
    assert F.decay_s1615(-1, 3516490311) == -1   # (int64 * uint32) >> 32, arithmetic
    assert F.decay_s1615(100, 3516490311) == 81  # 100 * 0.8187 = 81.87 -> 81


def test_accum_range_checked():
    with pytest.raises(ValueError):
        F.to_accum(70000.0)
    assert F.to_accum(0.5) == 16384
    assert F.to_accum(2.5 / ONE) == 2            # round half to even (host side)


# ---- hand-built single-neuron programs -------------------------------------------------------------
def _neuron(kind: str, *, tau_m=20.0, cm=20.0, v_thresh=1.0, v_reset=0.0, v_rest=0.0, tau_refrac=0.0,
            tau_syn=5.0, shifts=(1, 1), n=1) -> Population:
    dt = ONE
    raw = {
        "v_init": np.zeros(n, np.int64), "v_rest": np.full(n, F.to_accum(v_rest)),
        "v_reset": np.full(n, F.to_accum(v_reset)), "v_thresh": np.full(n, F.to_accum(v_thresh)),
        "exp_tc": np.full(n, F.lif_exp_tc(dt, F.to_accum(tau_m))),
        "r_mem": np.full(n, F.lif_r_membrane(F.to_accum(tau_m), F.to_accum(cm))),
        "i_offset": np.zeros(n, np.int64),
        "t_refract": np.full(n, F.lif_t_refract(F.to_accum(tau_refrac), dt)),
    }
    d, i = F.exp_synapse_decay_init(dt, F.to_accum(tau_syn)) if kind == "IF_curr_exp" else (0, 0)
    for k, v in (("exc_decay", d), ("exc_init", i), ("inh_decay", d), ("inh_init", i)):
        raw[k] = np.full(n, v, np.int64)
    return Population("post", "post", kind, n, (n,), True, {}, raw, shifts)


def _program(post: Population, w_int: list[int], n_src=1, delay=1, receptor="excitatory") -> Program:
    src = Population("src", "input", "SpikeSourceArray", n_src, (n_src,))
    k = len(w_int)
    pr = Projection("p", "src", "post", receptor, np.arange(k, dtype=np.int32) % n_src, np.zeros(k, np.int32),
                    np.ones(k), np.full(k, delay, np.int32), np.asarray(w_int, np.int64))
    return Program(1.0, [src, post], [pr], [Readout("output", "post", "spikes")], {"input": "src"})


def _run(prog: Program, spikes_at: list[int], T: int, n_src=1):
    x = np.zeros((T, 1, n_src))
    for t in spikes_at:
        x[t, 0, :] = 1
    tr = simulate(prog, {"input": x}, probes=True)
    v = np.rint(tr.states["post.v"][:, 0, 0] * ONE).astype(int)
    return v, tr.outputs["output"][:, 0, 0], tr


def test_delta_trace_by_hand():
    # IF_curr_delta, tau_m = cm = 20 -> R = kdivk(20, 20) = 32768 (1.0), exp_TC = 31170; shift 1.
    # weight 0.5 nA: w_int = rint(0.5 * 2**(15-1)) = 8192; ring -> input: 8192 << 1 = 16384 (0.5).
    # A spike sent in step 0 lands in slot 1 (delay 1). Step 0: V stays 0.
    # Step 1: isyn = 16384; alpha = (16384 * 32768) >> 15 + 0 = 16384;
    #         V = 16384 - ((31170 * (16384 - 0)) >> 15) = 16384 - 15585 = 799; delta input cleared.
    # Step 2 (no input): alpha = 0; V = 0 - ((31170 * (0 - 799)) >> 15) = -floor(-760.06) ... = 0 - (-761) = 761
    # Step 3: V = 0 - ((31170 * -761) >> 15) = 0 - floor(-723.9) = 724
    prog = _program(_neuron("IF_curr_delta"), [8192])
    v, s, _ = _run(prog, [0], 4)
    assert list(v) == [0, 799, 761, 724]
    assert not s.any()


def test_delta_threshold_crossing_and_reset():
    # Constant drive 0.5 every step from step 1: V_t = 16384 - ((31170 * (16384 - V_{t-1})) >> 15):
    # 799, 1560, 2283, 2971, 3626 ... never reaches 1.0 (the fixed point is 0.5): no spike.
    prog = _program(_neuron("IF_curr_delta"), [8192])
    v, s, _ = _run(prog, list(range(6)), 6)
    assert list(v[1:]) == [799, 1560, 2283, 2971, 3626]
    # weight 1.0 (w_int 16384 << 1 = 32768), threshold 0.05: step 1 V = 32768 - (31170*32768 >> 15) = 1598
    # >= 0.05 (1638)? no. Step 2: V = 32768 - ((31170 * (32768 - 1598)) >> 15) = 32768 - 29650 = 3118 >= 1638
    # -> spike in step 2 (the step V crossed), V reset to 0.
    prog = _program(_neuron("IF_curr_delta", v_thresh=0.05), [16384])
    v, s, _ = _run(prog, list(range(3)), 4)
    assert list(np.nonzero(s)[0]) == [2]
    assert v[1] == 1598 and v[2] == 0


def test_refractory_freezes_v():
    # tau_refrac = 2 ms -> T_refract = ceil(kdivk(2, 1)) = ceil(2.0) = 2. Same drive as above (spike in step 2).
    # Steps 3 and 4: timer 2 -> 1 -> 0, V frozen at V_reset = 0 although input keeps arriving.
    # Step 5: timer <= 0, V = 32768 - ((31170 * 32768) >> 15) = 1598 again.
    prog = _program(_neuron("IF_curr_delta", v_thresh=0.05, tau_refrac=2.0), [16384])
    v, s, _ = _run(prog, list(range(7)), 7)
    assert list(np.nonzero(s)[0])[:1] == [2]
    assert list(v[2:6]) == [0, 0, 0, 1598]


def test_exponential_synapse_trace():
    # IF_curr_exp, tau_syn = 5: decay = 3516490311, init = 3892384920 (0.9063). input 0.5 (16384):
    # Step 1: isyn = (16384 * 3892384920) >> 32 = 14848; alpha = 14848;
    #         V = 14848 - ((31170 * 14848) >> 15) = 14848 - (462812160 >> 15 = 14123) = 725,
    #         then isyn = (14848 * 3516490311) >> 32 = 12156.
    # Step 2: alpha = 12156; V = 12156 - ((31170 * (12156 - 725)) >> 15) = 12156 - (356304270 >> 15 = 10873) = 1283
    prog = _program(_neuron("IF_curr_exp"), [8192])
    v, _, _ = _run(prog, [0], 3)
    assert list(v) == [0, 725, 1283]


def test_ring_buffer_saturates_at_16_bits():
    # 5 sources x w_int 20000 in one slot = 100000 > 0xFFFF: the cell holds 65535 (counted once).
    # input = 65535 << 1 = 131070 (3.99994); V = 131070 - ((31170 * 131070) >> 15) = 131070 - 124678 = 6392
    prog = _program(_neuron("IF_curr_delta", v_thresh=100.0), [20000] * 5, n_src=5)
    v, _, tr = _run(prog, [0], 2, n_src=5)
    assert v[1] == 6392
    assert tr.meta["saturations_total"] == 1
    # without saturation the same drive would give input 200000 -> V = 200000 - 190246 = 9754
    assert 200000 - ((31170 * 200000) >> 15) == 9754


def test_delay_slots():
    # delay 3: a spike sent in step 0 lands in ring slot 3 and first changes V in step 3 (799 as above).
    prog = _program(_neuron("IF_curr_delta"), [8192], delay=3)
    v, _, _ = _run(prog, [0], 5)
    assert list(v) == [0, 0, 0, 799, 761]


def test_inhibitory_input_goes_negative():
    # inhibitory receptor: input = exc - inh = -16384; alpha = -16384; V = -16384 - ((31170 * -16384) >> 15)
    # = -16384 - floor(-15585.0) = -16384 + 15585 = -799
    prog = _program(_neuron("IF_curr_delta"), [8192], receptor="inhibitory")
    v, _, _ = _run(prog, [0], 2)
    assert v[1] == -799


def test_vectorised_over_batch_matches_single_runs():
    prog = _program(_neuron("IF_curr_exp", v_thresh=0.2), [12000, 9000, 15000], n_src=3)
    rng = np.random.default_rng(3)
    x = (rng.random((40, 6, 3)) < 0.4).astype(np.float64)
    both = simulate(prog, {"input": x}).outputs["output"]
    for b in range(6):
        one = simulate(prog, {"input": x[:, b:b + 1]}).outputs["output"]
        np.testing.assert_array_equal(both[:, b:b + 1], one)
