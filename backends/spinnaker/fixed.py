"""S16.15 / U0.32 fixed-point arithmetic as the shipped sPyNNaker 7.x ARM binaries compute it.

Everything here works on raw integers (numpy int64 or Python int) so that the emulator is bit-exact.
Written from the behaviour documented in spinn_common (`stdfix-exp.c`, `utils.h`) and sPyNNaker
(`common/maths-util.h`, `neuron/decay.h`, `neuron/models/neuron_model_lif_impl.h`); no code copied.

* ``accum`` (s16.15): int32 raw, value = raw / 2**15, range [-65536, 65536).
* ``unsigned long fract`` (u0.32): uint32 raw, value = raw / 2**32.
* accum x accum on the ARM-mode binaries: 64-bit product, bits [46:15] kept: floor (arithmetic shift),
  wraps to int32, no saturation.
* Decays are computed *on the core at load time* (sPyNNaker 7.x): ``exp_TC = expk(-kdivk(dt, tau_m))``,
  ``decay = expulr(-kdivk(dt, tau_syn))``, ``init = decay_s1615_to_u032(kdivk(tau_syn, dt), ONE - decay)``.
"""

from __future__ import annotations

import numpy as np

ONE = 1 << 15                  # accum 1.0
ACCUM_MIN = -(1 << 31)
ACCUM_MAX = (1 << 31) - 1
U32 = (1 << 32) - 1
ULR_ONE = U32                  # `1.0ulr` is not representable; GCC saturates it to the largest u0.32

# spinn_common's tables for exp: e**n * 2**32 for n = -13..12, e**-(k/16) expm1 steps and a 3-term
# series for the remaining 11 fraction bits. These are data (the published constants of the method).
_EXP_HI = (
    9708, 26389, 71733, 194991, 530041, 1440801, 3916503, 10646160, 28939262, 78665070, 213833830,
    581260615, 1580030169, 4294967296, 11674931555, 31735754293, 86266724208, 234497268814,
    637429664642, 1732713474316, 4710003551159, 12803117065094, 34802480465680, 94602950235157,
    257157480542844, 699026506411923,
)
_EXPM1_MID = (
    0, 260218914, 504671961, 734314346, 950043403, 1152702096, 1343082321, 1521927990,
    1689937949, 1847768698, 1996036966, 2135322113, 2266168400, 2389087112, 2504558555, 2613033936,
)
_SERIES = (5294, 4293434720, 2081624032)
_M64 = (1 << 64) - 1


# ---- conversions ------------------------------------------------------------------------------------
def to_accum(x: float) -> int:
    """Host-side float -> s16.15 raw as sPyNNaker's Python writes it: round half to even, range checked."""
    v = float(x)
    if not (-65536.0 <= v < 65536.0):
        raise ValueError(f"{v} is outside the s16.15 range [-65536, 65536)")
    return int(np.rint(v * ONE))


