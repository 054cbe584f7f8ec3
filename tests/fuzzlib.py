"""Fuzzers for every loader: structured (hypothesis) and byte-mutation, with outcome counting.

Outcomes per case: `ok` (accepted, and for graphs also run a few steps on the reference simulator),
`clean` (refused with a SpikeforgeError), `crash` (any other exception), `hang` (> HANG_S seconds),
`memory` (MemoryError under the campaign's address-space limit). CI runs a small budget in-process
(tests/test_fuzz.py); the campaign (`python -m tests.fuzzlib LOADER N`, run by the slow test) runs
each loader in a child process with an address-space limit and prints its counts as JSON.
"""

from __future__ import annotations

import json
import random
import resource
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import nir
import numpy as np
import onnx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from spikeforge import graph as G
from spikeforge import models, refsim
from spikeforge.errors import SpikeforgeError

HANG_S = 10.0
TRACE = __import__("os").environ.get("SPIKEFORGE_FUZZ_TRACE")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"
BAD_NUMBERS = [0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e30, -1e-30, 1e-300, 2.0**40]


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def classify(fn: Callable[[], object], record: Counter, failures: list[str], label: str = "") -> str:
    """Run one case with a wall-clock bound; count its outcome; keep the first lines of crashes."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    t0 = time.perf_counter()
    try:
        fn()
        outcome = "ok"
    except SpikeforgeError:
        outcome = "clean"
    except Hang:
        outcome = "hang"
    except MemoryError:
        outcome = "memory"
    except Exception as exc:  # noqa: BLE001 - this is what we count
        outcome = "crash"
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        failures.append(f"{label} {type(exc).__name__}: {str(exc)[:160]} at {Path(tb.filename).name}:{tb.lineno}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if outcome == "ok" and time.perf_counter() - t0 > HANG_S:
        outcome = "hang"
    record[outcome] += 1
    return outcome


# ------------------------------------------------------------------------------------------ running graphs
def run_graph(g: nir.NIRGraph, steps: int = 3) -> None:
    """Every accepted graph runs a few steps on the reference simulator (what verify would do)."""
    from spikeforge.inputs import synthetic_inputs

    x = synthetic_inputs(g, timesteps=steps, batch=1, rate=0.5)
    refsim.simulate(g, x, dt=G.get_dt(g) or 1e-3)


def load_and_run(path: Path, **options) -> None:
    from spikeforge.frontends import load_model

    run_graph(load_model(path, **options))


# ------------------------------------------------------------------------------------------ NIR graphs
def _lif(n: int) -> nir.LIF:
    return nir.LIF(tau=np.full(n, 0.01), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                   v_reset=np.zeros(n))


def base_graphs() -> list[nir.NIRGraph]:
    from tests.conftest import lif_mlp

    conv = nir.Conv2d(input_shape=np.array([6, 6]), weight=np.ones((2, 1, 3, 3), np.float32), stride=1,
                      padding=0, dilation=1, groups=1, bias=np.zeros(2, np.float32))
    conv_g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([1, 6, 6])), "conv": conv, "lif": _lif(32).__class__(
            tau=np.full((2, 4, 4), 0.01), r=np.full((2, 4, 4), 10.0), v_leak=np.zeros((2, 4, 4)),
            v_threshold=np.ones((2, 4, 4)), v_reset=np.zeros((2, 4, 4))),
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "flat": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1),
            "output": nir.Output(np.array([8]))},
        edges=[("input", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "flat"), ("flat", "output")],
        metadata={"spikeforge.dt": 1e-3}, type_check=False)
    rec = lif_mlp()
    rec.nodes["rec"] = nir.Linear(weight=np.eye(6, dtype=np.float32) * 0.5)
    rec.edges += [("lif1", "rec"), ("rec", "lif1")]
    delay = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([3])), "d": nir.Delay(np.full(3, 2e-3)), "i": nir.IF(
            r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)), "output": nir.Output(np.array([3]))},
        edges=[("input", "d"), ("d", "i"), ("i", "output")], metadata={"spikeforge.dt": 1e-3}, type_check=False)
    cuba = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([4])), "fc": nir.Affine(np.ones((5, 4), np.float32), np.zeros(5)),
               "c": nir.CubaLIF(tau_syn=np.full(5, 5e-3), tau_mem=np.full(5, 1e-2), r=np.ones(5),
                                v_leak=np.zeros(5), v_threshold=np.ones(5), v_reset=np.zeros(5), w_in=np.ones(5)),
               "output": nir.Output(np.array([5]))},
        edges=[("input", "fc"), ("fc", "c"), ("c", "output")], metadata={"spikeforge.dt": 1e-3}, type_check=False)
    return [lif_mlp(), conv_g, rec, delay, cuba]


NUMERIC_FIELDS = ("weight", "bias", "tau", "r", "v_leak", "v_threshold", "v_reset", "tau_syn", "tau_mem",
                  "w_in", "delay", "scale", "threshold")
INT_FIELDS = ("stride", "padding", "dilation", "groups", "kernel_size", "start_dim", "end_dim")


@st.composite
def nir_cases(draw) -> nir.NIRGraph:
    """A valid-looking graph with 0-3 wrong details."""
    g = draw(st.sampled_from(range(5)))
    graph = base_graphs()[g]
    for _ in range(draw(st.integers(0, 3))):
        names = list(graph.nodes)
        name = draw(st.sampled_from(names))
        node = graph.nodes[name]
        kind = draw(st.sampled_from(["num", "len", "int", "drop_node", "add_edge", "drop_edge", "io", "dt"]))
        if kind == "num":
            fields = [f for f in NUMERIC_FIELDS if getattr(node, f, None) is not None]
            if fields:
                f = draw(st.sampled_from(fields))
                arr = np.array(getattr(node, f), dtype=np.float64)
                if arr.size:
                    idx = draw(st.integers(0, arr.size - 1))
                    arr.ravel()[idx] = draw(st.sampled_from(BAD_NUMBERS))
                setattr(node, f, arr)
        elif kind == "len":
            fields = [f for f in NUMERIC_FIELDS if getattr(node, f, None) is not None]
            if fields:
                f = draw(st.sampled_from(fields))
                n = draw(st.sampled_from([0, 1, 2, 7]))
                shape = draw(st.sampled_from([(n,), (n, 3), (2, n, 1, 1)]))
                setattr(node, f, np.ones(shape))
        elif kind == "int":
            fields = [f for f in INT_FIELDS if hasattr(node, f)]
            if fields:
                f = draw(st.sampled_from(fields))
                setattr(node, f, draw(st.sampled_from([0, -1, 1, 3, 5000, np.array([1, 2, 3]), np.array([0, 1])])))
        elif kind == "drop_node" and len(names) > 1:
            del graph.nodes[name]
        elif kind == "add_edge":
            graph.edges.append((name, draw(st.sampled_from(names))))
        elif kind == "drop_edge" and graph.edges:
            graph.edges.pop(draw(st.integers(0, len(graph.edges) - 1)))
        elif kind == "io":
            dims = draw(st.sampled_from([np.array([-4]), np.array([0]), np.array([1 << 30]), np.array([2, 3])]))
            target = "input" if "input" in graph.nodes else name
            graph.nodes[target] = nir.Input(input_type={"input": dims})
        elif kind == "dt":
            graph.metadata["spikeforge.dt"] = draw(st.sampled_from(BAD_NUMBERS + [1e-3]))
    return graph


def nir_structured_case(graph: nir.NIRGraph, tmp: Path) -> Callable[[], None]:
    def case() -> None:
        p = tmp / "case.nir"
        try:
            G.write(graph, p)
        except SpikeforgeError:
            raise
        except Exception as exc:  # nir cannot serialise it: the user could not have made this file
            raise SpikeforgeError(f"unwritable ({type(exc).__name__})") from None
        load_and_run(p)
    return case


# ------------------------------------------------------------------------------------------ ONNX graphs
def onnx_base(kind: int) -> tuple[onnx.ModelProto, np.ndarray]:
    rng = np.random.default_rng(kind)
    if kind == 0:  # Gemm - Relu - Gemm
        w1, b1 = rng.normal(size=(8, 4)).astype(np.float32), np.zeros(8, np.float32)
        w2, b2 = rng.normal(size=(3, 8)).astype(np.float32), np.zeros(3, np.float32)
        nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
                 helper.make_node("Relu", ["h"], ["r"], name="relu1"),
                 helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=1)]
        inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
        calib = rng.random((16, 4)).astype(np.float32)
    else:  # Conv - BatchNorm - Relu - AveragePool - Flatten - Gemm
        w = rng.normal(size=(2, 1, 3, 3)).astype(np.float32)
        nodes = [helper.make_node("Conv", ["x", "w", "cb"], ["c"], name="conv", kernel_shape=[3, 3],
                                  strides=[1, 1], pads=[0, 0, 0, 0]),
                 helper.make_node("BatchNormalization", ["c", "g", "bb", "m", "v"], ["n"], name="bn"),
                 helper.make_node("Relu", ["n"], ["r"], name="relu"),
                 helper.make_node("AveragePool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
                 helper.make_node("Flatten", ["p"], ["f"], name="flat"),
                 helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], name="fc", transB=1)]
        arrs = {"w": w, "cb": np.zeros(2, np.float32), "g": np.ones(2, np.float32), "bb": np.zeros(2, np.float32),
                "m": np.zeros(2, np.float32), "v": np.ones(2, np.float32),
                "w2": rng.normal(size=(3, 8)).astype(np.float32), "b2": np.zeros(3, np.float32)}
        inits = [numpy_helper.from_array(a, n) for n, a in arrs.items()]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 6, 6])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
        calib = rng.random((16, 1, 6, 6)).astype(np.float32)
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), calib


@st.composite
def onnx_cases(draw) -> tuple[bytes, np.ndarray]:
    """A small ONNX ReLU network with 0-3 wrong details (dims, attributes, inputs, shapes)."""
    m, calib = onnx_base(draw(st.integers(0, 1)))
    g = m.graph
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["dims", "shape", "attr_del", "attr_val", "input_del", "input_ren", "zero",
                                     "nan", "reorder", "bn_len", "out"]))
        if kind == "dims" and g.initializer:
            t = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
            del t.dims[:]
            t.dims.extend(draw(st.lists(st.integers(-2, 9), min_size=0, max_size=4)))
        elif kind == "shape" and g.initializer:
            i = draw(st.integers(0, len(g.initializer) - 1))
            name = g.initializer[i].name
            shape = tuple(draw(st.lists(st.integers(1, 9), min_size=1, max_size=4)))
            g.initializer[i].CopyFrom(numpy_helper.from_array(np.ones(shape, np.float32), name))
        elif kind in ("attr_del", "attr_val"):
            n = g.node[draw(st.integers(0, len(g.node) - 1))]
            if n.attribute:
                j = draw(st.integers(0, len(n.attribute) - 1))
                if kind == "attr_del":
                    del n.attribute[j]
                else:
                    a = n.attribute[j]
                    if a.type == onnx.AttributeProto.INTS:
                        del a.ints[:]
                        a.ints.extend(draw(st.lists(st.integers(-3, 5000), min_size=0, max_size=5)))
                    elif a.type == onnx.AttributeProto.INT:
                        a.i = draw(st.integers(-3, 5000))
                    elif a.type == onnx.AttributeProto.FLOAT:
                        a.f = draw(st.sampled_from(BAD_NUMBERS))
        elif kind == "input_del":
            n = g.node[draw(st.integers(0, len(g.node) - 1))]
            if n.input:
                del n.input[draw(st.integers(0, len(n.input) - 1))]
        elif kind == "input_ren":
            n = g.node[draw(st.integers(0, len(g.node) - 1))]
            if n.input:
                n.input[draw(st.integers(0, len(n.input) - 1))] = draw(st.sampled_from(["", "ghost", "x", "y"]))
        elif kind == "zero" and g.initializer:
            i = draw(st.integers(0, len(g.initializer) - 1))
            g.initializer[i].CopyFrom(numpy_helper.from_array(np.zeros((0, 4), np.float32), g.initializer[i].name))
        elif kind == "nan" and g.initializer:
            i = draw(st.integers(0, len(g.initializer) - 1))
            try:
                arr = numpy_helper.to_array(g.initializer[i]).copy() if g.initializer[i].dims else None
            except ValueError:  # dims already broken by an earlier mutation
                arr = None
            if arr is not None and arr.size:
                arr.ravel()[0] = np.nan
                g.initializer[i].CopyFrom(numpy_helper.from_array(arr, g.initializer[i].name))
        elif kind == "reorder" and len(g.node) > 1:
            nodes = list(g.node)
            random.Random(draw(st.integers(0, 99))).shuffle(nodes)
            del g.node[:]
            g.node.extend(nodes)
        elif kind == "bn_len":
            for t in g.initializer:
                if t.name == "v":
                    t.CopyFrom(numpy_helper.from_array(np.ones(draw(st.integers(1, 5)), np.float32), "v"))
        elif kind == "out":
            g.output[0].name = draw(st.sampled_from(["h", "ghost", "x"]))
    return m.SerializeToString(), calib


def onnx_bytes_case(data: bytes, calib: np.ndarray, tmp: Path) -> Callable[[], None]:
    def case() -> None:
        p = tmp / "case.onnx"
        p.write_bytes(data)
        load_and_run(p, calibration=calib, timesteps=5)
    return case


# ------------------------------------------------------------------------------------------ boards, manifests
def board_tables() -> list[dict]:
    import tomllib

    from spikeforge.boardspec import board_files

    return [tomllib.loads(p.read_text()) for p in board_files()]


@st.composite
def board_cases(draw) -> dict:
    tables = board_tables()
    data = json.loads(json.dumps(tables[draw(st.integers(0, len(tables) - 1))]))
    for _ in range(draw(st.integers(0, 3))):
        sections = [s for s in ("limits", "energy", "timing", "arithmetic", "physics", "parameters") if data.get(s)]
        kind = draw(st.sampled_from(["value", "unit", "key", "source", "top", "type"]))
        if not sections:
            break
        sec = draw(st.sampled_from(sections))
        key = draw(st.sampled_from(sorted(data[sec])))
        if not isinstance(data[sec][key], dict) and kind != "type":
            continue  # already replaced by a non-table in an earlier mutation
        if kind == "value":
            data[sec][key]["value"] = draw(st.sampled_from(BAD_NUMBERS + ["x", True, [1, float("nan")], [], 7]))
        elif kind == "unit":
            data[sec][key]["unit"] = draw(st.sampled_from(["parsec", "", "J", 3]))
        elif kind == "key":
            data[sec][key][draw(st.sampled_from(["valu", "extra"]))] = 1
        elif kind == "source":
            data[sec][key]["source"] = draw(st.sampled_from(["", "  ", 5]))
        elif kind == "top":
            data[draw(st.sampled_from(["name", "backend", "description", "notes"]))] = draw(
                st.sampled_from(["", 'x"""\nimport os', 5, ["a"], None]))
        elif kind == "type":
            data[sec][key] = draw(st.sampled_from([5, "x", [1, 2]]))
    return data


