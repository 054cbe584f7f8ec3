"""The import hook that makes lava-nc 0.10.0 run on Python 3.11 (issue 2, item 2)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import py_compile
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from spikeforge.backends.loihi import _lava_compat as compat

needs_lava = pytest.mark.skipif(not compat.lava_available(), reason="lava-nc not installed")

SNIPPET = textwrap.dedent('''
    """module docstring"""
    from __future__ import annotations
    import typing as ty
    from dataclasses import dataclass, InitVar

    MARK = "source"

    @dataclass
    class Enc:
        base: int = 0

    @dataclass
    class Holder:
        x: Enc = Enc()
        y: Enc = Enc(3)
        z: ty.ClassVar[Enc] = Enc(7)
        n: int = 5
''')


def _exec(tree_or_src, name: str) -> dict:
    """Execute as a registered module (dataclasses resolves string annotations through sys.modules)."""
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    try:
        exec(compile(tree_or_src, f"<{name}>", "exec"), mod.__dict__)
    finally:
        sys.modules.pop(name, None)
    return mod.__dict__


def test_patch_source_rewrites_only_mutable_call_defaults():
    tree, rewritten = compat.patch_source(SNIPPET)
    assert sorted(rewritten) == ["Holder.x", "Holder.y"]
    ns = _exec(tree, "snippet")
    a, b = ns["Holder"](), ns["Holder"]()
    assert a.x == ns["Enc"]() and a.y == ns["Enc"](3) and a.n == 5
    assert a.x is not b.x                     # a fresh default per instance, as default_factory gives
    assert ns["Holder"].z == ns["Enc"](7)     # ClassVar untouched
    assert ns["__doc__"] == "module docstring"  # import inserted after docstring and __future__


def test_unpatched_snippet_really_fails_on_this_python():
    with pytest.raises(ValueError, match="mutable default"):
        _exec(SNIPPET, "snippet2")


def test_field_name_clash_uses_alias():
    src = SNIPPET + "\nfield = 'user value'\n"
    tree, rewritten = compat.patch_source(src)
    ns = _exec(tree, "snippet3")
    assert ns["field"] == "user value" and ns["Holder"]().x == ns["Enc"]()


def test_loader_ignores_stale_bytecode(tmp_path, monkeypatch):
    """A valid-looking __pycache__ entry compiled from other (unpatched) code must not be used."""
    pkg = tmp_path / "stalepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    mod = pkg / "var_model.py"
    stale_src = SNIPPET.replace('MARK = "source"', 'MARK = "cached"')
    assert len(stale_src) == len(SNIPPET)
    mod.write_text(stale_src)
    st = os.stat(mod)
    py_compile.compile(str(mod), cfile=importlib.util.cache_from_source(str(mod)), doraise=True)
    mod.write_text(SNIPPET)                       # same size, same mtime: the pyc header still matches
    os.utime(mod, ns=(st.st_atime_ns, st.st_mtime_ns))
    monkeypatch.syspath_prepend(str(tmp_path))
    # Without the hook, Python loads the stale pyc and fails like Lava does.
    with pytest.raises(ValueError, match="mutable default"):
        importlib.import_module("stalepkg.var_model")
    sys.modules.pop("stalepkg.var_model", None)
    finder = compat.LavaCompatFinder(targets=("stalepkg.var_model",))
    sys.meta_path.insert(0, finder)
    try:
        m = importlib.import_module("stalepkg.var_model")
        assert m.MARK == "source"                 # compiled from the source, not the cached bytecode
        assert m.__spec__.cached is None
        assert m.Holder().x == m.Enc()
    finally:
        sys.meta_path.remove(finder)
        sys.modules.pop("stalepkg.var_model", None)
        sys.modules.pop("stalepkg", None)


def test_install_is_idempotent():
    a = compat.install()
    b = compat.install()
    assert a is b and sum(isinstance(f, compat.LavaCompatFinder) for f in sys.meta_path) == 1


@needs_lava
def test_real_lava_fails_without_hook_and_imports_with_it():
    code = "import lava.magma.compiler.var_model"
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if sys.version_info >= (3, 11):
        assert plain.returncode != 0 and "mutable default" in plain.stderr
    hooked = subprocess.run(
        [sys.executable, "-c", "from spikeforge.backends.loihi._lava_compat import install; install(); "
         "import importlib.util as u, lava.magma.compiler.var_model as m; "
         "print(sorted(m.__spikeforge_patched__)); print(m.__spec__.cached); "
         "print(u.cache_from_source(m.__file__))"],
        capture_output=True, text=True, timeout=120)
    assert hooked.returncode == 0, hooked.stderr
    lines = hooked.stdout.splitlines()
    assert "CoreEncoder.x" in lines[0] and lines[1] == "None"


@needs_lava
def test_two_neuron_network_runs_fixed_pt():
    compat.import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    T = 8
    data = np.zeros((1, T), np.int32)
    data[0, 0] = 1                                    # one input spike, sent at step 1
    src = RingBuffer(data=data)
    d1 = Dense(weights=np.array([[100]]))
    n1 = LIF(shape=(1,), du=4095, dv=0, vth=50)       # 100 << 6 = 6400 > 50 << 6: spikes at step 2
    d2 = Dense(weights=np.array([[60]]))
    n2 = LIF(shape=(1,), du=4095, dv=0, vth=50)       # spikes one hop later, step 3
    src.s_out.connect(d1.s_in)
    d1.a_out.connect(n1.a_in)
    n1.s_out.connect(d2.s_in)
    d2.a_out.connect(n2.a_in)
    mons = []
    for p in (n1, n2):
        m = Monitor()
        m.probe(p.s_out, T)
        mons.append(m)
    try:
        src.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        s1, s2 = (next(iter(m.get_data().values()))["s_out"].ravel() for m in mons)
    finally:
        src.stop()
    assert np.flatnonzero(s1).tolist() == [1]
    assert np.flatnonzero(s2).tolist() == [2]
