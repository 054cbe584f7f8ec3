"""The dev environment really has every dependency the suite exercises.

Several test modules use `pytest.importorskip` so they stay usable in a partial install; in CI that
would turn a broken install (e.g. torchvision breaking torch) into silent skips. This test makes such
a break fail loudly instead.
"""

from __future__ import annotations

import importlib

import pytest

REQUIRED = ["torch", "onnx", "onnxruntime", "snntorch", "norse.torch", "nirtorch", "brian2", "sklearn",
            "pyNN", "hypothesis", "matplotlib"]


@pytest.mark.parametrize("module", REQUIRED)
def test_dependency_imports(module):
    assert importlib.import_module(module) is not None


def test_lava_imports_through_the_compat_hook():
    from spikeforge.backends.loihi._lava_compat import lava_available

    assert lava_available()
