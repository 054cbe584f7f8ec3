"""Physical emulator of an optical processing unit (OPU): DMD -> scattering medium -> camera.

Model (Launay et al. 2020, arXiv 2012.06373; LightOn docs "What is an OPU?"):

* Input: a binary pattern on a micromirror array (DMD). A feature can be replicated over `macro`
  mirrors (a macro-pixel). Replicated mirrors see independent CN(0, s^2) coefficients, so a
  macro-pixel of m mirrors acts as one coefficient of variance m s^2; the emulator draws that
  coefficient directly (same distribution, m times fewer numbers).
* Medium: a fixed complex Gaussian transmission matrix R (n_in x n_out, i.i.d. CN(0, s^2)), stored
  as a real [Re | Im] matrix. It is generated block by block: block (i, j) is filled by a generator
  keyed by splitmix64(seed, stream, i, j), so any block can be regenerated on its own, in any order,
  and R is never materialised when it is larger than `cache_bytes` (counter-based at block level).
* Camera: intensity |xR|^2 (fully developed speckle: exponential for fixed x), scaled by
  flux x exposure, Poisson shot noise, Gaussian read noise, dark offset, sensitivity floor,
  rounding and saturation at 2^bits - 1. `float_mode=True` removes every camera effect.
* Drift: R(t) = cos(phi t) R0 + sin(phi t) R1 with t the frame index (keeps R's distribution).
* Fault injection: `frame_offset=k` makes the camera deliver, for request n, the frame of request
  n - k (a frame-synchronisation slip), which breaks the differential linear scheme.
* Linear projections (the "anchor" scheme): a fixed reference pattern a on mirrors disjoint from x
  gives I(x+a) - I(x) - I(a) = 2 Re[conj(aR) * xR], exactly linear in x. A ternary vector
  e = e+ - e- costs 4 frames and I(a) cancels; p-bit signed inputs use two's-complement bit planes
  (2p frames per vector plus 2 calibration frames per call: I(a) and a dark frame). All-zero rows
  cost no frame.

Counters: frames, exposure time and bytes over the host link (DMD patterns in, camera frames out).
`OPU` offers lightonml's surface (`fit1d`, `transform`, `linear_transform`) on top of this model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from spikeforge.interfaces import Emulator, Trace

#: rows (features) and complex columns per generated block of R; part of the RNG scheme (changing it changes R)
BLOCK = 1024
_MASK64 = (1 << 64) - 1

#: DMD of the LightOn Aurora/Appliance OPU (1140 x 912 micromirrors)
DMD_MIRRORS = 1140 * 912


def splitmix64(x: int) -> int:
    """One splitmix64 step (Steele, Lea & Flood 2014): a bijective 64-bit mixer used to derive block keys."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def block_key(seed: int, stream: int, bi: int, bj: int) -> int:
    """Key of block (bi, bj) of stream `stream`: a pure function of its coordinates (no generator state)."""
    k = splitmix64(int(seed) & _MASK64)
    for v in (stream, bi, bj):
        k = splitmix64(k ^ (int(v) & _MASK64))
    return k & ((1 << 63) - 1)


