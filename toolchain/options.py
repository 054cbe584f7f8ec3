"""Backend options (`--set key=value`): each backend declares the keys it reads, with types and ranges.

Why: a misspelled key (`sfq.capacty=64`) must not be accepted and ignored, and a value out of range
must be refused before any work starts. A backend lists its keys in `backends/<name>/options.py` as
``OPTIONS: dict[str, Opt]`` and exposes them as the class attribute ``Backend.options``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import SpikeforgeError

#: keys every backend accepts (read by the pipeline, not by a backend)
COMMON: dict[str, Opt] = {}


@dataclass(frozen=True)
class Opt:
    """One `--set` key: its type, default, range and a help line with units."""

    type: type
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None

    def parse(self, key: str, value: Any) -> Any:
        """Coerce a CLI string (or a Python value) to this option's type and check its range."""
        try:
            if self.type is bool:
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError(value)
                    v: Any = low in ("1", "true", "yes", "on")
                else:
                    v = bool(value)
            elif self.type is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                v = int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
            elif self.type is float:
                v = float(value)
                if not math.isfinite(v):
                    raise ValueError(value)
            else:
                v = self.type(value)
        except (TypeError, ValueError):
            raise SpikeforgeError(f"--set {key}={value!r}: expected {self.type.__name__}"
                                  + (f" ({self.help})" if self.help else ""), field=key) from None
        if self.choices is not None and v not in self.choices:
            raise SpikeforgeError(f"--set {key}={value!r}: must be one of {list(self.choices)}", field=key)
        if self.min is not None and v < self.min:
            raise SpikeforgeError(f"--set {key}={value!r}: must be >= {self.min}", field=key)
        if self.max is not None and v > self.max:
            raise SpikeforgeError(f"--set {key}={value!r}: must be <= {self.max}", field=key)
        return v


def validate_options(backend: str, declared: Mapping[str, Opt], given: Mapping[str, Any]) -> dict[str, Any]:
    """Parse `given` against `declared` (plus COMMON); unknown keys are an error listing the valid ones."""
    known = {**COMMON, **declared}
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key not in known:
            valid = ", ".join(sorted(known)) or "(none)"
            raise SpikeforgeError(f"unknown option '{key}' for backend '{backend}'; valid keys: {valid}",
                                  field=key)
        out[key] = known[key].parse(key, value)
    return out
