"""RRAM device physics: the non-idealities, each switchable, and the board lookup.

Conductances inside spikeforge are normalised to the board's `physics.g_max` (so a cell lies in
[0, 1]); a tile also stores `w_per_g`, the weight one unit of differential conductance stands for
(a digital gain applied after the ADC). Static effects (levels, programming noise, relaxation,
device variation, stuck cells) are drawn once per chip instance from a seeded generator; read noise
is drawn per read. Every effect is off when its field is 0 / None, so `NonIdeal.off()` is the ideal
crossbar that must reproduce the float reference simulator exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from spikeforge.errors import InputError

BOARD = "rram-40nm-512x512"


def load_board(name: str = BOARD) -> Any:
    """The board spec (default: the 40 nm 512 x 512 macro)."""
    from spikeforge.boards import get_board

    return get_board(name)


@dataclass(frozen=True)
class NonIdeal:
    """Which non-idealities are on, and how strong (0 / None = off)."""

    levels: int | None = None        # programmed conductance levels per cell (programmed mode)
    prog_noise: float = 0.0          # write-verify noise, std as a fraction of g_max at g = g_max
    read_noise: float = 0.0          # per-read multiplicative noise (relative std per cell)
    relax_time: float = 0.0          # seconds after programming (0 = read right away)
    relax_sigma: float = 0.0         # broadening, fraction of g_max per decade of time
    d2d: float = 0.0                 # device-to-device relative variation (fixed per cell)
    stuck_lrs: float = 0.0           # fraction of cells stuck at g_max
    stuck_hrs: float = 0.0           # fraction of cells stuck at the off conductance
    ir_drop: float = 0.0             # r_wire x g_max (dimensionless), first-order IR drop
    adc_bits: int | None = None      # column ADC resolution (None = ideal readout, no clipping)

    @classmethod
    def off(cls) -> NonIdeal:
        return cls()

    @classmethod
    def typical(cls, board: Any = None) -> NonIdeal:
        """Every non-ideality at the board's typical value."""
        b = board or load_board()
        return cls(
            levels=int(b.value("arithmetic.levels")),
            prog_noise=float(b.value("parameters.prog_noise")),
            read_noise=float(b.value("parameters.read_noise")),
            relax_time=float(b.value("parameters.relax_time")),
            relax_sigma=float(b.value("parameters.relax_sigma")),
            d2d=float(b.value("parameters.d2d")),
            stuck_lrs=float(b.value("parameters.stuck_lrs")),
            stuck_hrs=float(b.value("parameters.stuck_hrs")),
            ir_drop=float(b.value("physics.r_wire")) * float(b.value("physics.g_max")),
            adc_bits=int(b.value("arithmetic.adc_bits")),
        )

    @classmethod
    def parse(cls, spec: Any, board: Any = None) -> NonIdeal:
        """From None/'off', 'typical', a NonIdeal, or a dict (optionally {'base': 'typical', ...})."""
        if isinstance(spec, str) and spec.strip().startswith("{"):
            import json

            try:
                spec = json.loads(spec)
            except json.JSONDecodeError as exc:
                raise InputError(f"non-ideality spec is not valid JSON ({exc})", field="rram.nonideal") from None
        if spec is None or spec == "off":
            return cls.off()
        if isinstance(spec, NonIdeal):
            return spec
        if spec == "typical":
            return cls.typical(board)
        if isinstance(spec, dict):
            d = dict(spec)
            base = cls.typical(board) if d.pop("base", "off") == "typical" else cls.off()
            known = {f.name: f for f in fields(cls)}
            bad = sorted(set(d) - set(known))
            if bad:
                raise InputError(f"unknown non-ideality {bad}; known: {sorted(known)}", field="rram.nonideal")
            conv: dict[str, Any] = {}
            for k, v in d.items():
                if k in ("levels", "adc_bits"):
                    conv[k] = None if v in (None, "none", "off", 0) else int(v)
                else:
                    conv[k] = float(v)
                    if conv[k] < 0:
                        raise InputError(f"non-ideality {k}={v} must be >= 0", field="rram.nonideal")
            out = replace(base, **conv)
            if out.levels is not None and out.levels < 2:
                raise InputError(f"levels={out.levels}: need at least 2", field="rram.nonideal")
            if out.adc_bits is not None and out.adc_bits < 2:
                raise InputError(f"adc_bits={out.adc_bits}: need at least 2", field="rram.nonideal")
            return out
        raise InputError(f"cannot read non-ideality spec {spec!r}", field="rram.nonideal",
                         hint="use 'off', 'typical' or a dict such as {'read_noise': 0.02}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def static(self) -> bool:
        """True when any effect changes the stored conductances."""
        return bool(self.prog_noise or (self.relax_time and self.relax_sigma) or self.d2d
                    or self.stuck_lrs or self.stuck_hrs)


# ---------------------------------------------------------------------------------------------------
# Programming: quantised levels (lower) and the static perturbations (emulator, per chip instance)
# ---------------------------------------------------------------------------------------------------


def quantise(g: np.ndarray, levels: int | None, g_off: float) -> np.ndarray:
    """Round targets in [g_off, 1] to `levels` evenly spaced conductances (write-verify targets)."""
    if levels is None:
        return g
    step = (1.0 - g_off) / (levels - 1)
    return g_off + np.rint((g - g_off) / step) * step


def program(g_pos: np.ndarray, g_neg: np.ndarray, ni: NonIdeal, g_off: float,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The conductances a chip actually holds after programming, relaxation and faults.

    Order follows the device's life: device-to-device gain, write-verify noise (std grows with the
    target: prog_noise x (0.25 + 0.75 g)), relaxation (broadening of relax_sigma per decade after
    1 s), then stuck cells override everything.
    """
    out = []
    for g in (g_pos, g_neg):
        a = np.array(g, dtype=np.float64, copy=True)
        if ni.d2d:
            a *= 1.0 + ni.d2d * rng.standard_normal(a.shape)
        if ni.prog_noise:
            a += ni.prog_noise * (0.25 + 0.75 * np.clip(g, 0, 1)) * rng.standard_normal(a.shape)
        if ni.relax_time and ni.relax_sigma:
            decades = np.log10(1.0 + ni.relax_time)
            a += ni.relax_sigma * decades * rng.standard_normal(a.shape)
        if ni.d2d or ni.prog_noise or ni.relax_sigma:
            a = np.clip(a, 0.0, 1.0)
        if ni.stuck_lrs or ni.stuck_hrs:
            u = rng.random(a.shape)
            a = np.where(u < ni.stuck_lrs, 1.0, a)
            a = np.where((u >= ni.stuck_lrs) & (u < ni.stuck_lrs + ni.stuck_hrs), g_off, a)
        out.append(a)
    return out[0], out[1]


def form(shape: tuple[int, ...], v_form: np.ndarray | float, board: Any,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Zero-shot forming: a cell forms when the ramp reaches its breakdown voltage.

    Returns (formed mask, conductance in S). Breakdown ~ N(v_break_mean, v_break_std); a formed
    cell's conductance ~ N(g_formed_mean, g_formed_std) (clipped at the pristine level); the others
    stay pristine.
    """
    vb = board.value("physics.v_break_mean") + board.value("physics.v_break_std") * rng.standard_normal(shape)
    formed = vb <= np.broadcast_to(v_form, shape)
    g_pr = float(board.value("physics.g_pristine"))
    g = board.value("physics.g_formed_mean") + board.value("physics.g_formed_std") * rng.standard_normal(shape)
    g = np.where(formed, np.maximum(g, g_pr), g_pr)
    return formed, g


def forming_voltage(fraction: Any, board: Any) -> Any:
    """The ramp voltage that forms `fraction` of the cells (inverse of the breakdown CDF)."""
    from scipy.special import ndtri

    f = np.clip(np.asarray(fraction, np.float64), 1e-9, 1 - 1e-9)
    v = board.value("physics.v_break_mean") + board.value("physics.v_break_std") * ndtri(f)
    return float(v) if v.ndim == 0 else v


def adc(current: np.ndarray, full_scale: float, bits: int | None) -> np.ndarray:
    """Signed mid-tread column ADC: clip to +-full_scale, round to 2^(bits-1)-1 steps per side."""
    if bits is None:
        return current
    half = 2 ** (bits - 1) - 1
    lsb = full_scale / half
    return np.clip(np.rint(current / lsb), -half, half) * lsb


def ir_drop_factors(g_pos: np.ndarray, g_neg: np.ndarray, ir: float) -> tuple[np.ndarray, np.ndarray]:
    """First-order IR-drop terms for one tile (rows x pair columns), both static.

    Physical columns are interleaved (G+ at 2j, G- at 2j+1), the word-line driver sits at column 0
    and the bit-line sense amplifier below the last row. To first order in r_wire:
      word line: cell (i, c) sees V (1 - ir sum_{m<=c} sum_{k>=m} g_ik): a static attenuation;
      bit line:  the virtual ground at row i is lifted by ir sum_{m>=i} sum_{k<=m} x_k g_kc; we take
                 x_k as the step's mean row activity (mean field), so the loss is a x (g o D) with D
                 static and a the active-row fraction of the step.
    Returns (A, D) such that the effective differential matrix of a step is
      (g+ o A+ - g- o A-) - a (g+ o D+ - g- o D-), returned pre-combined as (eff, load).
    """
    rows, pairs = g_pos.shape
    phys = np.empty((rows, 2 * pairs))
    phys[:, 0::2] = g_pos
    phys[:, 1::2] = g_neg
    beyond = np.cumsum(phys[:, ::-1], axis=1)[:, ::-1]          # sum_{k>=m} g_ik
    word = np.clip(1.0 - ir * np.cumsum(beyond, axis=1), 0.0, None)
    above = np.cumsum(phys, axis=0)                              # sum_{k<=m} g_kc
    bit = ir * np.cumsum(above[::-1], axis=0)[::-1]              # sum_{m>=i} above_m
    eff = phys * word
    load = phys * bit
    return eff[:, 0::2] - eff[:, 1::2], load[:, 0::2] - load[:, 1::2]
