"""The photonic DFA backend: lower an NIR MLP to an optical DFA training program, emulate, verify, profile."""

from __future__ import annotations

from typing import Any

import nir
import numpy as np
import torch

from spikeforge.artifact import Artifact
from spikeforge.backends.reference.backend import with_dt
from spikeforge.boards import Board, get_board
from spikeforge.errors import BoardError, InputError, SpikeforgeError
from spikeforge.interfaces import Backend, CompileOptions, CostModel, Emulator
from spikeforge.threads import torch_single_thread

from .cost import PhotonicCostModel
from .dfa import MLPTrainer, fit
from .emit import emit_files
from .lower import as_samples, build_program, make_feedback, make_trainer
from .options import OPTIONS

#: time step recorded for graphs without one (an ANN MLP has no dynamics; spiking graphs carry theirs)
DEFAULT_DT = 1e-3


#: why verify must not count forward agreement as evidence on this board (read by spikeforge.verify)
FORWARD_NOTE = ("the OPU runs only DFA training's backward projection; inference is the host's float forward "
                "pass, equal to the reference by construction. The evidence is the photonic.* checks: optical "
                "DFA training against digital DFA and backprop")


class PhotonicBackend(Backend):
    name = "photonic"
    options = OPTIONS

    def lower(self, graph: nir.NIRGraph, board: Board, options: CompileOptions) -> Artifact:
        opts = options
        if options.dt is None:
            from spikeforge import graph as G

            if G.get_dt(G.validate(graph), None) is None:
                opts = CompileOptions(**{**options.to_dict(), "dt": DEFAULT_DT})
        g, dt = with_dt(graph, opts)
        program, arrays = build_program(g, board, options)
        meta: dict[str, Any] = {"dt": dt, "program": program, "warnings": list(program["warnings"]),
                                "forward_by_construction": FORWARD_NOTE}
        return Artifact(board=board.name, backend=self.name, reference=g, arrays=arrays, meta=meta,
                        files=emit_files(program, board.name), options=options)

    def emulator(self) -> Emulator:
        from spikeforge.emulators.opu import PhotonicEmulator

        return PhotonicEmulator()

    def cost_model(self) -> CostModel:
        return PhotonicCostModel()

    def verify_extra(self, artifact: Artifact, inputs: dict[str, np.ndarray]) -> list[tuple[str, bool, str]]:
        """Short training with optical DFA through the emulator and with BP on the same seed; check alignment
        (cosine of DFA update vs BP gradient per layer) and accuracy against the artifact's thresholds."""
        return run_verification(artifact, inputs)

    def verify_extra_labelled(self, artifact: Artifact, inputs: dict[str, np.ndarray],
                              labels: np.ndarray | None) -> list[tuple[str, bool, str]]:
        """As verify_extra, trained and tested on the user's labelled verify inputs when labels are given."""
        return run_verification(artifact, inputs, labels=labels)


def _board(artifact: Artifact) -> Board | None:
    try:
        return get_board(artifact.board)
    except BoardError:
        return None


def verification_data(artifact: Artifact, inputs: dict[str, np.ndarray], labels: np.ndarray | None = None
                      ) -> tuple[dict[str, np.ndarray], str]:
    """The training data embedded at compile time; with labels, tested on the user's verify inputs (as rates)
    instead of the embedded test part: the program's data trains, the user's held-out data judges."""
    a = artifact.arrays
    if "data/x_train" not in a:
        raise SpikeforgeError("photonic verify needs the training data embedded at compile time; recompile with "
                              "--set photonic.train_data=FILE.npz")
    data = {k[5:]: a[k] for k in a if k.startswith("data/")}
    if labels is None or not inputs:
        return data, "embedded training data"
    program = artifact.meta["program"]
    name, x = next(iter(inputs.items()))
    rates = as_samples(x, int(program["n_inputs"]), f"verify input '{name}'")
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    n_classes = int(program["n_classes"])
    if y.size != rates.shape[0]:
        raise InputError(f"{y.size} labels for {rates.shape[0]} verify samples")
    if y.min() < 0 or y.max() >= n_classes:
        raise InputError(f"labels must lie in [0, {n_classes}); found [{y.min()}, {y.max()}]")
    return ({**data, "x_test": rates, "y_test": y},
            f"trained on the {len(data['x_train'])} embedded samples, tested on the {y.size} labelled verify inputs")


