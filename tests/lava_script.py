"""Test helper: run an artifact's emitted Lava script (code/network.py) in a child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np


def run_network_py(out_dir: Path, inputs: dict[str, np.ndarray], work: Path, timeout: float = 300) -> dict[str, np.ndarray]:
    """Outputs and probed states of `network.py --probe` on `inputs`; why a child: Lava starts its own runtime."""
    np.savez(work / "in.npz", **inputs)
    res = subprocess.run([sys.executable, str(Path(out_dir) / "code" / "network.py"), "--input", str(work / "in.npz"),
                          "--out", str(work / "out.npz"), "--probe"],
                         capture_output=True, text=True, timeout=timeout, cwd=work)
    assert res.returncode == 0, res.stderr[-2000:]
    with np.load(work / "out.npz") as f:
        return {k: f[k] for k in f.files}
