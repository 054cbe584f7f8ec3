"""Programmed-weight crossbar physics: which effects are on, the sourced device models, one tile read.

Conductances are normalised to the board's `physics.g_max` (a cell lies in [0, 1]). A tile stores
`ws`, the weight one unit of differential conductance stands for (a digital gain after the ADC).

Sourced models (constants in the board TOML, formulas here):
* write-verify residual error: Wan et al., Nature 608, 504 (2022), Extended Data Fig. 3, as fitted by
  IBM aihwkit's `ReRamWan2022NoiseModel` (4th-order polynomial in g/g_max, in uS at g_max = 40 uS,
  1 s after programming): sigma(x) = sum_i c_i x^i, so sigma / g_max = poly(x) / 40 on any g_max.
* drift (relaxation) vs time since programming: the same fits at 1 day and 2 days grow the spread by
  x1.89 (rms over g); a power law sigma(t) = sigma(1 s) (t / 1 s)^nu with nu = 0.057 reproduces the
  1-day fit (0.054 for 2 days). RRAM has no mean drift "in the usual sense" (aihwkit), so drift is
  the growth of this spread; extra spread sqrt(sigma(t)^2 - sigma(1 s)^2) is drawn independently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import device as D

#: Wan et al. 2022 write-verify residual, 1 s after programming (aihwkit fit; uS at g_max = 40 uS)
WAN_1S = (0.348, 16.030, -43.853, 45.393, -16.815)
WAN_G_MAX_US = 40.0


def prog_sigma(g: np.ndarray) -> np.ndarray:
    """Std of the write-verify residual (fraction of g_max) at normalised target conductance g."""
    x = np.clip(np.asarray(g, np.float64), 0.0, 1.0)
    s = np.zeros_like(x)
    for c in WAN_1S[::-1]:
        s = s * x + c
    return np.maximum(s, 0.0) / WAN_G_MAX_US


def drift_factor(t: float, nu: float) -> float:
    """sigma(t) / sigma(1 s): power-law growth of the spread after programming (1 before 1 s)."""
    return float(max(t, 1.0) ** nu)


@dataclass(frozen=True)
class Effects:
    """Which non-idealities of the programmed mode are on (0 / None = off)."""

    levels: int | None = None        # write-verify conductance levels per cell
    prog_noise: float = 0.0          # multiple of the published write-verify residual
    drift_time: float = 0.0          # seconds since programming (0 = off)
    drift_nu: float = 0.0            # power-law exponent of the spread's growth (board constant)
    read_noise: float = 0.0          # relative per-read std per cell
    ir_drop: float = 0.0             # r_wire x g_max
    adc_bits: int | None = None
    dac_bits: int | None = None

    @classmethod
    def from_options(cls, extra: dict[str, Any], board: Any) -> Effects:
        """Board defaults (rram.noise=default) or all off (rram.noise=off), then per-key overrides."""
        base = str(extra.get("rram.noise", "default"))
        if base == "off":
            d: dict[str, Any] = {"drift_nu": float(board.value("parameters.drift_nu"))}
        else:
            d = {
                "levels": int(board.value("arithmetic.levels")),
                "prog_noise": float(board.value("parameters.prog_noise_scale")),
                "drift_time": float(board.value("parameters.drift_time")),
                "drift_nu": float(board.value("parameters.drift_nu")),
                "read_noise": float(board.value("parameters.read_noise_programmed")),
                "ir_drop": float(board.value("physics.r_wire")) * float(board.value("physics.g_max")),
                "adc_bits": int(board.value("arithmetic.adc_bits")),
                "dac_bits": int(board.value("arithmetic.dac_bits")),
            }
        for key in ("levels", "adc_bits", "dac_bits"):
            v = extra.get(f"rram.{key}")
            if v is not None:
                d[key] = int(v) or None
        for key in ("prog_noise", "drift_time", "read_noise"):
            v = extra.get(f"rram.{key}")
            if v is not None:
                d[key] = float(v)
        if extra.get("rram.r_wire") is not None:
            d["ir_drop"] = float(extra["rram.r_wire"]) * float(board.value("physics.g_max"))
        if d.get("levels") is not None and d["levels"] < 2:
            d["levels"] = None
        return cls(**d)

    @classmethod
    def parse(cls, d: dict[str, Any] | Effects) -> Effects:
        return d if isinstance(d, Effects) else cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def static(self) -> bool:
        return bool(self.prog_noise)      # drift grows the write-verify spread, so it needs it on

    @property
    def ideal_read(self) -> bool:
        """No effect between the programmed targets and the digital sum: the read is an exact dot product."""
        return not (self.static or self.read_noise or self.ir_drop or self.adc_bits or self.dac_bits)


def program(g_pos: np.ndarray, g_neg: np.ndarray, fx: Effects,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conductances a chip holds `drift_time` after write-verify (targets + residual + relaxation), and the
    differential write error write-verify left (before relaxation), which a less significant pair can correct."""
    out, written = [], []
    grow = drift_factor(fx.drift_time, fx.drift_nu) if fx.drift_time > 1.0 else 1.0
    for g in (g_pos, g_neg):
        a = np.array(g, np.float64, copy=True)
        if fx.prog_noise:
            s = fx.prog_noise * prog_sigma(g)
            a += s * rng.standard_normal(a.shape)
            written.append(np.clip(a, 0.0, None) - g)
            if grow > 1.0:
                a += s * np.sqrt(grow * grow - 1.0) * rng.standard_normal(a.shape)
            a = np.clip(a, 0.0, None)
        else:
            written.append(np.zeros_like(a))
        out.append(a)
    return out[0], out[1], written[0] - written[1]


