"""Backend `--set` keys: every key a backend reads is declared, and unknown keys are refused before any work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from spikeforge.cli import main
from spikeforge.errors import SpikeforgeError
from spikeforge.interfaces import CompileOptions
from spikeforge.models import path as model_path
from spikeforge.pipeline import check_backend_options
from spikeforge.registry import get_backend

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("reference", "loihi", "spinnaker", "sfq", "rram", "photonic")


def test_misspelled_key_exits_2_and_lists_valid_keys(tmp_path):
    r = CliRunner().invoke(main, ["compile", str(model_path("digits_snn.nir")), "-b", "sfq-rsfq",
                                  "-o", str(tmp_path / "a"), "--set", "sfq.capacty=64"])
    assert r.exit_code == 2
    assert "unknown option 'sfq.capacty'" in r.output and "sfq.capacity" in r.output and "sfq.max_weight" in r.output
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("name", BACKENDS)
def test_every_key_read_in_the_source_is_declared(name):
    """Keys read with extra.get("...") / _opt(options, "...") in backends/<name>/ must be in its OPTIONS."""
    backend = get_backend(name)
    src = "\n".join(p.read_text() for p in (ROOT / "backends" / name).glob("*.py"))
    if name == "sfq":
        src += (ROOT / "emulators" / "sfq.py").read_text()
    read = set(re.findall(r"extra\.get\(\s*\"([a-z_.]+)\"", src))
    read |= {f"rram.{k}" for k in re.findall(r"_opt\(options, \"([a-z_]+)\"", src)}
    read -= {"calibration"}  # internal key passed by the pipeline
    missing = sorted(k for k in read if k not in backend.options)
    assert not missing, f"{name} reads undeclared keys {missing}"


def test_values_are_parsed_and_range_checked():
    backend = get_backend("sfq")
    opts = CompileOptions(extra={"sfq.capacity": "64", "prune_method": "magnitude"})
    check_backend_options(backend, opts)
    assert opts.extra["sfq.capacity"] == 64 and opts.extra["prune_method"] == "magnitude"
    with pytest.raises(SpikeforgeError, match="must be >= 1"):
        check_backend_options(backend, CompileOptions(extra={"sfq.capacity": 0}))
    with pytest.raises(SpikeforgeError, match="must be one of"):
        check_backend_options(backend, CompileOptions(extra={"sfq.coding": "rate"}))
