"""spikeforge sweep: grid expansion and validation, resumable runs, content-hash invalidation, Pareto marks,
Ctrl-C keeping finished points, and identical results locally and on Ray."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from spikeforge import models
from spikeforge.errors import SpikeforgeError
from spikeforge.sweep import SweepSpec, load_spec, mark_pareto, pareto_front, run_sweep

TIMING = ("compile_s", "verify_s", "shards")


def _spec(tmp: Path, boards=("cpu-reference",), budgets=(0, 100), prune=(0.0,), seeds=(0,)) -> SweepSpec:
    inputs = tmp / "inputs.npz"
    if not inputs.exists():
        shutil.copy(models.path("digits_inputs.npz"), inputs)
    return SweepSpec(model=models.path("digits_snn.nir"), inputs=inputs, boards=list(boards), seeds=list(seeds),
                     grid={"bit_budget": list(budgets), "prune": list(prune)}, max_samples=16)


def _strip(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_sweep_runs_resumes_and_invalidates(tmp_path):
    spec = _spec(tmp_path)
    out = tmp_path / "out"
    first = run_sweep(spec, out, workers=1)
    assert first.ran == 2 and first.skipped == 0 and first.failures == 0
    assert {r["status"] for r in first.records} == {"ok"}
    assert all(0 <= r["accuracy"] <= 1 and r["energy_J"] > 0 for r in first.records)
    assert (out / "results.parquet").exists() or (out / "results.csv").exists()
    assert json.loads((out / "results.json").read_text())[0]["key"] == first.records[0]["key"]
    # resume: nothing recomputed, same records
    again = run_sweep(spec, out, workers=1)
    assert again.ran == 0 and again.skipped == 2
    assert _strip(again.records) == _strip(first.records)
    # a changed input invalidates every point (content hash), so they run again
    with np.load(spec.inputs) as d:
        arrays = {k: d[k] for k in d.files}
    arrays["labels"] = np.roll(arrays["labels"], 1)
    np.savez(spec.inputs, **arrays)
    changed = run_sweep(spec, out, workers=1)
    assert changed.ran == 2 and changed.skipped == 0


def test_interrupt_keeps_finished_points_and_resume_completes(tmp_path):
    spec = _spec(tmp_path, budgets=(0, 50, 100))
    out = tmp_path / "out"

    def stop_after_first(rec, n, total):
        raise KeyboardInterrupt

    part = run_sweep(spec, out, workers=1, on_result=stop_after_first)
    assert part.interrupted and part.ran == 1 and len(part.records) == 1
    assert len((out / "results.jsonl").read_text().splitlines()) == 1
    # a torn last line (a kill mid-write) is ignored, not fatal
    with open(out / "results.jsonl", "a") as f:
        f.write('{"key": "trunc')
    rest = run_sweep(spec, out, workers=1)
    assert rest.ran == 2 and rest.skipped == 1 and len(rest.records) == 3


def test_refusals_are_recorded_not_raised(tmp_path):
    spec = _spec(tmp_path, boards=("rram-40nm-512x512",), budgets=(0,))
    res = run_sweep(spec, tmp_path / "out", workers=1)
    (rec,) = res.records
    assert rec["status"] in ("refused", "ok")
    if rec["status"] == "refused":
        assert rec["error"]


def test_pareto_front_and_marks():
    recs = [
        {"board": "a", "status": "ok", "accuracy": 0.9, "energy_J": 1.0, "latency_s": 1.0},
        {"board": "a", "status": "ok", "accuracy": 0.8, "energy_J": 2.0, "latency_s": 2.0},   # dominated
        {"board": "b", "status": "ok", "accuracy": 0.95, "energy_J": 5.0, "latency_s": 1.0},
        {"board": "b", "status": "ok", "accuracy": 0.7, "energy_J": 0.5, "latency_s": 3.0},
        {"board": "b", "status": "refused"},
    ]
    assert sorted(pareto_front(recs)) == [0, 2, 3]
    mark_pareto(recs)
    assert [r["pareto"] for r in recs] == [True, False, True, True, False]
    assert [r["pareto_board"] for r in recs] == [True, False, True, True, False]


def test_spec_validation(tmp_path):
    bad = tmp_path / "bad.toml"
    for body, needle in (
        ('[sweep]\nmodel="m"\ninputs="i"\nboards=["cpu-reference"]\n[sweep.grid]\nbitbudget=[1]\n', "unknown grid axis"),
        ('[sweep]\nmodel="m"\ninputs="i"\nboards=["cpu-reference"]\n[sweep.grid]\nbit_budget=[nan]\n', "finite"),
        ('[sweep]\nmodel="m"\ninputs="i"\nboards=["cpu-reference"]\n[sweep.grid]\nprune=[1.5]\n', "outside"),
        ('[sweep]\nmodel="m"\nboards=["cpu-reference"]\n', "missing 'inputs'"),
        ('[sweep]\nmodel="m"\ninputs="i"\nboards=[]\n', "boards"),
        ('[sweep]\nmodel="m"\ninputs="i"\nboards=["x"]\nfoo=1\n', "unknown key"),
    ):
        bad.write_text(body)
        with pytest.raises(SpikeforgeError, match=needle):
            load_spec(bad)
    huge = _spec(tmp_path, budgets=list(range(1, 200)), prune=[i / 200 for i in range(150)])
    with pytest.raises(SpikeforgeError, match="at most"):
        huge.points()


def test_set_keys_apply_to_their_backend_only(tmp_path):
    spec = _spec(tmp_path, boards=("cpu-reference", "sfq-rsfq"), budgets=(0,))
    spec.sets = {"sfq.capacity": [8, 64]}
    pts = spec.points()
    assert len(pts) == 3  # 1 for cpu-reference, 2 for the SFQ board
    assert [p.sets for p in pts if p.board == "cpu-reference"] == [()]


def test_ray_gives_identical_results(tmp_path):
    pytest.importorskip("ray")
    spec = _spec(tmp_path, budgets=(0, 100))
    local = run_sweep(spec, tmp_path / "local", workers=2)
    on_ray = run_sweep(spec, tmp_path / "ray", workers=2, ray="auto")  # no cluster here: starts a local one
    assert on_ray.ran == 2
    assert _strip(on_ray.records) == _strip(local.records)


def test_sharded_verification_merges_exactly(tmp_path):
    spec = _spec(tmp_path, boards=("cpu-reference", "loihi2"), budgets=(100,))
    spec.max_samples = 40
    whole = run_sweep(spec, tmp_path / "whole", workers=1)
    spec.shard_size = 16  # 40 samples -> shards of 16, 16, 8 run on two workers
    sharded = run_sweep(spec, tmp_path / "sharded", workers=2)
    assert [r.get("shards") for r in sharded.records] == [3, 3]
    assert _strip(sharded.records) == _strip(whole.records)
    assert not (tmp_path / "sharded" / ".work").exists() or not any((tmp_path / "sharded" / ".work").iterdir())