def board_case(data: dict) -> Callable[[], None]:
    def case() -> None:
        from spikeforge.boardspec import parse_board

        parse_board(data, "fuzz.toml")
    return case


_ART_CACHE: dict[str, Path] = {}


def template_artifact(root: Path, board: str = "loihi2") -> Path:
    if board not in _ART_CACHE:
        from spikeforge.pipeline import compile_model
        from tests.conftest import lif_mlp

        _ART_CACHE[board] = compile_model(lif_mlp(), board).save(root / f"template-{board}")
    return _ART_CACHE[board]


def _mutate_json(obj, rnd: random.Random, depth: int = 0):
    if isinstance(obj, dict) and obj:
        k = rnd.choice(sorted(obj))
        op = rnd.random()
        if op < 0.25:
            del obj[k]
        elif op < 0.5 or depth > 3:
            obj[k] = rnd.choice([None, 0, -1, "x", [], {}, [1, 2], float("nan"), 1e308, "../../x", True])
        else:
            obj[k] = _mutate_json(obj[k], rnd, depth + 1)
        return obj
    if isinstance(obj, list) and obj:
        obj[rnd.randrange(len(obj))] = rnd.choice([None, -1, "x", {}, 10**12])
        return obj
    return rnd.choice([None, -1, "x", {}, [], 10**12, obj])