def targets(w: np.ndarray, g_off: float, levels: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Differential targets of a (rows, pairs) weight block: g+ - g- = w / ws, rounded to `levels`.

    ws is per column (a digital gain after each column's ADC): every column uses the whole conductance
    window, so the absolute write-verify error is smallest relative to its weights."""
    peak = np.abs(w).max(axis=0) if w.size else np.zeros(w.shape[1])
    if levels is not None and w.size:
        peak = mse_clip(w, peak, levels)
    ws = np.where(peak > 0, peak / (1.0 - g_off), 1.0)
    gp = g_off + np.clip(w, 0, peak) / ws
    gn = g_off + np.clip(-w, 0, peak) / ws
    return D.quantise(gp, levels, g_off), D.quantise(gn, levels, g_off), ws


def residual_window(fx: Effects, g_off: float) -> float:
    """Half-width of the less significant pair's window, in level steps of the first pair: 1/2 holds the
    rounding residual; with programming noise it also holds +-2 sigma of the first pair's write error, which
    write-verify of the second pair then corrects (see chip_tile)."""
    assert fx.levels is not None
    if not fx.prog_noise:
        return 0.5
    step = (1.0 - g_off) / (fx.levels - 1)
    sigma = np.sqrt(2.0) * fx.prog_noise * float(prog_sigma(np.linspace(g_off, 1.0, 101)).max())
    return 0.5 + 2.0 * sigma / step


def residual_targets(r: np.ndarray, ws: np.ndarray, g_off: float, levels: int,
                     window: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets of the less significant pair that holds the first pair's rounding residual `r`.

    Its window spans +-`window` level steps of the first pair (ws2 = window ws / (levels - 1)), so at 1/2 the
    pair of pairs resolves 2 (levels - 1)^2 steps per sign: bit slicing with a significance factor, as ISAAC
    (Shafiee et al., ISCA 2016) splits weights over cells and IBM's chips pair a most and a least significant
    conductance pair (Ambrogio et al., Nature 558, 60 (2018)); the periphery adds the scaled column sums."""
    ws2 = window * ws / (levels - 1)
    peak = ws2 * (1.0 - g_off)
    gp = g_off + np.clip(r, 0, peak) / ws2
    gn = g_off + np.clip(-r, 0, peak) / ws2
    return D.quantise(gp, levels, g_off), D.quantise(gn, levels, g_off), ws2


def mse_clip(w: np.ndarray, peak: np.ndarray, levels: int) -> np.ndarray:
    """Per column, the clip value in [0.3, 1] x peak that minimises the squared error of `levels`-level
    rounding plus clipping: a few outliers should not cost every other weight its resolution."""
    best, err = peak.copy(), np.full(peak.shape, np.inf)
    for f in np.linspace(0.3, 1.0, 15):
        c = np.where(peak > 0, f * peak, 1.0)
        step = c / (levels - 1)
        q = np.clip(np.rint(w / step), -(levels - 1), levels - 1) * step
        e = ((q - w) ** 2).sum(axis=0)
        better = e < err
        best, err = np.where(better, np.where(peak > 0, c, 0.0), best), np.where(better, e, err)
    return best


def dac(x: np.ndarray, lsb: float, top: float, signed: bool, bits: int | None) -> np.ndarray:
    """Input DAC: codes of `lsb` clipped to the range; exact for spikes (lsb 1) and spike counts."""
    if bits is None:
        return x
    half = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1
    step = max(lsb, top / half) if lsb > 0 else top / half
    lo = -half if signed else 0
    return np.clip(np.rint(x / step), lo, half) * step


@dataclass
class Tile:
    """One macro's share of a weight matrix, as this chip instance holds it."""

    r0: int
    r1: int
    c0: int
    c1: int
    ws: np.ndarray                  # (pairs,) weight per unit of differential conductance
    fs: float                       # ADC full scale (conductance units x input units)
    w: np.ndarray                   # (rows, pairs) effective weights at full row voltage
    load: np.ndarray | None         # IR-drop bit-line load (weight units) or None
    q: np.ndarray | None            # read-noise variance per unit input^2 (weight units^2) or None
    written: np.ndarray | None = None   # per row copy, the write error write-verify left (weight units), before relaxation
    copies: int = 1                 # row copies summed on each column (ws and fs are per summed column)


def read(tl: Tile, x: np.ndarray, fx: Effects, x_top: float, rng: np.random.Generator) -> np.ndarray:
    """One read of one tile for input vectors x (N, rows): the digitised partial sums (N, pairs)."""
    y = x @ tl.w
    if tl.load is not None:
        a = np.abs(x).sum(axis=1) / max(x_top, 1e-30) / (tl.r1 - tl.r0)
        y = y - a[:, None] * (x @ tl.load)
    if tl.q is not None:
        y = y + np.sqrt(np.maximum((x * x) @ tl.q, 0.0)) * rng.standard_normal(y.shape)
    if fx.adc_bits is not None:
        y = tl.ws * D.adc(y / tl.ws, tl.fs, fx.adc_bits)
    return y


def chip_tile(index: tuple[int, int, int, int], ws: np.ndarray, fs: float, w: np.ndarray, gp: np.ndarray,
              gn: np.ndarray, fx: Effects, rng: np.random.Generator, dtype: np.dtype, *,
              correct: list[np.ndarray] | None = None, g_off: float = 0.0, copies: tuple[int, int] = (1, 1)
              ) -> list[Tile]:
    """Draw one chip instance's static effects for a tile and pre-combine them for reads.

    `copies` = (row copies, column copies) of the tile's weights inside its macro (multi-device synapses,
    Boybat et al., Nat. Commun. 9, 2514 (2018)): the row copies sit on idle word lines of the same columns and
    are driven by the same inputs, so each column's current sums them in the analog domain (one conversion, the
    digital gain divides by the count); the column copies sit on idle bit lines and are converted apart. Every
    copy's cells are written and relax independently, so random error averages down by sqrt(copies); the IR
    drop is computed on the macro as laid out, copies included. Returns one Tile per column copy (their
    digitised reads are averaged, as replicas are).

    `correct` (weight units, one per copy) is the write error of the more significant pair of the same cells:
    write-verify of this pair targets its own value minus that error, since the first pair is written and read
    back first (IBM's multi-pair programming, Mackin et al., Nat. Commun. 13, 3765 (2022)). Relaxation comes
    after both writes, so it is not corrected."""
    kr, kc = copies
    w = w.astype(np.float64)
    rows, pairs = gp.shape
    target = gp - gn
    cells: list[list[tuple[np.ndarray, np.ndarray]]] = []      # [column copy][row copy] -> (g+, g-) as held
    written: list[np.ndarray] = []
    for c in range(kc):
        col = []
        for r in range(kr):
            cp, cn = gp, gn
            if fx.static:
                if correct is not None:
                    t = ws * target - correct[c * kr + r]
                    peak = ws * (1.0 - g_off)
                    cp = D.quantise(g_off + np.clip(t, 0, peak) / ws, fx.levels, g_off)
                    cn = D.quantise(g_off + np.clip(-t, 0, peak) / ws, fx.levels, g_off)
                cp, cn, err = program(cp, cn, fx, rng)
                written.append(ws * err)
            col.append((cp, cn))
        cells.append(col)
    eff = load = None
    if fx.ir_drop:                                               # the macro as laid out: row blocks x column blocks
        big_p = np.block([[cells[c][r][0] for c in range(kc)] for r in range(kr)])
        big_n = np.block([[cells[c][r][1] for c in range(kc)] for r in range(kr)])
        eff, load = D.ir_drop_factors(big_p, big_n, fx.ir_drop)
    out = []
    for c in range(kc):
        dw = np.zeros_like(w)
        ld = np.zeros_like(w) if eff is not None else None
        q = np.zeros_like(w) if fx.read_noise else None
        for r in range(kr):
            cp, cn = cells[c][r]
            blk = (slice(r * rows, (r + 1) * rows), slice(c * pairs, (c + 1) * pairs))
            held = (cp - cn) if eff is None else eff[blk]
            dw += held - target                                  # the ideal part stays exactly the target
            if ld is not None:
                ld += load[blk]
            if q is not None:
                q += cp * cp + cn * cn
        wc = w + ws * dw / kr
        out.append(Tile(*index, ws=ws / kr, fs=fs * kr, w=wc.astype(dtype),
                        load=None if ld is None else (ws * ld / kr).astype(dtype),
                        q=None if q is None else ((ws * fx.read_noise / kr) ** 2 * q).astype(dtype),
                        written=np.stack(written[c * kr:(c + 1) * kr]) if written else None, copies=kr))
    return out


def adc_full_scale(d: np.ndarray, activity: float, k: float) -> float:
    """Column ADC range for inputs active with probability `activity`: mean + k sigma of the largest column
    sum (1.0 for an empty or all-zero tile), shared by the reservoir and programmed lowerings."""
    a = min(max(activity, 1e-3), 1.0)
    mu = a * d.sum(axis=0)
    sd = np.sqrt(a * (1 - a) * (d * d).sum(axis=0))
    fs = float(np.max(np.abs(mu) + k * sd)) if d.size else 0.0
    return fs if fs > 0 else 1.0