def to_accum_array(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.size and (a.min() < -65536.0 or a.max() >= 65536.0):
        raise ValueError(f"values outside the s16.15 range [-65536, 65536): min {a.min()}, max {a.max()}")
    return np.rint(a * ONE).astype(np.int64)


def from_accum(raw: int | np.ndarray) -> float | np.ndarray:
    return np.asarray(raw, dtype=np.float64) / ONE if isinstance(raw, np.ndarray) else raw / ONE


def wrap32(x: np.ndarray | int) -> np.ndarray | int:
    """Two's-complement wrap to int32 (what the ARM register holds)."""
    if isinstance(x, np.ndarray):
        return ((x + (1 << 31)) & U32) - (1 << 31)
    return ((int(x) + (1 << 31)) & U32) - (1 << 31)


# ---- arithmetic as the core does it -----------------------------------------------------------------
def mul_kk(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray | int:
    """accum * accum: 64-bit product, arithmetic shift right 15 (floor), wrap to int32.

    Operands are int32 raws, so the product fits in int64 (|a*b| < 2**62).
    """
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        p = np.asarray(a, dtype=np.int64) * np.asarray(b, dtype=np.int64)
        return wrap32(p >> 15)
    return wrap32((int(a) * int(b)) >> 15)


def decay_s1615(x: np.ndarray | int, decay: int) -> np.ndarray | int:
    """decay.h decay_s1615: (int64 x * uint32 d) >> 32, arithmetic (floor)."""
    if isinstance(x, np.ndarray):
        return (x.astype(np.int64) * np.int64(decay)) >> 32  # |x| < 2**31, d < 2**32: fits in int64
    return (int(x) * int(decay)) >> 32


def decay_s1615_to_u032(x: int, decay: int) -> int:
    """decay.h decay_s1615_to_u032: (uint64 x * uint64 d) >> 15, truncated to 32 bits."""
    return (((int(x) & _M64) * int(decay)) & _M64) >> 15 & U32


def udiv64(num: int, den: int) -> int:
    if den == 0:
        raise ZeroDivisionError("udiv64 by zero (the core would crash)")
    return (num & _M64) // (den & _M64)


def kdivk(a: int, b: int) -> int:
    """maths-util.h kdivk: unsigned 64-bit division of (a << 15) by b, truncated to 32 bits."""
    return wrap32(udiv64((a & _M64) << 15, b & _M64) & U32)


def kdivui(a: int, n: int) -> int:
    return wrap32(udiv64(a & _M64, n) & U32)


def _hi(x: int) -> int:
    return (x >> 32) & U32


def _lo(x: int) -> int:
    return x & U32


def _round64(x: int) -> int:
    # utils.h round64: integer part, +1 when the 32-bit fraction is >= INT32_MAX (0x7FFFFFFF)
    r = _hi(x)
    if _lo(x) >= 0x7FFFFFFF:
        r += 1
    return r


def _scale64(x: int, y: int) -> int:
    """utils.h scale64: 64-bit x times u0.32 y, rounding the low word's fraction."""
    r = _round64(_lo(x) * y)
    r += _hi(x) * y
    return r & _M64


def _coef_mult(c: int, x: int) -> int:
    return ((c * x) >> 32) & U32


def _exp_series(x: int) -> int:
    tmp = (_SERIES[1] - _coef_mult(_SERIES[2], x)) & U32
    tmp = _coef_mult(tmp, x)
    return (tmp + _SERIES[0]) & U32


def _expi64(n: int) -> int:
    """e**(n / 2**15) * 2**32 as a 64-bit integer (stdfix-exp.c's shared kernel)."""
    z = n >> 15                      # arithmetic: floor
    f = n - (z << 15)
    if f > 0:
        z += 1
        f = 32768 - f
        tmp = _EXP_HI[13 + z]
        tmp = (tmp - _scale64(tmp, _EXPM1_MID[f >> 11])) & _M64
        y = ((f & 0x7FF) << 17) & U32
        tmp = (tmp - _scale64(tmp, _exp_series(y))) & _M64
        return tmp
    return _EXP_HI[13 + z]


def expk(x: int) -> int:
    """s16.15 exp: the 64-bit kernel shifted right 17 (truncation); saturates outside its range."""
    n = wrap32(x)
    if n > 363408:
        return ACCUM_MAX
    if n < -340695:
        return 0
    return wrap32(_expi64(n) >> 17)


def expulr(x: int) -> int:
    """u0.32 exp: the kernel's low 32 bits (exact for x < 0; e**0 = 2**32 wraps to 0 as on the core)."""
    n = wrap32(x)
    if n > 363408:
        return 0x7FFFFFFF
    if n < -340695:
        return 0
    return _expi64(n) & U32


# ---- what neuron_model_initialise / decay_and_init compute on the core ------------------------------
def lif_exp_tc(dt_ms_raw: int, tau_m_raw: int) -> int:
    """exp_TC = expk(-kdivk(ts, tau_m))."""
    return expk(-kdivk(dt_ms_raw, tau_m_raw))


def lif_r_membrane(tau_m_raw: int, cm_raw: int) -> int:
    return kdivk(tau_m_raw, cm_raw)


def ceil_accum(raw: int) -> int:
    """lif_ceil_accum: integer part, plus one if any fraction bit is set."""
    integer = wrap32(raw) >> 15
    return integer + 1 if (raw & 0x7FFF) > 0 else integer


def lif_t_refract(tau_refrac_raw: int, dt_ms_raw: int) -> int:
    return ceil_accum(kdivk(tau_refrac_raw, dt_ms_raw))


def exp_synapse_decay_init(dt_ms_raw: int, tau_syn_raw: int) -> tuple[int, int]:
    """(decay, init) in u0.32: decay = expulr(-dt/tau); init = (tau/dt) * (1 - decay)."""
    decay = expulr(-kdivk(dt_ms_raw, tau_syn_raw))
    inv = (ULR_ONE - decay) & U32
    init = decay_s1615_to_u032(kdivk(tau_syn_raw, dt_ms_raw), inv)
    return decay, init