def manifest_case(template: Path, tmp: Path, seed: int, inputs: dict) -> Callable[[], None]:
    def case() -> None:
        import shutil

        from spikeforge.artifact import Artifact
        from spikeforge.registry import get_backend

        d = tmp / "art"
        if d.exists():
            shutil.rmtree(d)
        shutil.copytree(template, d)
        rnd = random.Random(seed)
        m = json.loads((d / "manifest.json").read_text())
        for _ in range(rnd.randint(1, 3)):
            m = _mutate_json(m, rnd)
        (d / "manifest.json").write_text(json.dumps(m))
        art = Artifact.load(d)
        get_backend(art.backend).emulator().run(art, inputs)
    return case


# ------------------------------------------------------------------------------------------ byte mutation
def mutate_bytes(data: bytes, rnd: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.random()
        if not b:
            break
        i = rnd.randrange(len(b))
        if op < 0.4:
            for _ in range(rnd.randint(1, 8)):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
        elif op < 0.6:
            n = rnd.randint(1, 64)
            b[i:i + n] = bytes(rnd.randrange(256) for _ in range(n))
        elif op < 0.7:
            del b[i:]
        elif op < 0.8:
            n = rnd.randint(1, 256)
            b[i:i] = b[max(0, i - n):i]
        elif op < 0.9:
            b[i:i + 8] = rnd.choice([b"\xff" * 8, b"\x00" * 8, b"\x7f\xff\xff\xff\xff\xff\xff\xff"])
        else:
            n = rnd.randint(1, 64)
            del b[i:i + n]
    return bytes(b)


def nir_seeds() -> list[bytes]:
    from tests.conftest import lif_mlp

    out = [Path(models.path("digits_snn.nir")).read_bytes()]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.nir"
        G.write(lif_mlp(), p)
        out.append(p.read_bytes())
        for g in base_graphs()[1:]:
            G.write(g, p)
            out.append(p.read_bytes())
    if (SHARED / "lif_norse.nir").exists():
        out.append((SHARED / "lif_norse.nir").read_bytes())
    return out


def npz_seed() -> bytes:
    from spikeforge.npzio import save_npz

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.npz"
        save_npz(p, {"input": (np.random.default_rng(0).random((5, 2, 4)) < 0.5).astype(np.uint8),
                     "labels": np.array([0, 1])})
        return p.read_bytes()


# ------------------------------------------------------------------------------------------ campaign
def warm_up() -> None:
    """Import and run everything once before counting: a first-case import of torch under load can take
    longer than the hang bound, and an alarm inside an import leaves torch half-initialised."""
    import torch  # noqa: F401

    import spikeforge.frontends.onnx  # noqa: F401
    import spikeforge.frontends.torch  # noqa: F401

    for g in base_graphs():
        run_graph(G.validate(g))


def campaign(loader: str, cases: int, seed: int = 0) -> dict:
    """Run `cases` cases of one loader; return counts, case rate and the first crash lines."""
    from spikeforge.inputs import load_inputs
    from tests.conftest import lif_mlp

    counts: Counter = Counter()
    failures: list[str] = []
    rnd = random.Random(seed)
    warm_up()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if loader in ("nir", "onnx", "board"):
            strategy = {"nir": nir_cases(), "onnx": onnx_cases(), "board": board_cases()}[loader]

            @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck), derandomize=True)
            @given(strategy)
            def body(x):
                if loader == "nir":
                    fn = nir_structured_case(x, tmp)
                elif loader == "onnx":
                    fn = onnx_bytes_case(x[0], x[1], tmp)
                else:
                    fn = board_case(x)
                classify(fn, counts, failures, loader)

            body()
        elif loader == "nir-bytes":
            seeds = nir_seeds()
            for i in range(cases):
                data = mutate_bytes(rnd.choice(seeds), rnd)
                (tmp / "m.nir").write_bytes(data)
                if TRACE:  # a case that kills the process (a segfault in a C library) is found by its number
                    Path(TRACE).write_bytes(data)
                classify(lambda: load_and_run(tmp / "m.nir"), counts, failures, f"nir-bytes#{i}")
        elif loader == "onnx-bytes":
            seed_bytes = Path(models.path("digits_mlp.onnx")).read_bytes()
            calib = np.random.default_rng(0).random((16, 64)).astype(np.float32)
            for i in range(cases):
                (tmp / "m.onnx").write_bytes(mutate_bytes(seed_bytes, rnd))
                classify(lambda: load_and_run(tmp / "m.onnx", calibration=calib, timesteps=5), counts, failures,
                         f"onnx-bytes#{i}")
        elif loader == "npz-bytes":
            seed_bytes = npz_seed()
            g = lif_mlp()
            for i in range(cases):
                (tmp / "x.npz").write_bytes(mutate_bytes(seed_bytes, rnd))

                def case():
                    x, _ = load_inputs(tmp / "x.npz", g)
                    refsim.simulate(g, {k: v[:3, :2] for k, v in x.items()}, dt=1e-3)

                classify(case, counts, failures, f"npz-bytes#{i}")
        elif loader == "manifest":
            template = template_artifact(tmp)
            inputs = {"input": (np.random.default_rng(0).random((3, 1, 4)) < 0.5).astype(np.float32)}
            for i in range(cases):
                classify(manifest_case(template, tmp, seed * 1_000_003 + i, inputs), counts, failures,
                         f"manifest#{i}")
        else:
            raise SystemExit(f"unknown loader {loader}")
    elapsed = time.perf_counter() - t0
    return {"loader": loader, "cases": sum(counts.values()), "counts": dict(counts), "seconds": round(elapsed, 1),
            "failures": failures[:20], "distinct_failures": len(set(f.split(" at ")[-1] for f in failures))}


LOADERS = ("nir", "nir-bytes", "onnx", "onnx-bytes", "board", "manifest", "npz-bytes")

if __name__ == "__main__":
    limit = int(float(sys.argv[3]) * (1 << 30)) if len(sys.argv) > 3 else 6 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    result = campaign(sys.argv[1], int(sys.argv[2]))
    sys.stdout.write(json.dumps(result) + "\n")