def run_verification(artifact: Artifact, inputs: dict[str, np.ndarray], *, labels: np.ndarray | None = None,
                     epochs: int | None = None, camera: dict[str, Any] | None = None,
                     **faults: Any) -> list[tuple[str, bool, str]]:
    """verify_extra's work. `camera` alters CameraConfig fields, `faults` OPUConfig fields (frame_offset,
    drift_per_frame): fault injection, to check that verify catches a broken co-processor."""
    with torch_single_thread():
        return _verify(artifact, inputs, labels, epochs, camera or {}, faults)


def _verify(artifact: Artifact, inputs: dict[str, np.ndarray], labels: np.ndarray | None, epochs: int | None,
            camera_changes: dict[str, Any], faults: dict[str, Any]) -> list[tuple[str, bool, str]]:
    program = artifact.meta["program"]
    thr = program["verify"]
    epochs = int(epochs if epochs is not None else thr["verify_epochs"])
    data, source = verification_data(artifact, inputs, labels)
    board = _board(artifact)
    seed = int(artifact.options.seed)
    train = program["training"]
    results: list[tuple[str, bool, str]] = []
    acc: dict[str, float] = {}
    optical: MLPTrainer | None = None
    spiking = program["mode"] == "spiking"
    methods = ("odfa", "dfa") if spiking else ("odfa", "dfa", "bp")  # BPTT is too slow for a verify run
    n_train = len(data["x_train"])
    for method in methods:
        fb = make_feedback(program, board, method, device=faults, **camera_changes)
        tr = make_trainer(program, artifact.arrays, method, fb, seed=seed)
        r = fit(tr, data["x_train"][:n_train], data["y_train"][:n_train], epochs=epochs,
                batch=int(train["batch"]), seed=seed, x_test=data["x_test"], y_test=data["y_test"])
        acc[method] = r["accuracy"]
        if method == "odfa":
            optical = tr
    assert optical is not None
    xb = torch.tensor(data["x_train"][:256], dtype=torch.float32)
    yb = torch.tensor(data["y_train"][:256], dtype=torch.int64)
    for layer, cos in optical.alignment(xb, yb).items():
        ok = cos >= thr["min_alignment"]
        results.append((f"photonic.alignment.{layer}", ok,
                        f"cos(DFA update, BP gradient) = {cos:.3f} (min {thr['min_alignment']}) after {epochs} epochs"))
    for layer, cos in optical.feature_alignment(xb, yb).items():  # conv=backprop: BP of the DFA delta vs true BP
        ok = cos >= thr["min_alignment"]
        results.append((f"photonic.alignment.{layer}", ok,
                        f"cos(backprop of the DFA delta, BP gradient) = {cos:.3f} (min {thr['min_alignment']}) "
                        f"after {epochs} epochs (convolution trained on the host)"))
    results.append(("photonic.accuracy", acc["odfa"] >= thr["min_accuracy"],
                    f"optical DFA test accuracy {acc['odfa']:.3f} (min {thr['min_accuracy']}; {source})"))
    gap = acc["dfa"] - acc["odfa"]
    results.append(("photonic.gap_to_digital_dfa", gap <= thr["max_gap_to_dfa"],
                    f"digital DFA {acc['dfa']:.3f} - optical DFA {acc['odfa']:.3f} = {gap:.3f} "
                    f"(max {thr['max_gap_to_dfa']}; BP on the same seed: "
                    f"{'not run (spiking)' if 'bp' not in acc else format(acc['bp'], '.3f')})"))
    if "bp" in acc:  # the user's question: what does training on the OPU cost against plain backprop?
        gap_bp = acc["bp"] - acc["odfa"]
        limit = float(thr.get("max_gap_to_bp", 0.10))
        results.append(("photonic.gap_to_backprop", gap_bp <= limit,
                        f"backprop {acc['bp']:.3f} - optical DFA {acc['odfa']:.3f} = {gap_bp:.3f} (max {limit}; "
                        f"same data, seed and {epochs} epochs)"))
    return results
