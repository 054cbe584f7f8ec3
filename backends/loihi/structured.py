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


def conv_matrix(name: str, weight: np.ndarray, in_shape: tuple[int, ...], stride: tuple[int, ...],
                padding: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> tuple[sp.csr_matrix,
                                                                                          tuple[int, ...]]:
    """CSR (n_out, n_in) of a 1-d/2-d cross-correlation (PyTorch's conv semantics) and its output shape."""
    import torch
    import torch.nn.functional as F

    w = np.asarray(weight, dtype=np.float64)
    if w.ndim == 3:                                     # conv1d: treat as 2-d with height 1
        w = w[:, :, None, :]
        in_shape = (in_shape[0], 1, in_shape[1])
        stride, padding, dilation = (1, stride[0]), (0, padding[0]), (1, dilation[0])
    C, H, W = in_shape
    n_out_ch, Cg, kh, kw = w.shape
    if groups < 1 or C % groups or n_out_ch % groups or Cg != C // groups:
        raise UnsupportedError(f"weight {w.shape} does not fit {C} input channels in {groups} groups", node=name,
                               field="groups")
    idx = torch.arange(1, C * H * W + 1, dtype=torch.float64).reshape(1, C, H, W)
    cols = F.unfold(idx, (kh, kw), dilation=dilation, padding=padding, stride=stride)[0].numpy()
    Ho = (H + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    Wo = (W + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    L = cols.shape[1]
    if Ho * Wo != L or Ho < 1 or Wo < 1:
        raise UnsupportedError(f"convolution geometry gives no output for input {in_shape}", node=name)
    kk = Cg * kh * kw
    Og = n_out_ch // groups
    src = cols.astype(np.int64).reshape(groups, kk, L)                  # (groups, Cg*kh*kw, L), 0 = padding
    src = np.repeat(src, Og, axis=0)                                     # (n_out_ch, kk, L)
    vals = np.broadcast_to(w.reshape(n_out_ch, kk, 1), src.shape)
    dst = np.broadcast_to((np.arange(n_out_ch)[:, None, None] * L + np.arange(L)[None, None, :]), src.shape)
    keep = (src > 0) & (vals != 0)
    m = sp.csr_matrix((vals[keep], (dst[keep], src[keep] - 1)), shape=(n_out_ch * L, C * H * W))
    m.sum_duplicates()
    out = (n_out_ch, Ho, Wo) if len(weight.shape) == 4 else (n_out_ch, Wo)
    return m, out


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
        A, _ = conv_matrix(name, np.asarray(node.weight), shp, _pair(node.stride, dims), _pair(pad, dims),
                           _pair(node.dilation, dims), int(node.groups))
    elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        C, H, W = _in_shape(name, node, n_in, 2)
        k = _pair(node.kernel_size, 2)
        scale = 1.0 if isinstance(node, nir.SumPool2d) else 1.0 / (k[0] * k[1])   # count_include_pad=True
        A, _ = conv_matrix(name, np.full((C, 1, *k), scale), (C, H, W), _pair(node.stride, 2),
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
