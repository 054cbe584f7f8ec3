"""Brian2 frontend: a `brian2.Network` (or a Python file that builds one) -> NIR.

Recognised from brian2's *parsed* equations (sympy, not string patterns): NeuronGroups whose membrane
equation is linear, dv/dt = (v_leak - v + R*I)/tau (LIF; LI without threshold), dv/dt = 0 or a `v`
parameter (IF), optionally with one exponentially decaying synaptic variable dI/dt = -I/tau_syn (CUBA LIF).
Synapses with `on_pre` `x += expr` (x = v or the synaptic variable; expr = a synaptic variable, constant,
or their product), per-synapse weights and delays; PoissonGroup and SpikeGeneratorGroup become Input nodes.

Units: NIR has none; every value is in SI base units as a plain float (seconds, volts, amperes, ohms).
Time step: the groups' clock dt (graph metadata "spikeforge.dt").

Timing (why the Delay nodes carry one extra step): within a brian2 step the order is integrate ->
threshold -> synaptic propagation (`on_pre`) -> reset, so a spike at step t changes its target's
state at the end of step t and acts from step t+1 on. The reference simulator applies inputs inside the
integration, so every synapse gets Delay(delay + dt) and the input scaling that reproduces a jump that is
then integrated: r = a / (1 - a) with a = exp(-dt/tau) for brian2's exact method, r = tau/dt - 1 for euler,
w_in = tau_syn/dt for a jump into the synaptic current. Jumps that arrive in the step a neuron spikes are
overwritten by brian2's reset; for reset-to-value on v this is reproduced exactly by the reference
simulator's *delayed* reset to v_r relaxed by one step towards v_leak (metadata keeps brian2's v_r).
Voltages are stored relative to the group's initial v (NIR states start at 0; "spikeforge.v_offset").
Refractory periods > 0 are refused (NIR has none). Delays round like brian2 (half a step rounds up).

Reading a Python file executes it (`runpy`): only load files you trust. Its `run()` calls are intercepted,
not simulated (`collect_script`), and its prints go to stderr.
"""

from __future__ import annotations

import contextlib
import os
import re
import runpy
import sys
from pathlib import Path
from typing import Any

import nir
import numpy as np

from spikeforge import graph as G
from spikeforge.errors import SpikeforgeError, UnsupportedError
from spikeforge.frontends import register

_STATEMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*(\+=|-=|=)\s*(.+?)\s*$")


def _find_network(obj: Any, file: str | None = None):
    import brian2

    if isinstance(obj, brian2.Network):
        return obj, {}
    p = Path(obj)
    if not p.exists():
        raise SpikeforgeError("file not found", file=str(p))
    return collect_script(p)


class _Recorder:
    """Stands in for `brian2.run` and `Network.run` while a script runs: records what would be simulated."""

    def __init__(self) -> None:
        self.networks: list[Any] = []          # explicit Network objects whose run() was called
        self.magic: list[set[Any]] = []        # object sets of magic run() calls
        self.namespace: dict[str, Any] = {}    # the magic run() caller's variables (external constants)

    def run(self, *args: Any, **kwargs: Any) -> None:
        from brian2.core.magic import collect

        self.magic.append(set(collect(level=1)))
        frame = sys._getframe(1)
        self.namespace = {**frame.f_globals, **frame.f_locals}

    def network_run(self, net: Any, *args: Any, **kwargs: Any) -> None:
        if not any(n is net for n in self.networks):
            self.networks.append(net)


@contextlib.contextmanager
def _stdout_to_stderr():
    """The script's prints (Python and C level) go to stderr, so `--json` stdout stays JSON."""
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
        saved = os.dup(fd)
        os.dup2(sys.stderr.fileno(), fd)
    except (AttributeError, OSError, ValueError):  # no real file descriptor (e.g. a test runner's buffer)
        fd = saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None and fd is not None:
            os.dup2(saved, fd)
            os.close(saved)


