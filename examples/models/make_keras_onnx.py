"""Build the two Keras models of the conformance matrix and export them with tf2onnx, as a Keras user would.

Why a committed file and a separate environment: TensorFlow (2.21, tensorflow-cpu) and tf2onnx (1.17)
pin numpy/protobuf versions that cannot live beside Lava's numpy<2 in the project's .venv, and the
files are small (a few kB). Regenerate them with::

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 tf2onnx==1.17.0 scikit-learn
    /tmp/tfvenv/bin/python examples/models/make_keras_onnx.py

The models are trained on scikit-learn's 8x8 digits with the same split as spikeforge.models.digits_split
(stratified 80/20, seed 0): a ReLU MLP (Dense 64 -> Dense 10) and a CNN in Keras' default channels-last
layout (Conv2D 8 3x3 same -> ReLU -> AveragePooling2D 2 -> Flatten -> Dense 10). tf2onnx keeps the NHWC
input and wraps the convolution in Transpose nodes; spikeforge's ONNX frontend has to undo that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import tf2onnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    return train_test_split(x, d.target, test_size=0.2, random_state=0, stratify=d.target)


def main() -> None:
    tf.keras.utils.set_random_seed(0)
    xtr, xte, ytr, yte = digits()
    mlp = tf.keras.Sequential([tf.keras.Input((64,)), tf.keras.layers.Dense(64, activation="relu"),
                               tf.keras.layers.Dense(10)])
    cnn = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Conv2D(8, 3, padding="same"),
                               tf.keras.layers.ReLU(), tf.keras.layers.AveragePooling2D(2),
                               tf.keras.layers.Flatten(), tf.keras.layers.Dense(10)])
    for name, model, shape in (("keras_mlp", mlp, (-1, 64)), ("keras_cnn", cnn, (-1, 8, 8, 1))):
        model.compile(optimizer=tf.keras.optimizers.Adam(1e-2),
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        model.fit(xtr.reshape(shape), ytr, epochs=30, batch_size=64, verbose=0)
        acc = model.evaluate(xte.reshape(shape), yte, verbose=0)[1]
        spec = (tf.TensorSpec((None, *shape[1:]), tf.float32, name="input"),)
        # Keras 3 models trip tf2onnx's from_keras (KeyError on output names, a known issue); converting
        # the model's call as a tf.function is the documented route that works
        fn = tf.function(lambda x, m=model: m(x, training=False), input_signature=spec)
        tf2onnx.convert.from_function(fn, input_signature=spec, opset=13,
                                      output_path=str(HERE / f"{name}_tf2onnx.onnx"))
        print(f"{name}: test accuracy {acc:.4f} -> {name}_tf2onnx.onnx")


if __name__ == "__main__":
    main()
