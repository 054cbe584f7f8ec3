"""Sweep scaling: the same grid run with 1 and 2 local workers and on a local Ray instance with 1 and 2 CPUs.

Same work on every side (identical points, fresh result directories), a warm-up point first, repeats
reported as min/median/max, records checked equal across executors. A 2-core machine can show at most
2x; what a cluster would give is estimated from the measured per-point time (points / workers x
per-point time, plus Ray's measured start-up).

Usage: python benchmarks/bench_sweep.py [--out DIR] [--repeats N] [--screenshot PNG]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Report, out_dir, timeit  # noqa: E402

from spikeforge import models  # noqa: E402
from spikeforge.sweep import SweepSpec, run_sweep  # noqa: E402

TIMING = ("compile_s", "verify_s")


def _spec() -> SweepSpec:
    return SweepSpec(model=models.path("digits_snn.nir"), inputs=models.path("digits_inputs.npz"),
                     boards=["cpu-reference", "loihi2"], seeds=[0], grid={"bit_budget": [0, 50, 100, 200]},
                     max_samples=64)


def _strip(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def main() -> int:
    repeats = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 3
    rep = Report("sweep")
    spec = _spec()
    n = len(spec.points())
    base = Path(tempfile.mkdtemp(prefix="spikeforge-bench-sweep-"))
    results = {}
    try:
        for name, kw in (("local-1", {"workers": 1}), ("local-2", {"workers": 2}),
                         ("ray-1", {"workers": 1, "ray": "local"}), ("ray-2", {"workers": 2, "ray": "local"})):
            ray = None
            if kw.get("ray"):
                try:
                    import ray
                except ImportError:
                    rep.notes.append("ray not installed: Ray rows skipped")
                    continue
                # one Ray instance per row, started outside the timed region (its start-up is reported
                # separately); the warm-up run brings its workers up, the timed runs reuse them
                t0 = time.perf_counter()
                ray.init(num_cpus=kw["workers"], include_dashboard=False, log_to_driver=False)
                rep.rows.append({"executor": f"{name} start-up", "seconds": time.perf_counter() - t0})
            runs = iter(range(10_000))

            def once(kw=kw, name=name, runs=runs):
                d = base / f"{name}-{next(runs)}"
                return run_sweep(spec, d, **kw)

            try:
                t, res = timeit(once, repeats=repeats, warmup=1)
            finally:
                if ray is not None:
                    ray.shutdown()
            assert res.failures == 0, [r.get("error") for r in res.records if r.get("status") != "ok"]
            results[name] = res
            per_point = t.median / n
            rep.rows.append({"executor": name, "points": n, "wall_s": t.to_dict(), "per_point_s": per_point})
            print(f"{name:8s}: {n} points, wall {t.fmt()}, {per_point:.3f} s per point", flush=True)
        ref = _strip(results["local-1"].records)
        for name, res in results.items():
            assert _strip(res.records) == ref, f"{name} records differ from local-1"
        print("records equal across executors: yes")
        walls = {r["executor"]: r["wall_s"]["median"] for r in rep.rows if "wall_s" in r}
        rep.target("local speed-up with 2 workers (2-core machine)", walls["local-1"] / walls["local-2"], 1.3,
                   unit="x")
        if "ray-2" in walls:
            rep.target("Ray speed-up with 2 CPUs (2-core machine)", walls["ray-1"] / walls["ray-2"], 1.2, unit="x")
        pp = walls["local-1"] / n
        for workers in (16, 64, 256):
            est = 480 * pp / workers
            rep.notes.append(f"estimate for the 480-point sweep of the issue on {workers} workers: "
                             f"{est:.0f} s (480 x {pp:.2f} s per point / {workers}, before scheduling overhead)")
            print(rep.notes[-1])
        if "--screenshot" in sys.argv:
            _screenshot(results["local-1"].out, Path(sys.argv[sys.argv.index("--screenshot") + 1]))
        rep.save()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if all(t["met"] for t in rep.targets) else 1


def _screenshot(sweep_dir: Path, png: Path) -> None:
    """Render the sweep report in headless Chromium (for the README's screenshot)."""
    from spikeforge.report import sweep_report

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("no chromium: screenshot skipped")
        return
    page = out_dir() / "sweep_report.html"
    page.write_text(sweep_report(sweep_dir))
    subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--virtual-time-budget=10000", "--window-size=1200,1100", f"--screenshot={png}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    print(f"screenshot: {png}")


if __name__ == "__main__":
    sys.exit(main())