def _fresh_names():
    """brian2's `find_name` as if the script ran in a fresh process.

    brian2 numbers automatic names ('neurongroup', 'neurongroup_1', ...) past every Brian2 object alive in
    the process, so loading one script twice (or after building other networks) renamed its NIR nodes, and
    with them the input names an .npz must use. Objects alive before the script are held (their ids stay
    unique) and left out of the names taken."""
    from brian2.core.names import Nameable, find_name

    before = [o for o in (r() for r in list(Nameable.__instances__())) if o is not None]
    old = {id(o) for o in before}

    def fresh(name: str, names: Any = None) -> str:
        if names is None:
            alive = (r() for r in list(Nameable.__instances__()))
            names = {o.name for o in alive if o is not None and id(o) not in old and hasattr(o, "name")}
        return find_name(name, names)

    fresh.held = before  # type: ignore[attr-defined]
    return fresh


def collect_script(p: Path) -> tuple[Any, dict[str, Any]]:
    """Run a Brian2 script without simulating it; return (the network it would run, its namespace).

    `run(...)` and `Network.run(...)` are intercepted (recorded, not simulated), so the conversion time does
    not depend on the simulated duration. The network is the one Network the script defines (several names
    for one object are one network), or, with none, the objects of its `run()` call (brian2's magic network),
    or, without a run() call, every Brian2 object the script leaves at module level. Several distinct
    networks are an error that names them.
    """
    import brian2
    from brian2.core.magic import MagicNetwork

    rec = _Recorder()
    saved = (brian2.run, brian2.core.magic.run, brian2.Network.run)
    names_saved = brian2.core.names.find_name
    brian2.core.names.find_name = _fresh_names()
    target = brian2.prefs.codegen.target
    # nothing is simulated, so only set-up code runs (connect(), variable assignment): numpy needs no C compiler,
    # where brian2's default may compile Cython for a minute on first use (a script's own choice still wins)
    brian2.prefs.codegen.target = "numpy"
    brian2.run = brian2.core.magic.run = rec.run
    brian2.Network.run = lambda net, *a, **k: rec.network_run(net, *a, **k)
    failure: str | None = None
    try:
        with _stdout_to_stderr():
            try:
                ns = runpy.run_path(str(p), run_name="__spikeforge_brian2__")
            except SpikeforgeError:
                raise
            except Exception as exc:
                if not (rec.networks or rec.magic):
                    raise SpikeforgeError(f"running the Brian2 script failed ({type(exc).__name__}: {exc})",
                                          file=str(p)) from None
                # code after run() reads results of a simulation that did not happen; the network is built
                failure = f"{type(exc).__name__}: {exc}"
                ns = rec.namespace
    finally:
        brian2.run, brian2.core.magic.run, brian2.Network.run = saved
        brian2.core.names.find_name = names_saved
        brian2.prefs.codegen.target = target
    named: dict[int, tuple[Any, list[str]]] = {}
    for key, v in ns.items():
        if isinstance(v, brian2.Network) and not isinstance(v, MagicNetwork):
            named.setdefault(id(v), (v, []))[1].append(key)
    for net in rec.networks:
        if not isinstance(net, MagicNetwork):
            named.setdefault(id(net), (net, []))
    if len(named) > 1:
        desc = "; ".join(f"'{net.name}'" + (f" (bound to {', '.join(keys)})" if keys else "")
                         for net, keys in named.values())
        raise SpikeforgeError(f"the script builds {len(named)} distinct brian2 Networks ({desc}); spikeforge "
                              f"converts one: keep one Network in the file", file=str(p))
    if named:
        net = next(iter(named.values()))[0]
    else:
        objs: set[Any] = set().union(*rec.magic) if rec.magic else {
            v for v in ns.values() if isinstance(v, brian2.BrianObject)}
        if not objs:
            raise SpikeforgeError("the script builds no Brian2 objects (no NeuronGroup, no Network)", file=str(p))
        net = brian2.Network(*sorted(objs, key=lambda o: o.name))
    namespace = {**ns, **rec.namespace}
    if failure:
        namespace["__spikeforge_warning__"] = f"the script raised after run() ({failure}); converted the " \
                                               f"network it built before that"
    return net, namespace


