"""The project TOML: a `[verify]` table so CI does not repeat verify's flags on every call.

Why: a gate lives in the repository next to the model, reviewed like code. The file is either a
`spikeforge.toml` with a `[verify]` table or a `pyproject.toml` with `[tool.spikeforge.verify]`.
Command-line flags override the file. Unknown keys are errors (a misspelled gate must not be ignored).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tomllib

from .errors import SpikeforgeError
from .gates import Gates

#: keys of the [verify] table besides the Gates fields
EXTRA_KEYS = ("baseline_tolerances",)


def load_verify_table(path: str | os.PathLike) -> dict[str, Any]:
    """The `[verify]` (or `[tool.spikeforge.verify]`) table of a TOML file; {} when it has none."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise SpikeforgeError("config file not found", file=str(p)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpikeforgeError(f"not valid TOML ({exc})", file=str(p)) from None
    table = data.get("verify", data.get("tool", {}).get("spikeforge", {}).get("verify", {}))
    if not isinstance(table, dict):
        raise SpikeforgeError("[verify] must be a table", file=str(p), field="verify")
    return table


def verify_settings(path: str | os.PathLike | None, overrides: dict[str, Any]) -> tuple[Gates, dict[str, float]]:
    """Gates from the file's table with `overrides` (CLI flags that were given) on top, and baseline tolerances."""
    table = dict(load_verify_table(path)) if path is not None else {}
    tols = table.pop("baseline_tolerances", {})
    if not isinstance(tols, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                                             for v in tols.values()):
        raise SpikeforgeError("baseline_tolerances must map metric names (globs) to numbers >= 0",
                              file=str(path), field="baseline_tolerances")
    gates = Gates.from_mapping({**table, **{k: v for k, v in overrides.items() if v is not None}},
                               source=str(path or ""))
    return gates, {str(k): float(v) for k, v in tols.items()}
