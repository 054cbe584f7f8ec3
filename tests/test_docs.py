"""`make docs`: the API reference builds from docstrings with pdoc, offline (issue 16)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_api_reference_builds_offline(tmp_path):
    modules = re.search(r"^DOC_MODULES := (.+)$", (ROOT / "Makefile").read_text(), flags=re.M).group(1).split()
    assert "spikeforge.api" in modules
    env = {**os.environ, "no_proxy": "*", "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    res = subprocess.run([sys.executable, "-m", "pdoc", "--no-show-source", "-o", str(tmp_path), *modules],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    api = (tmp_path / "spikeforge" / "api.html").read_text()
    for name in ("compile", "verify", "profile", "emulate", "boards", "SpikeforgeWarning"):
        assert f'id="{name}"' in api, name
    assert "largest accepted accuracy drop" in api  # docstrings, not just signatures
    assert (tmp_path / "index.html").exists()
