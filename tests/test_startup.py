"""Start-up cost: the NIR path never imports torch, onnx, brian2, lava or matplotlib (issue 16).

Each check runs in a fresh interpreter, because this test process has imported torch already.
"""

from __future__ import annotations

import json
import subprocess
import sys

from spikeforge import models

HEAVY = ("torch", "onnx", "brian2", "lava", "matplotlib", "snntorch", "norse")

_PROBE = """
import json, sys
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _heavy_after(body: str) -> list[str]:
    code = _PROBE.format(body=body, heavy=HEAVY)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_cli_import_is_light():
    assert _heavy_after("import spikeforge.cli") == []


def test_nir_compile_path_does_not_import_torch(tmp_path):
    body = (
        "from click.testing import CliRunner\n"
        "from spikeforge.cli import main\n"
        f"r = CliRunner().invoke(main, ['compile', {str(models.path('digits_snn.nir'))!r}, '--board', "
        f"'cpu-reference', '-o', {str(tmp_path / 'art')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(main, ['boards'])\n"
        "assert r.exit_code == 0, r.output\n"
        f"for cmd in ('verify', 'profile', 'inspect'):\n"
        f"    args = [cmd, {str(tmp_path / 'art')!r}] + (['-i', {str(models.path('digits_inputs.npz'))!r}] "
        "if cmd != 'inspect' else [])\n"
        "    r = CliRunner().invoke(main, args)\n"
        "    assert r.exit_code == 0, (cmd, r.output)\n"
    )
    assert _heavy_after(body) == []
    assert (tmp_path / "art" / "manifest.json").exists()


def test_api_import_is_lazy():
    """`import spikeforge` stays cheap; the API module loads on first attribute access."""
    assert _heavy_after("import spikeforge\nassert 'spikeforge.api' not in sys.modules") == []