def _resolver(group: Any, extra: dict[str, Any]):
    """Value (SI float or per-neuron array) of an identifier in a group's context."""
    import brian2

    def value(name: str) -> np.ndarray:
        if name in group.variables and name not in ("t", "dt", "N", "i", "lastspike", "not_refractory"):
            v = group.variables[name]
            if hasattr(v, "get_value"):
                return np.asarray(v.get_value(), dtype=np.float64)
        for space in (group.namespace or {}, extra):
            if name in space:
                return np.asarray(space[name], dtype=np.float64)
        if hasattr(brian2, name):
            return np.asarray(getattr(brian2, name), dtype=np.float64)
        raise UnsupportedError(f"cannot resolve identifier '{name}'", node=group.name)

    return value


def _evaluate(expr: Any, symbols: dict[str, Any], value) -> np.ndarray:
    import sympy

    free = sorted(expr.free_symbols, key=str)
    if not free:
        return np.asarray(float(expr), dtype=np.float64)
    fn = sympy.lambdify(free, expr, "numpy")
    return np.asarray(fn(*[value(str(s)) for s in free]), dtype=np.float64)


class _Neuron:
    """What one NeuronGroup maps to."""

    def __init__(self, group: Any, extra: dict[str, Any]):
        from brian2.parsing.sympytools import str_to_sympy

        self.group = group
        self.name = group.name
        self.n = int(group.N)
        self.dt = float(group.clock.dt_)
        value = _resolver(group, extra)
        eqs = group.equations
        diff = [e for e in eqs.values() if e.type == "differential equation"]
        states = {e.varname for e in diff}
        self.method = group.state_updater.method_choice
        if not isinstance(self.method, str):
            self.method = "exact"
        self.syn_var = None
        self.tau_syn = None
        for e in diff:
            if "xi" in str(e.expr.code) or e.expr.code.count("xi_"):
                raise UnsupportedError(f"equation 'd{e.varname}/dt = {e.expr.code}' is stochastic (xi)",
                                       node=self.name)
        if "v" not in eqs.names:
            raise UnsupportedError("no membrane variable 'v' (only LIF/IF/CUBA LIF/LI with v are supported)",
                                   node=self.name)
        exprs = {e.varname: str_to_sympy(e.expr.code) for e in diff}
        # NIR states start at 0: voltages are stored relative to the initial v (an exact shift for linear
        # dynamics and reset-to-value); the offset is kept in metadata.
        self.v0 = np.broadcast_to(np.asarray(group.variables["v"].get_value(), np.float64), (self.n,)).copy()
        for s in states - {"v"}:
            if np.any(np.asarray(group.variables[s].get_value()) != 0):
                raise UnsupportedError(f"synaptic variable '{s}' must start at 0", node=self.name)
        import sympy

        sym = {s: sympy.Symbol(s, real=True) for s in states | {"v"}}
        other_states = states - {"v"}
        if len(other_states) > 1:
            extra_eq = next(e for e in diff if e.varname not in ("v",))
            code = str(extra_eq.expr.code)
            code = code if len(code) < 60 else code[:57] + "..."
            raise UnsupportedError(
                f"NeuronGroup has {len(states)} state variables ({', '.join(sorted(states))}), e.g. "
                f"'d{extra_eq.varname}/dt = {code}'; only v plus one decaying synaptic variable map to NIR "
                f"(LIF, IF, CUBA LIF, LI), not conductance models such as Hodgkin-Huxley", node=self.name)
        if other_states:
            (iv,) = other_states
            f_i = exprs[iv]
            sv = sympy.Symbol(iv, real=True)
            lin = sympy.diff(f_i, sv)
            if (f_i - lin * sv).simplify() != 0 or lin.free_symbols & set(sym.values()) or sym["v"] in f_i.free_symbols:
                raise UnsupportedError(f"equation 'd{iv}/dt = {eqs[iv].expr.code}' is not a decaying synaptic "
                                       f"variable d{iv}/dt = -{iv}/tau_syn", node=self.name)
            self.syn_var = iv
            self.tau_syn = -1.0 / _evaluate(lin, sym, value)
        if "v" in exprs:
            f = exprs["v"]
            v = sym["v"]
            state_syms = set(sym.values())
            dv = sympy.diff(f, v)
            bad = [str(s) for s in (dv.free_symbols & state_syms)]
            coef_i = sympy.diff(f, sym[self.syn_var]) if self.syn_var else sympy.Integer(0)
            bad += [str(s) for s in (coef_i.free_symbols & state_syms)]
            if bad:
                raise UnsupportedError(f"equation 'dv/dt = {eqs['v'].expr.code}' is not linear in its state variables "
                                       f"({', '.join(sorted(set(bad)))}); supported: LIF, IF, CUBA LIF, LI "
                                       f"(e.g. not Hodgkin-Huxley)", node=self.name)
            c0 = f.subs({s: 0 for s in state_syms})
            rest = sympy.expand(f - dv * v - coef_i * (sym[self.syn_var] if self.syn_var else 0) - c0)
            if rest != 0:
                raise UnsupportedError(f"equation 'dv/dt = {eqs['v'].expr.code}' is not linear in its state "
                                       f"variables", node=self.name)
            k = _evaluate(dv, sym, value)
            if np.all(k == 0):
                if self.syn_var:
                    raise UnsupportedError("IF neuron (no leak) with a synaptic current is not supported",
                                           node=self.name)
                self.kind = "IF"
            else:
                if np.any(k >= 0):
                    raise UnsupportedError(f"equation 'dv/dt = {eqs['v'].expr.code}' does not decay (d/dv >= 0)",
                                           node=self.name)
                self.kind = "LIF"
                self.tau = -1.0 / k
                self.v_leak = _evaluate(c0, sym, value) * self.tau
                self.R = _evaluate(coef_i, sym, value) * self.tau if self.syn_var else None
        else:
            self.kind = "IF"  # v is a parameter changed only by synapses
        thr = group.events.get("spike") if hasattr(group, "events") else None
        self.spiking = thr is not None
        if not self.spiking:
            if self.kind == "IF":
                raise UnsupportedError("an IF group without threshold is not supported", node=self.name)
            self.kind = "LI"
            return
        ref = float(np.max(np.asarray(getattr(group, "_refractory", 0) or 0, dtype=np.float64)))
        if isinstance(getattr(group, "_refractory", None), str) or ref > 0:
            raise UnsupportedError(f"refractory period {group._refractory!r} has no NIR equivalent (the reference "
                                   f"simulator would let the neuron fire during it); use refractory=0*ms",
                                   node=self.name)
        m = re.fullmatch(r"\s*v\s*(>=|>)\s*(.+?)\s*", thr)
        if not m:
            raise UnsupportedError(f"threshold '{thr}' is not of the form 'v > expr'", node=self.name)
        self.cmp = m.group(1)
        self.v_th = _evaluate(str_to_sympy(m.group(2)), sym, value)
        reset = group.event_codes.get("spike", "") if hasattr(group, "event_codes") else ""
        stmts = [s for s in re.split(r"[\n;]", reset or "") if s.strip()]
        self.reset, self.v_reset = "none", None
        for s in stmts:
            mm = _STATEMENT.match(s)
            if not mm or mm.group(1) != "v":
                raise UnsupportedError(f"reset statement '{s.strip()}' is not supported (v = expr or v -= v_th)",
                                       node=self.name)
            rhs = str_to_sympy(mm.group(3))
            if mm.group(2) == "=" and sym["v"] not in rhs.free_symbols:
                self.reset, self.v_reset = "zero", _evaluate(rhs, sym, value)
            else:
                amount = rhs if mm.group(2) == "-=" else (sym["v"] - rhs if mm.group(2) == "=" else None)
                if amount is None or sym["v"] in amount.free_symbols or \
                        not np.allclose(_evaluate(amount, sym, value), self.v_th):
                    raise UnsupportedError(f"reset statement '{s.strip()}' is neither v = const nor v -= v_th",
                                           node=self.name)
                self.reset = "subtract"
        if self.reset == "none":
            raise UnsupportedError("NeuronGroup without a reset is not supported", node=self.name)
        if self.reset == "subtract" and np.any(self.v0 != 0):
            raise UnsupportedError("reset by subtraction needs v = 0 initially (NIR states start at 0)",
                                   node=self.name)

    def _vr(self) -> np.ndarray:
        return np.zeros(self.n) if self.v_reset is None else np.asarray(self.v_reset, np.float64)

    def integration(self) -> str:
        if self.method in ("exact", "linear", "exponential_euler"):
            return "exact"
        if self.method == "euler":
            return "euler"
        raise UnsupportedError(f"integration method '{self.method}' is not supported (exact, linear, euler)",
                               node=self.name)

    def gain_v(self) -> np.ndarray:
        """r such that an input x applied in the integration equals brian2's jump v += x one step earlier."""
        if self.kind == "IF":
            return np.ones(self.n)
        if self.integration() == "exact":
            a = np.exp(-self.dt / self.tau)
            return a / (1 - a)
        return self.tau / self.dt - 1.0

    def node(self, target: str) -> nir.NIRNode:
        b = lambda x: np.broadcast_to(np.asarray(x, np.float32), (self.n,)).copy()  # noqa: E731
        v0 = self.v0
        meta = {"spikeforge.converted_from": f"brian2.NeuronGroup ({self.kind})",
                "spikeforge.v_offset": v0.astype(np.float32),
                "spikeforge.source": {"equations": str(self.group.equations).strip(), "method": self.method},
                "spikeforge.brian2_target": target}
        if self.kind != "IF":
            meta["spikeforge.integration"] = self.integration()
        if self.spiking:
            meta.update({"spikeforge.reset": self.reset, "spikeforge.reset_timing": "immediate",
                         "spikeforge.threshold_cmp": self.cmp})
        if self.kind == "IF":
            if self.reset == "zero":
                meta["spikeforge.reset_timing"] = "delayed"  # jumps in the spiking step are lost, as in brian2
            return nir.IF(r=b(1.0), v_threshold=b(self.v_th - v0), v_reset=b(self._vr() - v0), metadata=meta)
        if self.syn_var and target == self.syn_var:
            meta["spikeforge.cuba_order"] = "current_first"
            if self.integration() == "exact":
                meta["spikeforge.note"] = ("brian2 integrates the coupled linear system exactly; the reference "
                                           "simulator holds the current over the step (approximation)")
            # brian2 adds the jump to I after the step; I then drives v from the next step on: r = R, and the
            # input scaling that turns x into a jump of x in the integrated current.
            r = self.R
            if self.integration() == "euler":
                w_in = self.tau_syn / self.dt
            else:
                w_in = 1.0 / (1.0 - np.exp(-self.dt / self.tau_syn))
            cls = nir.CubaLIF if self.spiking else nir.CubaLI
            kw = dict(tau_syn=b(self.tau_syn), tau_mem=b(self.tau), r=b(r), v_leak=b(self.v_leak - v0), w_in=b(w_in))
            if self.spiking:
                kw.update(v_threshold=b(self.v_th - v0), v_reset=b(self._vr() - v0))
            return cls(**kw, metadata=meta)
        r = self.gain_v()
        if self.spiking and self.reset == "zero":
            # brian2 resets *after* this step's jumps (they are lost) and integrates from v_r: the refsim's
            # delayed reset to v_r relaxed by one step towards v_leak reproduces that exactly.
            a = np.exp(-self.dt / self.tau) if self.integration() == "exact" else 1 - self.dt / self.tau
            v_r = self.v_leak + (self._vr() - self.v_leak) * a
            meta.update({"spikeforge.reset_timing": "delayed", "spikeforge.brian2_v_reset": self._vr() - v0})
            return nir.LIF(tau=b(self.tau), r=b(r), v_leak=b(self.v_leak - v0),
                           v_threshold=b(self.v_th - v0), v_reset=b(v_r - v0), metadata=meta)
        if self.spiking:
            return nir.LIF(tau=b(self.tau), r=b(r), v_leak=b(self.v_leak - v0),
                           v_threshold=b(self.v_th - v0), v_reset=b(self._vr() - v0), metadata=meta)
        return nir.LI(tau=b(self.tau), r=b(r), v_leak=b(self.v_leak - v0), metadata=meta)


