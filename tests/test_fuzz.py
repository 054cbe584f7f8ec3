"""Fuzzing in CI (small budget) and the campaign (`-m slow`, >= 10,000 cases per loader).

Every loader (structured NIR and ONNX graphs, board tables, artifact manifests; byte-mutated NIR, ONNX
and npz files) must end each case in one of two ways: accepted (and, for graphs and inputs, run a few
steps on the reference simulator) or refused with a SpikeforgeError. A crash (any other exception), a
hang (> 10 s) or a memory blow-up fails the test, with the first crash lines in the message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from spikeforge.errors import InputError
from spikeforge.inputs import load_inputs
from tests import fuzzlib
from tests.conftest import lif_mlp

ROOT = Path(__file__).resolve().parents[1]
#: CI budget per loader (all seven together take well under a minute on the CI machine)
CI_CASES = {"nir": 25, "nir-bytes": 25, "onnx": 40, "onnx-bytes": 30, "board": 40, "manifest": 40, "npz-bytes": 80}
CAMPAIGN_CASES = int(os.environ.get("SPIKEFORGE_FUZZ_CASES", "10000"))


@pytest.mark.parametrize("loader", fuzzlib.LOADERS)
def test_fuzz_ci_budget(loader):
    res = fuzzlib.campaign(loader, CI_CASES[loader], seed=1)
    c = Counter(res["counts"])
    assert c["crash"] == 0 and c["hang"] == 0 and c["memory"] == 0, res["failures"]
    assert res["cases"] >= CI_CASES[loader] * 0.9
    assert c["clean"] > 0  # the mutations do produce bad inputs, and they are refused cleanly
    if loader in ("nir", "onnx", "nir-bytes", "board", "manifest"):
        assert c["ok"] > 0  # ... and valid ones still get through (and run)


def test_regression_npz_with_encryption_flag_is_a_clean_error(tmp_path):
    """Found by the npz byte fuzzer: a zip member with the 'strong encryption' flag raised NotImplementedError."""
    p = tmp_path / "x.npz"
    from spikeforge.npzio import save_npz

    save_npz(p, {"input": np.ones((3, 1, 4), np.uint8)})
    data = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as z:
        off = z.infolist()[0].header_offset
    data[off + 6] |= 0x40  # general purpose flag, bit 6: strong encryption
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 8] |= 0x40
    p.write_bytes(bytes(data))
    with pytest.raises(InputError, match="not a readable .npz"):
        load_inputs(p, lif_mlp())


@pytest.mark.slow
def test_fuzz_campaign():
    """>= 10,000 cases per loader, each loader in a child process limited to 6 GiB of address space."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _common import out_dir

    results = []
    for loader in fuzzlib.LOADERS:
        proc = subprocess.run([sys.executable, "-m", "tests.fuzzlib", loader, str(CAMPAIGN_CASES), "6"],
                              cwd=ROOT, capture_output=True, text=True, timeout=6 * 3600)
        if proc.returncode != 0:
            results.append({"loader": loader, "cases": 0, "counts": {"crash": 1},
                            "failures": [proc.stderr.strip().splitlines()[-1:]]})
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    path = out_dir() / "fuzz_campaign.json"
    path.write_text(json.dumps(results, indent=1))
    for r in results:
        c = Counter(r["counts"])
        print(f"{r['loader']:<11} {r['cases']:>6} cases  ok {c['ok']:>5}  clean {c['clean']:>5}  crash {c['crash']}  "
              f"hang {c['hang']}  memory {c['memory']}  ({r.get('seconds', 0)} s)")
    bad = [r for r in results if any(Counter(r["counts"])[k] for k in ("crash", "hang", "memory"))]
    assert not bad, json.dumps(bad)[:3000]
    assert all(r["cases"] >= CAMPAIGN_CASES for r in results)


def test_regression_npz_member_that_is_not_npy(tmp_path):
    """10k npz-bytes run: numpy returns raw bytes for a member not named .npy (then `.ndim` failed)."""
    p = tmp_path / "x.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("input", b"not an array")
    with pytest.raises(InputError, match="not a readable .npz"):
        load_inputs(p, lif_mlp())


def test_regression_manifest_format_version_true(tmp_path):
    """10k manifest run: format_version = true equals 1 in Python and skipped the digest check."""
    from spikeforge.artifact import Artifact
    from spikeforge.errors import SpikeforgeError
    from spikeforge.pipeline import compile_model

    out = compile_model(lif_mlp(), "loihi2").save(tmp_path / "a")
    m = json.loads((out / "manifest.json").read_text())
    m["format_version"] = True
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SpikeforgeError, match="format True is not supported"):
        Artifact.load(out)
