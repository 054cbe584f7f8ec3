"""The README's five-minute tour runs verbatim on a fresh checkout (issue 16).

The ```sh blocks of the "Five-minute tour" section are executed with bash -e in a temporary copy of the
repository's files (what `git clone` gives), with `.venv` pointing at the installed environment.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tour_blocks(readme: str) -> list[str]:
    section = readme.split("## Five-minute tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def fresh_checkout(dest: Path) -> None:
    """Copy the files a clone would have: tracked plus new, not ignored (uncommitted work included)."""
    res = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip("not a git checkout")
    for rel in filter(None, res.stdout.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / ".venv").symlink_to(Path(sys.prefix))


def test_tour_runs_verbatim(tmp_path):
    blocks = tour_blocks((ROOT / "README.md").read_text())
    assert blocks and "$S compile" in blocks[0] and "$S verify" in blocks[0]
    assert (Path(sys.prefix) / "bin" / "spikeforge").exists()
    fresh_checkout(tmp_path)
    env = {**os.environ, "COLUMNS": "100"}
    for block in blocks:
        res = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, capture_output=True, text=True, env=env,
                             timeout=300)
        assert res.returncode == 0, f"tour step failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    assert (tmp_path / "out" / "verify.xml").exists() and (tmp_path / "out" / "energy.png").exists()
    assert (tmp_path / "out" / "mlp.nir").exists()
    assert "demo: " in res.stdout and "0 unexpected failures" in res.stdout


def test_tour_python_snippet_runs(tmp_path):
    section = (ROOT / "README.md").read_text().split("## Five-minute tour", 1)[1].split("\n## ", 1)[0]
    snippets = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert snippets and "import spikeforge as sf" in snippets[0]
    code = snippets[0] + "\nassert res.passed and prof.energy_total > 0\n"
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