def _synapse_terms(syn: Any, extra: dict[str, Any]) -> tuple[str, np.ndarray]:
    """(target variable, per-synapse increment in SI) from on_pre."""
    from brian2.parsing.sympytools import str_to_sympy

    code = syn.pre.code if hasattr(syn, "pre") else ""
    stmts = [s for s in re.split(r"[\n;]", code) if s.strip()]
    if len(stmts) != 1:
        raise UnsupportedError(f"on_pre '{code.strip()}': exactly one statement 'x += expr' is supported",
                               node=syn.name)
    m = _STATEMENT.match(stmts[0])
    if not m or m.group(2) != "+=":
        raise UnsupportedError(f"on_pre '{stmts[0].strip()}' is not 'x += expr'", node=syn.name)
    target = m.group(1).removesuffix("_post")
    expr = str_to_sympy(m.group(3))
    n = len(syn.i[:])

    def value(name: str) -> np.ndarray:
        if name in syn.variables and name not in ("i", "j", "N", "t", "dt"):
            v = syn.variables[name]
            if hasattr(v, "get_value"):
                return np.broadcast_to(np.asarray(v.get_value(), np.float64), (n,))
        if name.endswith("_pre") or name.endswith("_post"):
            raise UnsupportedError(f"on_pre expression uses '{name}' (neuron state), only constants and synaptic "
                                   f"variables are supported", node=syn.name)
        return _resolver(syn, extra)(name)

    return target, np.broadcast_to(_evaluate(expr, {}, value), (n,)).astype(np.float64)


