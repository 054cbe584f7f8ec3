"""The Loihi mapper: every per-core limit at once, fan-out re-partitioning, chips, and useful FitErrors."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest

from spikeforge.backends.loihi import LoihiBackend
from spikeforge.boards import get_board, load_board_file
from spikeforge.errors import FitError
from spikeforge.interfaces import CompileOptions


def _board(tmp_path: Path, name: str, **limits: int):
    text = Path(get_board("loihi2").path).read_text().replace('name = "loihi2"', f'name = "{name}"')
    for key, val in limits.items():
        head = f"[limits.{key}]\nvalue = "
        i = text.index(head) + len(head)
        j = text.index("\n", i)
        text = text[:i] + str(val) + text[j:]
    (tmp_path / f"{name}.toml").write_text(text)
    return load_board_file(tmp_path / f"{name}.toml")


def _two_layer(n_in: int, n_a: int, n_b: int, p: float = 0.5, seed: int = 0) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)

    def lif(n):
        return nir.LIF(tau=np.full(n, 0.02), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n))

    g = nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([n_in])),
        nir.Linear(weight=rng.normal(0.3, 1, (n_a, n_in)) * (rng.random((n_a, n_in)) < p)), lif(n_a),
        nir.Linear(weight=rng.normal(0.3, 1, (n_b, n_a)) * (rng.random((n_b, n_a)) < p)), lif(n_b),
        nir.Output(output_type=np.array([n_b])))
    g.metadata = {"spikeforge.dt": 1e-3}
    return g


def test_fan_out_splits_source_population_until_every_core_fits(tmp_path):
    board = _board(tmp_path, "fanout", neurons_per_core=256, fan_out_axons_per_core=400)
    art = LoihiBackend().lower(_two_layer(20, 600, 600), board, CompileOptions(timesteps=10))
    m = art.meta["mapping"]
    assert m["fan_out_rounds"] >= 1 and "0" not in m["caps"] or m["caps"]   # a population was split
    cores = m["cores"]
    assert max(c["fan_out_axons"] for c in cores) <= 400
    assert all(c["neurons"] <= 256 for c in cores)
    # each neuron of the first layer reaches all 3 cores of the second: <= 133 neurons per source core
    first = [c for c in cores if c["pop"] == next(iter(art.meta["program"]["pops"]))["name"]]
    assert max(c["neurons"] for c in first) <= 400 // 3
    x = (np.random.default_rng(1).random((10, 2, 20)) < 0.3).astype(np.float32)
    tr = LoihiBackend().emulator().run(art, {"input": x})
    assert tr.total("packets") > 0


def test_every_limit_is_respected_together(tmp_path):
    board = _board(tmp_path, "tight", neurons_per_core=300, synaptic_memory_per_core=60000,
                   fan_in_axons_per_core=690, fan_out_axons_per_core=600)
    art = LoihiBackend().lower(_two_layer(400, 700, 500, p=0.3), board, CompileOptions(timesteps=5))
    for c in art.meta["mapping"]["cores"]:
        assert c["neurons"] <= 300 and c["synaptic_bytes"] <= 60000
        assert c["fan_in_axons"] <= 690 and c["fan_out_axons"] <= 600
    assert art.meta["mapping"]["binding_limit"] in ("synaptic_memory", "fan_in", "fan_out", "neurons")


def test_too_many_cores_names_the_smallest_board_that_fits(tmp_path):
    board = _board(tmp_path, "small", neurons_per_core=8)
    with pytest.raises(FitError, match=r"needs \d+ cores; the board has 128.*loihi2-kapoho-point"):
        LoihiBackend().lower(_two_layer(10, 900, 300, p=0.1), board, CompileOptions(timesteps=5))


def test_multi_chip_board_places_chips_and_counts_interchip_spikes(tmp_path):
    board = _board(tmp_path, "chips", neurons_per_core=64, cores=8, chips=4)
    art = LoihiBackend().lower(_two_layer(30, 500, 200, p=0.3), board, CompileOptions(timesteps=20))
    m = art.meta["mapping"]
    assert m["chips_used"] >= 2 and {c["chip"] for c in m["cores"]} == set(range(m["chips_used"]))
    x = (np.random.default_rng(2).random((20, 2, 30)) < 0.3).astype(np.float32)
    tr = LoihiBackend().emulator().run(art, {"input": x})
    assert tr.total("interchip_packets") > 0
    assert tr.total("interchip_packets") <= tr.total("packets")
    one = _board(tmp_path, "onechip", neurons_per_core=64, cores=8, chips=1)
    with pytest.raises(FitError, match=r"chip\(s\) of 8 cores needed, the board has 1"):
        LoihiBackend().lower(_two_layer(30, 500, 200, p=0.3), one, CompileOptions(timesteps=20))


def test_kapoho_point_board_is_eight_loihi2_chips():
    b = get_board("loihi2-kapoho-point")
    assert b.backend == "loihi" and int(b.value("limits.chips")) == 8
    assert int(b.value("limits.cores")) == 128 and b.const("limits.chips").status == "published"
