"""Sparse linear maps of NIR's linear nodes, built from their structure (never from a dense unit basis).

Why: pushing ``np.eye(n_in)`` through a convolution allocates an (n_in x n_out) float64 matrix; for the
NIR paper's N-MNIST CNN that is 2312 x 4624 for the first layer alone and gigabytes over the network.
Here a convolution or pooling layer becomes a CSR matrix with one entry per (output, kernel tap that
lands inside the input): the input *indices* (1-based, 0 = padding) are unfolded with the same
``torch.nn.functional.unfold`` geometry that ``conv2d`` uses, so stride, padding, dilation and groups
mean exactly what the reference simulator computes (tests compare ``A @ x + c`` with the reference
kernel on random inputs). The constant part ``c`` (biases) still comes from the reference kernel run
on one zero input, which is cheap.
"""

from __future__ import annotations

from dataclasses import replace

import nir
import numpy as np
import scipy.sparse as sp

from spikeforge import graph as G
from spikeforge.emulators.loihi import conv_matrix
from spikeforge.errors import UnsupportedError
from spikeforge.refsim import SimConfig, make_kernel


def _pair(v: object, n: int) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(v)).astype(int).ravel()
    return tuple(int(a[0]) for _ in range(n)) if a.size == 1 else tuple(int(x) for x in a[:n])


def _in_shape(name: str, node: nir.NIRNode, n_in: int, dims: int) -> tuple[int, ...]:
    shp = G.node_shape(node, "input")
    if shp is None or len(shp) != dims + 1 or int(np.prod(shp)) != n_in:
        raise UnsupportedError(f"{type(node).__name__} needs its input shape (channels, spatial...) with "
                               f"{n_in} elements; got {shp}", node=name, field="input_type")
    return tuple(int(x) for x in shp)


def linear_map(name: str, node: nir.NIRNode, n_in: int, cfg: SimConfig) -> tuple[sp.csr_matrix, np.ndarray, int]:
    """(A, c, delay_steps) with y = A x + c for a linear node; A sparse, built from the node's structure."""
    if isinstance(node, nir.Delay):
        steps = np.rint(np.asarray(node.delay, dtype=np.float64) / cfg.dt).astype(int)
        if steps.size and np.any(steps != steps.ravel()[0]):
            raise UnsupportedError("per-element delays differ; Loihi lowering needs one delay per Delay node",
                                   node=name, field="delay")
        return sp.identity(n_in, format="csr"), np.zeros(n_in), int(steps.ravel()[0]) if steps.size else 0
    if isinstance(node, nir.Flatten):
        return sp.identity(n_in, format="csr"), np.zeros(n_in), 0
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != n_in:
            raise UnsupportedError(f"weight {w.shape} does not take {n_in} inputs", node=name, field="weight")
        A = sp.csr_matrix(w)
    elif isinstance(node, nir.Scale):
        s = np.broadcast_to(np.asarray(node.scale, dtype=np.float64).reshape(-1), (n_in,))
        A = sp.diags(s, format="csr")
    elif isinstance(node, (nir.Conv1d, nir.Conv2d)):
        dims = 2 if isinstance(node, nir.Conv2d) else 1
        shp = _in_shape(name, node, n_in, dims)
        pad = node.padding
        if isinstance(pad, str):
            if pad != "valid":
                raise UnsupportedError(f"padding '{pad}' is not supported for Loihi; give explicit padding",
                                       node=name, field="padding")
            pad = 0
        A, _ = conv_matrix(np.asarray(node.weight), shp, _pair(node.stride, dims), _pair(pad, dims),
                           _pair(node.dilation, dims), int(node.groups))
    elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        C, H, W = _in_shape(name, node, n_in, 2)
        k = _pair(node.kernel_size, 2)
        scale = 1.0 if isinstance(node, nir.SumPool2d) else 1.0 / (k[0] * k[1])   # count_include_pad=True
        A, _ = conv_matrix(np.full((C, 1, *k), scale), (C, H, W), _pair(node.stride, 2),
                           _pair(node.padding, 2), (1, 1), C)
    else:
        raise UnsupportedError(f"{type(node).__name__} has no linear map", node=name)
    # the constant part (biases) from the reference kernel itself, on one zero input
    kern = make_kernel(node, replace(cfg, dtype="float64"))
    in_shape = G.node_shape(node, "input")
    if in_shape is None or int(np.prod(in_shape)) != n_in:
        in_shape = (n_in,)
    y0, _ = kern.step(np.zeros((1, *in_shape)), kern.init(1))
    c = np.asarray(y0, dtype=np.float64).reshape(-1)
    if c.size != A.shape[0]:
        raise UnsupportedError(f"structured map gives {A.shape[0]} outputs, the reference {c.size}", node=name)
    return A.tocsr(), c, 0
