"""Start-up cost of the CLI: import time and wall time of `boards` and a .nir compile (issue 16).

Every command used to pay ~1.4 s importing torch, even for an NIR file. Target: `spikeforge boards` and
`spikeforge compile digits_snn.nir --board cpu-reference` spend under 0.5 s importing modules. Import time
is what `python -X importtime` reports (sum of the top-level imports' cumulative times), measured in a
fresh interpreter per repeat; wall time of the whole command is reported beside it. Checked: no torch.
The target is checked on the minimum over repeats (the cost itself, without the interference of other jobs
on a shared machine); min, median and max are all printed and saved.

Run: .venv/bin/python benchmarks/bench_startup.py [--out DIR]
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, Timing  # noqa: E402

from spikeforge import models  # noqa: E402

REPEATS = 5
TARGET_S = 0.5
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def run_once(args: list[str]) -> tuple[float, float, set[str]]:
    """(import seconds, wall seconds, imported top-level packages) of one fresh `spikeforge ARGS` run."""
    code = "import sys; from spikeforge.cli import main; sys.argv = ['spikeforge', *sys.argv[1:]]; main()"
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"spikeforge {' '.join(args)} failed: {res.stderr[-1000:]}")
    total, packages = 0, set()
    for m in _LINE.finditer(res.stderr):
        if len(m.group(3)) == 1:  # top level: one space after '|'
            total += int(m.group(2))
        packages.add(m.group(4).split(".")[0])
    return total / 1e6, wall, packages


def main() -> int:
    nir_model = str(models.path("digits_snn.nir"))
    report = Report("startup", notes=[f"{REPEATS} fresh interpreters per command after one warm-up (disk cache); "
                                      "import time from python -X importtime"])
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        commands = {"import spikeforge.cli": ["--help"], "spikeforge boards": ["boards"],
                    "spikeforge compile digits_snn.nir --board cpu-reference":
                        ["compile", nir_model, "--board", "cpu-reference", "-o", str(Path(tmp) / "art")]}
        for label, args in commands.items():
            run_once(args)  # warm-up
            runs = [run_once(args) for _ in range(REPEATS)]
            imp, wall = Timing([r[0] for r in runs]), Timing([r[1] for r in runs])
            heavy = sorted({"torch", "onnx", "brian2", "lava", "matplotlib"} & set().union(*(r[2] for r in runs)))
            print(f"{label}: import {imp.fmt()}; wall {wall.fmt()}; heavy imports: {heavy or 'none'}")
            report.rows.append({"command": label, "import_s": imp.to_dict(), "wall_s": wall.to_dict(),
                                "heavy_imports": heavy})
            ok &= not heavy
            if label != "import spikeforge.cli":
                report.target(f"{label}: import time (min of {REPEATS})", imp.min, TARGET_S, higher_is_better=False,
                              unit=" s")
    report.save()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
