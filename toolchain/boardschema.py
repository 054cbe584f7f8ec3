"""The board-spec schema with ranges, checked by pydantic when a board TOML is loaded.

Why: cost models divide by limits and partitioners loop until a layer fits a core. A limit of 0, a
negative one or NaN makes those loops run forever or the figures meaningless, and a negative energy
makes a profile lie. Each constant's value is therefore checked against its section's range, and its
unit against a list of known units, with the failing key named (`limits.neurons_per_core`).

Ranges by section: `limits` finite and > 0 (whole numbers where they count things); `energy` finite and >= 0; `timing` finite and >= 0;
`arithmetic`, `physics`, `parameters` finite (they hold signed quantities such as voltages). Booleans
and strings are allowed outside `limits`, `energy` and `timing`.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import BoardError

KNOWN_UNITS = frozenset({
    "-", "1", "", "A", "B", "B/s", "FLOP/s", "FLOP", "Hz", "J", "JJ", "JTL stages", "K", "S", "V", "W", "W/W",
    "Wb", "F", "H", "ohm", "m", "m^2", "um", "nm", "mm^2", "um^2", "axon", "axons", "bit lines", "bit", "bits",
    "byte", "bytes", "chip", "chips", "compartment", "compartments", "core", "cores", "counts",
    "counts/us/mirror", "cycles", "e-/count", "entries", "fluxons", "fraction of g_max per decade",
    "fraction of g_max", "fraction", "levels", "macros", "mirrors", "neuron", "neurons", "pixels",
    "pulses per neuron", "pulses", "relative", "s", "sigma", "step", "steps", "synapse", "synapses", "tile",
    "tiles", "word lines", "x slots", "%", "dB", "C", "degC", "J/bit", "J/op", "ops", "ops/s", "JJ per chip",
    "JJ per bit", "x published", "pulses per cell",
})
#: a board name ends up in emitted scripts and file names: keep it to a plain identifier-like token
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
STATUSES = ("measured", "published", "derived", "assumed", "estimate")

Scalar = bool | int | float | str
Value = Scalar | list[int | float]


class ConstantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Value
    unit: str
    source: str = Field(min_length=1)
    status: Literal["measured", "published", "derived", "assumed", "estimate"] = "published"
    note: str = ""

    @field_validator("unit")
    @classmethod
    def _unit_known(cls, v: str) -> str:
        if v not in KNOWN_UNITS:
            raise ValueError(f"unknown unit {v!r}; known units: {', '.join(sorted(u for u in KNOWN_UNITS if u))}")
        return v

    @field_validator("source")
    @classmethod
    def _source_nonblank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("empty source")
        return v


class BoardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    backend: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    description: str = Field(min_length=1)
    notes: list[str] = []
    limits: dict[str, ConstantSpec] = {}
    energy: dict[str, ConstantSpec] = {}
    timing: dict[str, ConstantSpec] = {}
    arithmetic: dict[str, ConstantSpec] = {}
    physics: dict[str, ConstantSpec] = {}
    parameters: dict[str, ConstantSpec] = {}


#: section -> (lowest value, lowest allowed itself?, numbers only?)
SECTION_RANGES: dict[str, tuple[float, bool, bool]] = {
    "limits": (0.0, False, True),
    "energy": (0.0, True, True),
    "timing": (0.0, True, True),
    "arithmetic": (-math.inf, True, False),
    "physics": (-math.inf, True, False),
    "parameters": (-math.inf, True, False),
}


#: units of continuous quantities; every other `limits` unit counts things and must be an integer >= 1
CONTINUOUS_UNITS = frozenset({"s", "J", "W", "Hz", "V", "A", "B/s", "FLOP/s", "K", "ohm", "S", "Wb", "F", "H",
                              "fraction", "relative", "W/W", "%", "dB"})


def _check_value(section: str, key: str, value: Value, path: str, unit: str = "") -> None:
    lo, inclusive, numeric = SECTION_RANGES[section]
    where = f"{section}.{key}"
    items = value if isinstance(value, list) else [value]
    for v in items:
        if isinstance(v, str) or isinstance(v, bool):
            if numeric:
                raise BoardError(f"constant '{where}' must be a number, got {v!r}", file=path, field=where)
            continue
        if not math.isfinite(float(v)):
            raise BoardError(f"constant '{where}' must be finite, got {v}", file=path, field=where)
        if float(v) < lo or (not inclusive and float(v) == lo):
            rel = ">=" if inclusive else ">"
            raise BoardError(f"constant '{where}' must be {rel} {lo:g}, got {v}", file=path, field=where)
        if section == "limits" and unit not in CONTINUOUS_UNITS and not float(v).is_integer():
            raise BoardError(f"constant '{where}' counts {unit} and must be a whole number >= 1, got {v}",
                             file=path, field=where)


def validate_board(data: dict, path: str) -> BoardSpec:
    """Validate the raw TOML table of a board; the first problem is one BoardError naming the key."""
    try:
        spec = BoardSpec.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        got_s = "" if isinstance(got, dict) else f", got {got!r}"[:120]
        raise BoardError(f"'{loc}': {msg}{got_s}", file=path, field=loc) from None
    for section in SECTION_RANGES:
        for key, const in getattr(spec, section).items():
            _check_value(section, key, const.value, path, const.unit)
    return spec
