"""Deterministic .npz writing and safe reading.

`numpy.savez` stamps each zip member with the current time, so two identical compiles would differ
byte for byte. We write the same format with a fixed timestamp and sorted keys. Reading never
unpickles (`allow_pickle=False`).
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np

from .atomic import atomic_file

_EPOCH = (1980, 1, 1, 0, 0, 0)


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays to `path` atomically and byte-reproducibly."""
    with atomic_file(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key in sorted(arrays):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an .npz file into memory (no pickles). A lone .npy array is a clean InputError."""
    from .errors import InputError

    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.ndarray):  # np.load gives a bare array for .npy: not a context manager
        raise InputError(f"this is a single .npy array {loaded.shape}; spikeforge reads .npz archives of named "
                         "arrays", file=str(path), hint="np.savez('x.npz', input=x, labels=y)")
    with loaded as data:
        out = {k: data[k] for k in data.files}
    for k, v in out.items():  # numpy hands back raw bytes for a zip member that is not a .npy file
        if not isinstance(v, np.ndarray):
            raise ValueError(f"member {k!r} is not a .npy array")
    return out
