"""The OPU emulator's physics and bookkeeping (spikeforge.emulators.opu)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from spikeforge.emulators.opu import (
    BLOCK,
    OPU,
    CameraConfig,
    LinearProjector,
    OPUConfig,
    OPUDevice,
    TransmissionMatrix,
)

FLOAT = CameraConfig(float_mode=True, flux=1.0, exposure_policy="fixed", exposure_us=1.0)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_speckle_is_exponential_with_mean_proportional_to_on_mirrors():
    macro, on = 3, 40
    dev = OPUDevice(OPUConfig(n_in=100, n_out=20000, seed=5, macro=macro, camera=FLOAT))
    x = torch.zeros(1, 100)
    x[0, :on] = 1
    intensity = dev.acquire(x)[0].double().numpy()
    expected_mean = on * macro  # |xR|^2 with CN(0, 1) per mirror
    assert abs(intensity.mean() / expected_mean - 1) < 0.03
    # fully developed speckle: exponential, so std == mean and a KS test against Exp(mean) passes
    assert abs(intensity.std() / intensity.mean() - 1) < 0.04
    assert stats.kstest(intensity / expected_mean, "expon").pvalue > 0.01
    # and it is not, e.g., a chi-square with 4 degrees of freedom (what a real Gaussian field pair would give)
    assert stats.kstest(intensity / expected_mean, stats.gamma(a=2, scale=0.5).cdf).pvalue < 1e-6


def test_anchor_scheme_is_exactly_linear_in_float_mode():
    proj = LinearProjector(12, 300, n_anchor=6, seed=2, macro=4, camera=FLOAT, dtype="float64")
    g = torch.Generator().manual_seed(0)
    e = torch.randint(-1, 2, (16, 12), generator=g).double()
    e[3] = 0  # an all-zero row: skipped, costs no frame
    y = proj.project(e)
    B = proj.effective_matrix()  # Re[conj(aR_a) R_x], computed independently from R
    assert torch.allclose(y, e @ B, rtol=1e-10, atol=1e-9)
    assert float(y[3].abs().max()) == 0.0
    assert proj.device.frames == 4 * 15
    # superposition across disjoint supports and through the bit-plane path
    a = (torch.arange(12) % 3 == 0).double()[None]
    b = (torch.arange(12) % 3 == 1).double()[None]
    assert torch.allclose(proj.project(a - b), proj.project(a) - proj.project(b), rtol=1e-10, atol=1e-9)
    ints = torch.randint(-7, 8, (5, 12), generator=g).double()
    ints[0, 0] = 7  # full scale, so the 4-bit quantiser is exact
    assert torch.allclose(proj.project(ints, bits=4), ints @ B, rtol=1e-9, atol=1e-8)


def test_eight_bit_projection_stays_close_to_float_and_camera_effects_matter():
    e = torch.zeros(64, 10)
    g = torch.Generator().manual_seed(1)
    e[torch.arange(64), torch.randint(0, 10, (64,), generator=g)] = -1
    e[torch.arange(64), torch.randint(0, 10, (64,), generator=g)] = 1
    exact = LinearProjector(10, 2000, n_anchor=5, seed=1, macro=75, camera=CameraConfig(float_mode=True)).project(e)
    cam8 = LinearProjector(10, 2000, n_anchor=5, seed=1, macro=75).project(e)
    dim = LinearProjector(10, 2000, n_anchor=5, seed=1, macro=1).project(e)  # too little light: read noise wins
    cos8 = torch.nn.functional.cosine_similarity(cam8, exact, dim=1).mean()
    cos_dim = torch.nn.functional.cosine_similarity(dim, exact, dim=1).mean()
    assert cos8 > 0.9
    assert cos_dim < 0.5
    assert not torch.equal(cam8, exact)


@pytest.mark.parametrize("mean_counts", [20.0, 60.0, 120.0])
def test_saturation_fraction_follows_exponential_tail(mean_counts):
    cam = CameraConfig(exposure_policy="fixed", exposure_us=100.0, flux=mean_counts / (100.0 * 50), dark_offset=2.0)
    dev = OPUDevice(OPUConfig(n_in=64, n_out=20000, seed=9, camera=cam))
    x = torch.zeros(4, 64)
    x[:, :50] = 1
    frames = dev.acquire(x)
    measured = float((frames >= 255).float().mean())
    theory = math.exp(-(254.5 - cam.dark_offset) / mean_counts)
    assert dev.counters()["saturated_fraction"] == pytest.approx(measured)
    if theory < 1e-4:
        assert measured < 5e-4
    else:
        assert measured == pytest.approx(theory, rel=0.25)


def test_saturation_grows_with_exposure_and_auto_exposure_hits_target():
    x = torch.zeros(8, 64)
    x[:, :32] = 1
    x[0, 32:48] = 1  # the brightest frame
    fracs = []
    for t in (50.0, 200.0, 800.0):
        dev = OPUDevice(OPUConfig(n_in=64, n_out=5000, seed=3,
                                  camera=CameraConfig(exposure_policy="fixed", exposure_us=t, flux=0.01)))
        dev.acquire(x)
        fracs.append(dev.counters()["saturated_fraction"])
    assert fracs[0] < fracs[1] < fracs[2]
    dev = OPUDevice(OPUConfig(n_in=64, n_out=5000, seed=3, camera=CameraConfig(flux=0.01, exposure_us=10000.0)))
    frames = dev.acquire(x)
    assert float(frames[0].mean()) - 2.0 == pytest.approx(18.0, rel=0.1)  # minus the dark offset
    assert dev.last_exposure_us == pytest.approx(18.0 / (0.01 * 48))


def test_seed_determinism_and_block_structure():
    cfg = OPUConfig(n_in=300, n_out=200, seed=11)
    x = (torch.rand(6, 300, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    a, b = OPUDevice(cfg).acquire(x), OPUDevice(cfg).acquire(x)
    assert torch.equal(a, b)
    c = OPUDevice(OPUConfig(n_in=300, n_out=200, seed=12)).acquire(x)
    assert not torch.equal(a, c)
    # R does not depend on its size (blocks are keyed by coordinates) nor on caching vs streaming
    small = TransmissionMatrix(100, 50, seed=4).real_matrix()
    big = TransmissionMatrix(BLOCK + 100, BLOCK + 60, seed=4)
    full = big.real_matrix()
    assert torch.equal(small[:, :50], full[:100, :50])
    assert torch.equal(small[:, 50:], full[:100, BLOCK + 60:BLOCK + 110])
    streamed = TransmissionMatrix(BLOCK + 100, BLOCK + 60, seed=4, cache_bytes=0)
    assert not streamed.cached
    xs = torch.zeros(3, BLOCK + 100)
    xs[:, -20:] = 1  # only the second row block is lit: the first is skipped
    re, im = streamed.field(xs)
    ref = xs @ full
    assert torch.allclose(re, ref[:, :BLOCK + 60], atol=1e-4)
    assert torch.allclose(im, ref[:, BLOCK + 60:], atol=1e-4)
    assert streamed.blocks_generated == 2  # one row block x two column blocks


def test_drift_decorrelates_frames_and_frame_offset_fault_breaks_linearity():
    x = torch.zeros(40, 64)
    x[:, :20] = 1
    still = OPUDevice(OPUConfig(n_in=64, n_out=3000, seed=1, camera=FLOAT)).acquire(x)
    assert torch.equal(still[0], still[-1])
    drift = OPUDevice(OPUConfig(n_in=64, n_out=3000, seed=1, camera=FLOAT, drift_per_frame=0.05)).acquire(x)
    c_near = np.corrcoef(drift[0].numpy(), drift[1].numpy())[0, 1]
    c_far = np.corrcoef(drift[0].numpy(), drift[-1].numpy())[0, 1]
    assert c_near > 0.99 and c_far < 0.7
    e = torch.randint(-1, 2, (8, 10), generator=torch.Generator().manual_seed(3)).float()
    e[:, 0] = 1
    ok = LinearProjector(10, 500, seed=1, camera=CameraConfig(float_mode=True))
    bad = LinearProjector(10, 500, seed=1, camera=CameraConfig(float_mode=True), frame_offset=1)
    y_ok, y_bad = ok.project(e), bad.project(e)
    assert torch.allclose(y_ok, e @ ok.effective_matrix(), rtol=1e-4, atol=1e-3)
    cos = torch.nn.functional.cosine_similarity(y_bad, y_ok, dim=1)
    assert float(cos.mean()) < 0.7


def test_counters_track_frames_exposure_and_bytes():
    dev = OPUDevice(OPUConfig(n_in=100, n_out=700, seed=0, macro=3,
                              camera=CameraConfig(exposure_policy="fixed", exposure_us=250.0)))
    x = torch.zeros(5, 100)
    x[:, :10] = 1
    dev.acquire(x)
    dev.acquire(x[:2])
    c = dev.counters()
    assert c["frames"] == 7
    assert c["exposure_s"] == pytest.approx(7 * 250e-6)
    assert c["bytes_out"] == 7 * 700
    assert c["bytes_in"] == 7 * math.ceil(300 / 8)
    with pytest.raises(ValueError, match="binary"):
        dev.acquire(torch.full((1, 100), 0.5))


def test_lightonml_compatible_surface():
    opu = OPU(n_components=400, max_n_features=50, seed=3, macro=20)
    with pytest.raises(RuntimeError, match="fit1d"):
        opu.transform(np.zeros((1, 50)))
    x = (np.random.default_rng(0).random((6, 50)) < 0.4).astype(np.uint8)
    opu.fit1d(x)
    y = opu.transform(x)
    assert isinstance(y, np.ndarray) and y.dtype == np.uint8 and y.shape == (6, 400)
    assert opu.transform(x[0]).shape == (400,)
    with pytest.raises(ValueError, match="binary"):
        opu.transform(-x)  # lightonml would silently cast -1 to 255
    lin = opu.linear_transform(x.astype(np.float32))
    assert lin.shape == (6, 400)
    f = OPU(n_components=400, max_n_features=50, seed=3, macro=20, camera=CameraConfig(float_mode=True))
    f.fit1d(n_features=50)
    exact = x.astype(np.float64) @ f.projector.effective_matrix().double().numpy()
    assert np.allclose(f.linear_transform(x.astype(np.float32)), exact, rtol=1e-3, atol=1e-2 * np.abs(exact).max())
    assert opu.counters()["frames"] > 0
