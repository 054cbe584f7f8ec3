"""Test accuracy of the bundled example models, as the README's model table states them.

Each model is compiled for `cpu-reference` through the Python API and run by the reference simulator on
the 360 bundled test images (`digits_inputs.npz`: rate-coded spikes for the SNNs, T = 25); the ONNX MLP's
ANN accuracy comes from onnxruntime on the analog pixels, and its converted SNN is scored the same way.

Run: .venv/bin/python benchmarks/bench_models.py [--out DIR]   (about 10 s)
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report  # noqa: E402

import spikeforge as sf  # noqa: E402

#: model -> accuracy it must keep on the reference simulator (what examples/train_digits.py reached)
TARGETS = {"digits_snn.nir": 0.95, "digits_mlp.onnx": 0.95, "digits_lsm.nir": 0.93}


def onnx_ann_accuracy(path: Path, analog: np.ndarray, labels: np.ndarray) -> float:
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return float((s.run(None, {s.get_inputs()[0].name: analog})[0].argmax(1) == labels).mean())


def main() -> int:
    data = dict(np.load(sf.bundled("digits_inputs.npz")))
    report = Report("models", notes=["360 held-out digits test images; reference simulator (cpu-reference), T = 25"])
    for model, goal in TARGETS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            art = sf.compile(sf.bundled(model), "cpu-reference", timesteps=25, calibration=data)
        res = sf.verify(art, sf.bundled("digits_inputs.npz"))
        acc = res.metrics["accuracy_reference"]
        row = {"model": model, "reference simulator accuracy": acc}
        if model.endswith(".onnx"):
            row["ANN accuracy (onnxruntime)"] = onnx_ann_accuracy(sf.bundled(model), data["analog"], data["labels"])
        report.rows.append(row)
        print(row)
        report.target(f"{model}: test accuracy on the reference simulator", acc, goal)
    report.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