class TransmissionMatrix:
    """R (n_in x n_out complex, i.i.d. CN(0, variance)), kept as real [Re | Im] blocks made on demand."""

    def __init__(self, n_in: int, n_out: int, seed: int = 0, *, stream: int = 0, variance: float = 1.0,
                 cache_bytes: int = 256 << 20, dtype: torch.dtype = torch.float32, device: str = "cpu") -> None:
        if n_in < 1 or n_out < 1:
            raise ValueError(f"transmission matrix needs n_in, n_out >= 1 (got {n_in} x {n_out})")
        self.n_in, self.n_out, self.seed, self.stream = int(n_in), int(n_out), int(seed), int(stream)
        self.std = math.sqrt(variance / 2.0)  # per real component
        self.dtype, self.device = dtype, torch.device(device)
        self.nbi, self.nbj = -(-self.n_in // BLOCK), -(-self.n_out // BLOCK)
        self._dense: torch.Tensor | None = None
        elem = torch.tensor([], dtype=dtype).element_size()
        self.cached = self.n_in * self.n_out * 2 * elem <= cache_bytes
        self.blocks_generated = 0

    def block(self, bi: int, bj: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(Re, Im) of block (bi, bj), cropped to the matrix edge. Same values whatever the matrix size."""
        g = torch.Generator(device="cpu").manual_seed(block_key(self.seed, self.stream, bi, bj))
        blk = torch.randn((BLOCK, 2 * BLOCK), generator=g, dtype=torch.float32)
        self.blocks_generated += 1
        r = min(BLOCK, self.n_in - bi * BLOCK)
        c = min(BLOCK, self.n_out - bj * BLOCK)
        blk = blk.to(self.dtype).mul_(self.std)
        return blk[:r, :c].to(self.device), blk[:r, BLOCK:BLOCK + c].to(self.device)

    def real_matrix(self) -> torch.Tensor:
        """The whole R as one real (n_in, 2 n_out) [Re | Im] tensor (cached when it fits `cache_bytes`)."""
        if self._dense is not None:
            return self._dense
        out = torch.empty((self.n_in, 2 * self.n_out), dtype=self.dtype, device=self.device)
        for bi in range(self.nbi):
            for bj in range(self.nbj):
                re, im = self.block(bi, bj)
                r0, c0 = bi * BLOCK, bj * BLOCK
                out[r0:r0 + re.shape[0], c0:c0 + re.shape[1]] = re
                out[r0:r0 + re.shape[0], self.n_out + c0:self.n_out + c0 + re.shape[1]] = im
        if self.cached:
            self._dense = out
        return out

    def complex_matrix(self) -> torch.Tensor:
        """R as a complex tensor (tests and small dimensions only)."""
        m = self.real_matrix()
        return torch.complex(m[:, : self.n_out], m[:, self.n_out:])

    def field(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Re, Im) of xR for x (F, n_in); streams blocks when R is not cached, skipping all-zero row blocks."""
        x = x.to(self.dtype)
        if self.cached:
            y = x @ self.real_matrix()
            return y[:, : self.n_out], y[:, self.n_out:]
        re = torch.zeros((x.shape[0], self.n_out), dtype=self.dtype, device=self.device)
        im = torch.zeros_like(re)
        for bi in range(self.nbi):
            xs = x[:, bi * BLOCK:(bi + 1) * BLOCK]
            if not bool(xs.any()):
                continue
            for bj in range(self.nbj):
                r_re, r_im = self.block(bi, bj)
                c0 = bj * BLOCK
                re[:, c0:c0 + r_re.shape[1]] += xs @ r_re
                im[:, c0:c0 + r_im.shape[1]] += xs @ r_im
        return re, im


@dataclass
class CameraConfig:
    """Camera and exposure. Counts = round(flux x exposure x |xR|^2 (+ noise) + dark), clipped to 2^bits - 1."""

    bits: int = 8
    float_mode: bool = False            # no noise, no rounding, no saturation, no dark offset
    flux: float = 1.0e-4                # mean counts per microsecond per ON mirror (|xR|^2 unit)
    exposure_policy: str = "auto"       # auto: brightest frame's mean at target_mean; fixed: exposure_us
    target_mean: float = 18.0           # counts, mean of the brightest frame (auto policy)
    exposure_us: float = 400.0          # fixed policy, and the upper bound of auto
    exposure_min_us: float = 1.0
    electrons_per_count: float = 40.0   # shot noise: Poisson on electrons
    shot_noise: bool = True
    read_noise: float = 1.0             # counts rms
    dark_offset: float = 2.0            # counts
    sensitivity_floor: float = 0.0      # counts of signal below which a pixel reads dark

    @property
    def max_count(self) -> int:
        return (1 << self.bits) - 1

    @property
    def bytes_per_pixel(self) -> int:
        return 4 if self.float_mode else max(1, -(-self.bits // 8))


@dataclass
class OPUConfig:
    """Everything that defines one emulated device."""

    n_in: int
    n_out: int
    seed: int = 0
    macro: int = 1                      # mirrors per feature
    camera: CameraConfig = field(default_factory=CameraConfig)
    drift_per_frame: float = 0.0        # rad per frame of the R0 -> R1 rotation
    frame_offset: int = 0               # fault: deliver the frame of request n - frame_offset
    noise_seed: int | None = None       # defaults to seed + 1
    cache_bytes: int = 256 << 20
    dtype: str = "float32"
    device: str = "cpu"
    dmd_mirrors: int = DMD_MIRRORS


class OPUDevice:
    """The emulated device: binary patterns in, camera frames out, with counters."""

    def __init__(self, config: OPUConfig) -> None:
        c = config
        if c.macro < 1:
            raise ValueError(f"macro-pixel factor must be >= 1 (got {c.macro})")
        if c.n_in * c.macro > c.dmd_mirrors:
            raise ValueError(
                f"{c.n_in} features x macro {c.macro} = {c.n_in * c.macro} mirrors exceed the DMD's {c.dmd_mirrors}")
        if c.camera.exposure_policy not in ("auto", "fixed"):
            raise ValueError(f"exposure_policy must be 'auto' or 'fixed' (got {c.camera.exposure_policy!r})")
        self.config = c
        self.dtype = getattr(torch, c.dtype)
        kw: dict[str, Any] = dict(variance=float(c.macro), cache_bytes=c.cache_bytes, dtype=self.dtype, device=c.device)
        self.R0 = TransmissionMatrix(c.n_in, c.n_out, c.seed, stream=0, **kw)
        self.R1 = TransmissionMatrix(c.n_in, c.n_out, c.seed, stream=1, **kw) if c.drift_per_frame else None
        self.noise = torch.Generator(device="cpu").manual_seed(
            int(c.seed + 1 if c.noise_seed is None else c.noise_seed) & ((1 << 63) - 1))
        self._pending: torch.Tensor | None = None  # frames held back by the frame-offset fault
        self.reset_counters()

    # ---- counters ------------------------------------------------------------------------------
    def reset_counters(self) -> None:
        self.frames = 0
        self.exposure_s = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.saturated = 0
        self.pixels_read = 0
        self.last_exposure_us = float(self.config.camera.exposure_us)

    def counters(self) -> dict[str, float]:
        return {
            "frames": float(self.frames),
            "exposure_s": float(self.exposure_s),
            "bytes_in": float(self.bytes_in),
            "bytes_out": float(self.bytes_out),
            "saturated_fraction": self.saturated / max(1, self.pixels_read),
        }

    # ---- physics -------------------------------------------------------------------------------
    def intensity(self, patterns: torch.Tensor) -> torch.Tensor:
        """|xR(t)|^2 for binary patterns (F, n_in), frame index t advancing per row (drift)."""
        re, im = self.R0.field(patterns)
        if self.R1 is not None:
            t = torch.arange(self.frames, self.frames + patterns.shape[0], dtype=self.dtype, device=re.device)
            phi = (t * self.config.drift_per_frame)[:, None]
            re1, im1 = self.R1.field(patterns)
            re = torch.cos(phi) * re + torch.sin(phi) * re1
            im = torch.cos(phi) * im + torch.sin(phi) * im1
        return re * re + im * im

    def choose_exposure(self, patterns: torch.Tensor) -> float:
        """Exposure (us) for one acquisition: the brightest frame's mean near target_mean (auto policy)."""
        cam = self.config.camera
        if cam.exposure_policy == "fixed":
            return float(cam.exposure_us)
        k_max = float(patterns.sum(dim=1).max()) * self.config.macro if patterns.numel() else 0.0
        if k_max <= 0:
            return float(cam.exposure_us)
        t = cam.target_mean / (cam.flux * k_max)
        return float(min(max(t, cam.exposure_min_us), cam.exposure_us))

    def acquire(self, patterns: torch.Tensor, exposure_us: float | None = None, *,
                intensity: torch.Tensor | None = None) -> torch.Tensor:
        """Display each row of `patterns` (F, n_in) on the DMD and return the F camera frames (counts).

        `intensity`: |xR|^2 of these patterns when the caller already has it (see LinearProjector)."""
        c, cam = self.config, self.config.camera
        p = torch.as_tensor(patterns)
        if p.ndim != 2 or p.shape[1] != c.n_in:
            raise ValueError(f"patterns must be (frames, {c.n_in}); got {tuple(p.shape)}")
        if p.dtype != torch.bool:
            if not bool(((p == 0) | (p == 1)).all()):
                raise ValueError("DMD patterns must be binary (0/1); encode other values with bit planes")
            p = p != 0
        pf = p.to(self.dtype).to(c.device)
        t_exp = float(exposure_us) if exposure_us is not None else self.choose_exposure(pf)
        signal = (self.intensity(pf) if intensity is None else intensity) * (cam.flux * t_exp)
        if cam.float_mode:
            frames = signal
        else:
            if cam.sensitivity_floor > 0:
                signal = torch.where(signal < cam.sensitivity_floor, torch.zeros_like(signal), signal)
            if cam.shot_noise:
                lam = (signal * cam.electrons_per_count).cpu()
                signal = (torch.poisson(lam, generator=self.noise) / cam.electrons_per_count).to(signal)
            if cam.read_noise > 0:
                noise = torch.randn(signal.shape, generator=self.noise, dtype=signal.dtype) * cam.read_noise
                signal = signal + noise.to(signal)
            frames = torch.round(signal + cam.dark_offset).clamp_(0, cam.max_count)
            self.saturated += int((frames >= cam.max_count).sum())
        self.pixels_read += frames.numel()
        n = frames.shape[0]
        if c.frame_offset:
            frames = self._slip(frames)
        self.frames += n
        self.exposure_s += n * t_exp * 1e-6
        self.bytes_in += n * (-(-c.n_in * c.macro // 8))
        self.bytes_out += n * c.n_out * cam.bytes_per_pixel
        self.last_exposure_us = t_exp
        return frames

    def _slip(self, frames: torch.Tensor) -> torch.Tensor:
        """Frame-offset fault: the stream of delivered frames lags the requests by `frame_offset`."""
        k = self.config.frame_offset
        dark = 0.0 if self.config.camera.float_mode else float(self.config.camera.dark_offset)
        if self._pending is None:
            self._pending = torch.full((k, frames.shape[1]), dark, dtype=frames.dtype, device=frames.device)
        stream = torch.cat([self._pending, frames])
        self._pending = stream[-k:].clone()
        return stream[: frames.shape[0]]

    def gain(self) -> float:
        """Counts per unit |xR|^2 at the last exposure (what the host divides by to return field units)."""
        return self.config.camera.flux * self.last_exposure_us


def _to_tensor(x: Any) -> tuple[torch.Tensor, str]:
    if isinstance(x, torch.Tensor):
        return x, "torch"
    return torch.as_tensor(np.asarray(x)), "numpy"


def _back(y: torch.Tensor, kind: str) -> Any:
    return y if kind == "torch" else y.cpu().numpy()


class LinearProjector:
    """Linear random projections y = x B through intensity frames, with a fixed anchor pattern.

    DMD layout: [n features | n_anchor anchor features], each feature `macro` mirrors. The effective
    matrix is B = Re[conj(z) R_x] with z = a R_a, so y is exactly linear in x in float mode.
    """

    def __init__(self, n_features: int, n_out: int, *, n_anchor: int | None = None, seed: int = 0,
                 macro: int = 1, camera: CameraConfig | None = None, **device_kw: Any) -> None:
        self.n_features = int(n_features)
        self.n_anchor = int(n_anchor if n_anchor is not None else max(1, n_features // 2))
        self.device = OPUDevice(OPUConfig(n_in=self.n_features + self.n_anchor, n_out=int(n_out), seed=seed,
                                          macro=int(macro), camera=camera or CameraConfig(), **device_kw))
        self.skipped_rows = 0

    @property
    def n_out(self) -> int:
        return self.device.config.n_out

    def effective_matrix(self) -> torch.Tensor:
        """B (n_features, n_out) = Re[conj(aR_a) R_x]: what the float-mode projection computes (small dims)."""
        R = self.device.R0.complex_matrix()
        z = R[self.n_features:].sum(dim=0)
        return (torch.conj(z)[None, :] * R[: self.n_features]).real

    def _patterns(self, planes: torch.Tensor, with_anchor: bool) -> torch.Tensor:
        a = torch.full((planes.shape[0], self.n_anchor), bool(with_anchor), dtype=torch.bool)
        return torch.cat([planes.bool(), a], dim=1)

    def _acquire_pairs(self, groups: list[tuple[torch.Tensor, bool]]) -> torch.Tensor:
        """Frames of [plane | anchor on/off] for each (plane, anchor) group, in order.

        Without drift the field is computed once per plane and once for the anchor (the field is linear in
        the pattern, so field(x + a) = field(x) + field(a)); the camera then sees the same intensities as
        for the full patterns. With drift every frame has its own R, so full patterns are displayed."""
        pats = torch.cat([self._patterns(p, a) for p, a in groups])
        dev = self.device
        if dev.R1 is not None:
            return dev.acquire(pats)
        uniq: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for p, _ in groups:
            if id(p) not in uniq:
                uniq[id(p)] = dev.R0.field(self._patterns(p, False).to(dev.dtype).to(dev.config.device))
        z_re, z_im = dev.R0.field(self._patterns(torch.zeros((1, self.n_features), dtype=torch.bool), True)
                                  .to(dev.dtype).to(dev.config.device))
        parts = []
        for p, a in groups:
            re, im = uniq[id(p)]
            if a:
                re, im = re + z_re, im + z_im
            parts.append(re * re + im * im)
        return dev.acquire(pats, intensity=torch.cat(parts))

    def project(self, x: Any, bits: int | None = None) -> Any:
        """x (B, n_features) -> (B, n_out). Ternary {-1,0,1}: 4 frames/row; binary: 2; else p-bit two's complement."""
        xt, kind = _to_tensor(x)
        xt = xt.to(torch.float64)
        if xt.ndim != 2 or xt.shape[1] != self.n_features:
            raise ValueError(f"input must be (batch, {self.n_features}); got {tuple(xt.shape)}")
        out = torch.zeros((xt.shape[0], self.n_out), dtype=self.device.dtype)
        live = xt.abs().sum(dim=1) > 0
        self.skipped_rows += int((~live).sum())
        if not bool(live.any()):
            return _back(out, kind)
        xl = xt[live]
        values = torch.unique(xl)
        if bool(((values == -1) | (values == 0) | (values == 1)).all()) and bits is None:
            pos, neg = (xl > 0), (xl < 0)
            fr = self._acquire_pairs([(pos, True), (pos, False), (neg, True), (neg, False)])
            f1, f2, f3, f4 = fr.chunk(4)
            y = ((f1 - f2) - (f3 - f4)) / (2.0 * self.device.gain())
        else:
            p = int(bits or 8)
            if bool((xl >= 0).all()) and bool(((values == 0) | (values == 1)).all()):
                planes, weights, scale = [xl > 0], [1.0], 1.0
            else:
                if p < 2:
                    raise ValueError("signed multi-valued inputs need bits >= 2")
                scale = float(xl.abs().max()) / (2 ** (p - 1) - 1)
                q = torch.round(xl / scale).to(torch.int64) & ((1 << p) - 1)  # two's complement code
                planes = [((q >> b) & 1).bool() for b in range(p)]
                weights = [float(2 ** b) for b in range(p - 1)] + [-float(2 ** (p - 1))]
            n = xl.shape[0]
            calib = torch.zeros((1, self.n_features), dtype=torch.bool)
            groups = [(calib, True), (calib, False)]
            for pl in planes:
                groups += [(pl, True), (pl, False)]
            fr = self._acquire_pairs(groups)
            i_a, dark = fr[0], fr[1]
            y = torch.zeros((n, self.n_out), dtype=fr.dtype)
            for k, w in enumerate(weights):
                with_a = fr[2 + 2 * k * n: 2 + (2 * k + 1) * n]
                without = fr[2 + (2 * k + 1) * n: 2 + (2 * k + 2) * n]
                y += w * (with_a - without - i_a + dark)
            y = y * (scale / (2.0 * self.device.gain()))
        out[live] = y.to(out.dtype).cpu()
        return _back(out, kind)


class OPU:
    """lightonml-compatible surface over the emulator: `fit1d`, `transform`, `linear_transform`.

    Differences from lightonml's SimulatedOpuDevice, on purpose: inputs that are not binary are
    refused by `transform` (lightonml casts -1 to 255), camera effects are modelled, and
    `linear_transform` returns Re[conj(aR) xR] (field units), not lightonml's scaling.
    """

    def __init__(self, n_components: int = 1000, opu_device: Any = None, max_n_features: int = 1000, *,
                 seed: int = 0, macro: int = 1, camera: CameraConfig | None = None, n_anchor: int | None = None,
                 **device_kw: Any) -> None:
        self.n_components = int(n_components)
        self.max_n_features = int(max_n_features)
        self.seed, self.macro, self.camera, self.n_anchor = seed, macro, camera or CameraConfig(), n_anchor
        self.device_kw = device_kw
        self.device: OPUDevice | None = None
        self.projector: LinearProjector | None = None
        self.n_features: int | None = None

    # lightonml API ----------------------------------------------------------------------------
    def open(self) -> None:  # pragma: no cover - API compatibility, nothing to open
        return None

    def close(self) -> None:  # pragma: no cover
        return None

    def __enter__(self) -> OPU:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def fit1d(self, X: Any = None, n_features: int | None = None, packed: bool = False,
              online: bool = False, **_: Any) -> None:
        """Set the input size from X (batch, n) or n_features, and prepare the device."""
        if X is not None:
            n_features = int(np.asarray(X).shape[-1]) if not isinstance(X, torch.Tensor) else int(X.shape[-1])
        if not n_features:
            raise ValueError("fit1d needs X or n_features")
        if n_features > self.max_n_features:
            raise ValueError(f"n_features={n_features} exceeds max_n_features={self.max_n_features}")
        self.n_features = int(n_features)
        cam = self.camera
        self.device = OPUDevice(OPUConfig(n_in=self.n_features, n_out=self.n_components, seed=self.seed,
                                          macro=self.macro, camera=cam, **self.device_kw))
        self.projector = LinearProjector(self.n_features, self.n_components, n_anchor=self.n_anchor,
                                         seed=self.seed + 7919, macro=self.macro, camera=cam, **self.device_kw)

    def _need_fit(self) -> None:
        if self.device is None:
            raise RuntimeError("call fit1d before transform")

    def transform(self, X: Any) -> Any:
        """Nonlinear random features |xR|^2 as camera counts (binary X, shape (batch, n) or (n,))."""
        self._need_fit()
        xt, kind = _to_tensor(X)
        one = xt.ndim == 1
        xt = xt.reshape(1, -1) if one else xt
        if not bool(((xt == 0) | (xt == 1)).all()):
            raise ValueError("OPU.transform takes binary input (0/1); encode other data first")
        assert self.device is not None
        y = self.device.acquire(xt)
        y = y if self.camera.float_mode else y.to(torch.uint8)
        return _back(y[0] if one else y, kind)

    def linear_transform(self, X: Any, bits: int | None = None) -> Any:
        """Linear random projection via the anchor scheme (see LinearProjector.project)."""
        self._need_fit()
        assert self.projector is not None
        xt, kind = _to_tensor(X)
        one = xt.ndim == 1
        y = self.projector.project(xt.reshape(1, -1) if one else xt, bits=bits)
        return _back(y[0] if one else y, kind)

    def counters(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for dev in (self.device, self.projector.device if self.projector else None):
            if dev is not None:
                for k, v in dev.counters().items():
                    out[k] = out.get(k, 0.0) + v if k != "saturated_fraction" else max(out.get(k, 0.0), v)
        return out


def with_camera(camera: CameraConfig, **changes: Any) -> CameraConfig:
    """A copy of a camera config with some fields changed."""
    return replace(camera, **changes)


class PhotonicEmulator(Emulator):
    """`Emulator` of the lighton-opu board.

    Inference stays digital on the host, so outputs come from the float reference simulator on the
    artifact's graph (bit-identical to what verify compares against). The OPU part is the DFA backward
    projection: `run` also reports what one training step on this batch costs on the OPU (frames,
    exposure, bytes), counting every error vector as non-zero (an upper bound; all-zero ones are skipped).
    """

    def run(self, artifact: Any, inputs: dict[str, np.ndarray], *, probes: bool = False) -> Trace:
        from spikeforge.refsim import ReferenceSimulator, config_for_graph

        g = artifact.reference
        res = ReferenceSimulator(g, config_for_graph(g, artifact.meta.get("dt"))).run(inputs, probes=probes)
        T = int(next(iter(res.outputs.values())).shape[0])
        B = int(next(iter(res.outputs.values())).shape[1])
        program = artifact.meta["program"]
        proj = program["projection"]
        frames = np.zeros(T)
        # one projection per sample serves all time steps: the step's frames are charged at the last step
        if proj["n_out"] > 0:  # only DFA-trained layers use the OPU (bp/frozen/conv layers are host-side)
            frames[-1] = program["frames_per_vector"] * B + program["frames_per_step_overhead"]
        exposure = np.zeros(T)
        exposure[-1] = frames[-1] * float(program["exposure"]["calibrated"].get(
            "exposure_us", program["exposure"]["dimmest_frame_us"])) * 1e-6
        bytes_out = frames * proj["n_out"]
        bytes_in = frames * math.ceil(proj["mirrors"] / 8)
        return Trace(
            outputs=res.outputs,
            counts={"synops": res.synops, "spikes": res.spikes, "neuron_updates": res.neuron_updates,
                    "opu_frames": frames, "opu_exposure_s": exposure, "host_bytes_out": bytes_out,
                    "host_bytes_in": bytes_in},
            states=res.states,
            layer_counts={n: {"synops": res.layer_synops[n], "spikes": res.layer_spikes[n]} for n in res.layer_synops},
            meta={"batch": B, "note": "outputs: digital forward pass; counts: OPU cost of one DFA step on this batch"},
        )