def from_brian2(network_or_path: Any, namespace: dict[str, Any] | None = None, dt: float | None = None,
                **_: Any) -> nir.NIRGraph:
    """brian2 Network (or a .py file defining one) -> flat NIR graph (see the module docstring).

    External constants (tau, thresholds) are resolved as brian2 does at `run`: the groups' own namespace,
    then `namespace`, else the caller's local and global variables (or the script's globals).
    """
    import brian2

    net, extra = _find_network(network_or_path)
    if namespace is not None:
        extra = {**extra, **namespace}
    elif not extra:
        import inspect

        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        if caller is not None:
            extra = {**caller.f_globals, **caller.f_locals}
        del frame, caller
    objs = sorted(net.objects, key=lambda o: o.name)
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    neurons: dict[str, _Neuron] = {}
    sizes: dict[str, int] = {}
    dts: set[float] = set()
    for o in objs:
        if isinstance(o, (brian2.PoissonGroup, brian2.SpikeGeneratorGroup)):
            meta = {"spikeforge.converted_from": f"brian2.{type(o).__name__}"}
            if isinstance(o, brian2.PoissonGroup):
                meta["spikeforge.rates_hz"] = np.asarray(o.rates[:], np.float64)
            nodes[o.name] = nir.Input(input_type={"input": np.array([int(o.N)])}, metadata=meta)
            sizes[o.name] = int(o.N)
            dts.add(float(o.clock.dt_))
        elif isinstance(o, brian2.NeuronGroup):
            neurons[o.name] = _Neuron(o, extra)
            sizes[o.name] = int(o.N)
            dts.add(float(o.clock.dt_))
        elif isinstance(o, (brian2.Synapses, brian2.SpikeMonitor, brian2.StateMonitor, brian2.PopulationRateMonitor)):
            continue
        elif type(o).__name__ in ("Clock", "NetworkOperation") or isinstance(o, brian2.Network):
            continue
        else:
            raise UnsupportedError(f"Brian2 object of type {type(o).__name__} is not supported", node=o.name)
    if len(dts) != 1:
        raise UnsupportedError(f"all groups must share one clock dt, found {sorted(dts)} s")
    clock_dt = dts.pop()
    if dt is not None and not np.isclose(float(dt), clock_dt, rtol=1e-9, atol=0):
        raise SpikeforgeError(f"the Brian2 network runs at dt={clock_dt} s, not the requested {dt} s; set "
                              f"defaultclock.dt (or the groups' dt) in the model instead")
    dt = clock_dt
    syns = [o for o in objs if isinstance(o, brian2.Synapses)]
    targets: dict[str, str] = {}
    for s in syns:
        post = s.target.name
        if post not in neurons:
            raise UnsupportedError(f"Synapses target {type(s.target).__name__} '{post}' is not a NeuronGroup",
                                   node=s.name)
        tgt, _ = _synapse_terms(s, extra)
        nrn = neurons[post]
        if tgt not in ("v", nrn.syn_var):
            raise UnsupportedError(f"on_pre changes '{tgt}', which is neither v nor the synaptic variable of "
                                   f"'{post}'", node=s.name)
        if targets.setdefault(post, tgt) != tgt:
            raise UnsupportedError(f"synapses into '{post}' change both {targets[post]} and {tgt}; NIR neurons have "
                                   f"one input", node=s.name)
    for name, nrn in neurons.items():
        nodes[name] = nrn.node(targets.get(name, "v"))
    for s in syns:
        pre, post = s.source.name, s.target.name
        if pre not in sizes:
            raise UnsupportedError(f"Synapses source '{pre}' is not a NeuronGroup/PoissonGroup/SpikeGeneratorGroup",
                                   node=s.name)
        _, w = _synapse_terms(s, extra)
        i, j = np.asarray(s.i[:], int), np.asarray(s.j[:], int)
        delay = np.broadcast_to(np.asarray(s.delay[:], np.float64), (len(i),))
        steps = np.floor(delay / dt + 0.5).astype(int) + 1  # + 1: brian2 applies on_pre after this step's integration
        for d in sorted(set(steps.tolist())):
            sel = steps == d
            W = np.zeros((sizes[post], sizes[pre]), np.float64)
            np.add.at(W, (j[sel], i[sel]), w[sel])
            dn, wn = f"{s.name}_delay{d}", f"{s.name}_w{d}"
            nodes[dn] = nir.Delay(delay=np.full(sizes[pre], d * dt, np.float32),
                                  metadata={"spikeforge.note": "synaptic delay + one step of brian2 latency",
                                            "spikeforge.delay_steps": int(d)})
            nodes[wn] = nir.Linear(weight=W.astype(np.float32),
                                   metadata={"spikeforge.converted_from": "brian2.Synapses",
                                             "spikeforge.source": {"on_pre": s.pre.code.strip()}})
            edges += [(pre, dn), (dn, wn), (wn, post)]
    for name, nrn in neurons.items():
        out = f"{name}_out"
        nodes[out] = nir.Output(output_type={"output": np.array([nrn.n])})
        edges.append((name, out))
    meta = {G.DT_KEY: dt, "spikeforge.frontend": "brian2",
            "spikeforge.units": "SI base units (s, V, A, ohm) as plain floats"}
    graph = G.validate(nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False))
    if extra.get("__spikeforge_warning__"):
        G.add_warning(graph, str(extra["__spikeforge_warning__"]))
    return graph


@register(".py")
def load_brian2(path: str | os.PathLike, **options: Any) -> nir.NIRGraph:
    """A Python file that builds one brian2.Network (executed: trusted files only)."""
    if not options.get("trust"):
        raise SpikeforgeError(
            "a Brian2 model file is Python code and loading it executes it; refusing without the trust flag",
            file=str(path), hint="pass --trust (trust=True) if you wrote or reviewed this file",
        )
    options = {k: v for k, v in options.items() if k != "trust"}
    try:
        return from_brian2(Path(path), namespace={}, **options)
    except SpikeforgeError as exc:
        raise type(exc)(exc.reason, file=exc.file or str(path), node=exc.node, field=exc.field,
                        hint=exc.hint) from None
