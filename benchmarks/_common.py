"""What every benchmark shares: where results go, how timings are repeated, how targets are reported.

Why: honest benchmarks. Same work on both sides, a warm-up on both, >= 3-5 repeats reported as
min/median/max, results checked equal, a MISSED line for any target not met, and results written
outside the source tree (``$SPIKEFORGE_BENCH_OUT`` or ``--out``; default a temporary directory).
`benchmarks/run_all.py` collects the JSON files and renders docs/benchmarks.md and the README's
figures from them, so published numbers always come from the last `make bench`.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def out_dir() -> Path:
    """Results directory: --out DIR on the command line, else $SPIKEFORGE_BENCH_OUT, else a temp dir."""
    if "--out" in sys.argv:
        d = Path(sys.argv[sys.argv.index("--out") + 1])
    elif os.environ.get("SPIKEFORGE_BENCH_OUT"):
        d = Path(os.environ["SPIKEFORGE_BENCH_OUT"])
    else:
        d = Path(tempfile.gettempdir()) / "spikeforge-bench"
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass
class Timing:
    """Seconds over repeats (after warm-up)."""

    samples: list[float]

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def fmt(self, unit: str = "s") -> str:
        return f"min {self.min:.4g} / median {self.median:.4g} / max {self.max:.4g} {unit} (n={len(self.samples)})"

    def to_dict(self) -> dict[str, float]:
        return {"min": self.min, "median": self.median, "max": self.max, "n": len(self.samples)}


def timeit(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> tuple[Timing, Any]:
    """Run fn warmup times untimed, then `repeats` times timed; return the timing and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    samples = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
    return Timing(samples), result


@dataclass
class Report:
    """One benchmark's results: table rows and targets. `save` writes <out>/<name>.json."""

    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def target(self, what: str, measured: float, goal: float, *, higher_is_better: bool = True,
               unit: str = "") -> bool:
        met = measured >= goal if higher_is_better else measured <= goal
        self.targets.append({"what": what, "measured": measured, "goal": goal, "unit": unit, "met": met,
                             "higher_is_better": higher_is_better})
        op = ">=" if higher_is_better else "<="
        line = f"{what}: {measured:.4g}{unit} (target {op} {goal:g}{unit})"
        print(("met: " if met else "MISSED: ") + line, flush=True)
        return met

    def save(self) -> Path:
        path = out_dir() / f"{self.name}.json"
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True, default=float) + "\n")
        print(f"results: {path}", flush=True)
        return path
