"""Brian2 scripts as Brian2 users write them: module-level groups, `run(...)` at the end, no Network.

The script's run() is recorded, not simulated: conversion time does not depend on the simulated duration,
and the script's prints never reach `--json` stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import nir
import pytest

pytest.importorskip("brian2")

from click.testing import CliRunner  # noqa: E402

from spikeforge import graph as G  # noqa: E402
from spikeforge.cli import main  # noqa: E402
from spikeforge.frontends import load_model  # noqa: E402

USUAL = """from brian2 import *

tau = 10*ms
inp = PoissonGroup(50, rates=40*Hz)
grp = NeuronGroup(20, 'dv/dt = -v/tau : 1', threshold='v > 1', reset='v = 0', method='exact')
syn = Synapses(inp, grp, on_pre='v += 0.3')
syn.connect(p=0.3)
mon = SpikeMonitor(grp)
print("building the network")
run({duration})
print("first spike at", mon.t[0])   # reads results of the (skipped) simulation: raises
"""

HEAD = """from brian2 import *
grp = NeuronGroup(5, 'dv/dt = -v/(10*ms) : 1', threshold='v > 1', reset='v = 0')
src = PoissonGroup(5, rates=50*Hz)
syn = Synapses(src, grp, on_pre='v += 0.5')
syn.connect(j='i')
"""


def test_usual_style_script_converts_fast_and_json_stdout_stays_json(tmp_path):
    (tmp_path / "usual.py").write_text(USUAL.format(duration="1*second"))
    proc = subprocess.run([sys.executable, "-m", "spikeforge.cli", "convert", str(tmp_path / "usual.py"), "-o",
                           str(tmp_path / "u.nir"), "--trust", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["nodes"] == 5                     # stdout is the JSON and nothing else
    assert "building the network" in proc.stderr and "raised after run()" in proc.stderr
    g = G.read(tmp_path / "u.nir")
    assert {type(n) for n in g.nodes.values()} >= {nir.Input, nir.LIF, nir.Linear, nir.Delay, nir.Output}


def test_conversion_time_does_not_depend_on_the_simulated_duration(tmp_path):
    times = {}
    for label, duration in (("1 s", "1*second"), ("10000 s", "10000*second")):
        p = tmp_path / f"run_{len(times)}.py"
        p.write_text(USUAL.format(duration=duration))
        t0 = time.process_time()
        g = load_model(p, trust=True)
        times[label] = time.process_time() - t0
        assert len(g.nodes) == 5
    assert max(times.values()) < 5.0, times      # 10000 s of network time would take minutes to simulate


def test_one_network_under_two_names_and_explicit_run(tmp_path):
    p = tmp_path / "named.py"
    p.write_text(HEAD + "net = Network(grp, src, syn)\nmodel = net\nnet.run(5000*second)\n")
    g = load_model(p, trust=True)
    assert sum(isinstance(n, nir.LIF) for n in g.nodes.values()) == 1


def test_distinct_networks_are_named_in_the_error(tmp_path):
    p = tmp_path / "two.py"
    p.write_text(HEAD + "train = Network(grp, src, syn)\ntest = Network(grp, src, syn)\n")
    res = CliRunner().invoke(main, ["convert", str(p), "-o", str(tmp_path / "t.nir"), "--trust"])
    assert res.exit_code == 2
    assert "2 distinct brian2 Networks" in res.output and "train" in res.output and "test" in res.output


def test_node_names_do_not_depend_on_brian2_objects_alive_in_the_process(tmp_path):
    """brian2 numbers automatic names past every live object: a second load (or a notebook's own groups)
    renamed the script's nodes and so the input name its .npz must use ('poissongroup' -> 'poissongroup_1')."""
    import brian2

    f = tmp_path / "usual.py"
    f.write_text(USUAL.format(duration="10*ms"))
    first = sorted(load_model(f, trust=True).nodes)
    held = [brian2.PoissonGroup(3, rates=1 * brian2.Hz), brian2.NeuronGroup(2, "v : 1")]  # noqa: F841
    second = sorted(load_model(f, trust=True).nodes)
    assert first == second and "poissongroup" in first and "neurongroup" in first
    assert brian2.NeuronGroup(1, "v : 1").name != "neurongroup"    # brian2's own naming is left as it was
