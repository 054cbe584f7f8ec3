"""Bounds on an NIR (HDF5) file, checked before `nir.read` loads anything.

Why: `nir.read` reads every dataset into memory and recurses into every group. A byte-mutated file
can declare a dataset of terabytes, nest groups thousands deep or hold millions of groups, and then
reading hangs or exhausts memory. This walk looks only at the HDF5 metadata (shapes and dtypes, never
data) with explicit work bounds, so a hostile file costs at most `MAX_OBJECTS` metadata look-ups.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import time
from pathlib import Path

import numpy as np

from .errors import GraphError

MAX_DEPTH = 32
MAX_OBJECTS = 200_000
MAX_DATASET_BYTES = 1 << 30
MAX_TOTAL_BYTES = 1 << 31


#: a trial read that takes longer than this is stopped (a mutated file made `inspect` run past 30 s)
READ_TIMEOUT_S = 30.0


def probe_read(path: Path, timeout: float = READ_TIMEOUT_S) -> None:
    """Read the file once in a forked child first: a crash or hang of the HDF5 C library there is a clean error.

    Why: a byte-mutated NIR file made HDF5 segfault inside `Dataset.__getitem__` (found by the nir-bytes
    fuzzer), which no Python exception handler can catch, and others made reading run for minutes. The
    child does exactly what the real read does (bounds walk, then `nir.read`); only if it exits on its own
    does the parent read the file. Python errors in the child are re-raised by the parent's own read.
    """
    if not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid == 0:  # child: no output, no cleanup handlers, just an exit status
        code = 0
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
            faulthandler.disable()  # a crash here is expected and reported by the parent
            import nir

            check_hdf5(path)
            nir.read(str(path))
        except BaseException:
            code = 1
        os._exit(code)
    deadline = time.monotonic() + timeout
    delay = 0.001
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise GraphError(f"reading did not finish within {timeout:g} s (damaged or hostile HDF5 file)",
                                 file=str(path))
            time.sleep(delay)
            delay = min(0.05, delay * 2)
    except BaseException:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        raise
    if os.WIFSIGNALED(status):
        raise GraphError(f"damaged HDF5 file: the HDF5 library crashed reading it "
                         f"({signal.Signals(os.WTERMSIG(status)).name})", file=str(path))


def check_hdf5(path: Path) -> None:
    """Refuse files whose structure or declared sizes exceed the bounds above (one clear error)."""
    import h5py

    try:
        f = h5py.File(str(path), "r")
    except Exception as exc:  # h5py raises OSError, ValueError, KeyError... for broken files
        raise GraphError(f"not a readable NIR file ({type(exc).__name__}: not HDF5 or damaged)",
                         file=str(path)) from None
    with f:
        try:
            _walk(f, path)
        except GraphError:
            raise
        except Exception as exc:
            raise GraphError(f"not a readable NIR file (damaged HDF5 structure: {type(exc).__name__})",
                             file=str(path)) from None


def _walk(f, path: Path) -> None:
    import h5py

    total = 0
    count = 0
    stack = [(f, 0)]
    while stack:
        group, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise GraphError(f"groups nested deeper than {MAX_DEPTH} levels at '{group.name}'", file=str(path))
        for key in group:
            count += 1
            if count > MAX_OBJECTS:
                raise GraphError(f"more than {MAX_OBJECTS} HDF5 objects", file=str(path))
            link = group.get(key, getlink=True)
            if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)):  # other files, or cycles by name
                raise GraphError(f"'{group.name}/{key}' is an HDF5 {type(link).__name__}; NIR files hold plain "
                                 "groups and datasets only", file=str(path))
            obj = group.get(key, getlink=False)
            if isinstance(obj, h5py.Group):
                stack.append((obj, depth + 1))
            elif isinstance(obj, h5py.Dataset):
                shape = obj.shape or ()
                n = int(np.prod([float(s) for s in shape])) if shape else 1
                nbytes = n * max(1, obj.dtype.itemsize)
                if nbytes > MAX_DATASET_BYTES:
                    raise GraphError(f"dataset declares {nbytes:.3g} bytes (shape {shape}); the maximum is "
                                     f"{MAX_DATASET_BYTES}", file=str(path), field=obj.name)
                total += nbytes
                if total > MAX_TOTAL_BYTES:
                    raise GraphError(f"datasets declare more than {MAX_TOTAL_BYTES} bytes in total",
                                     file=str(path))


def node_types(path: Path, limit: int = 10_000) -> list[str]:
    """The 'type' strings of the nodes in an NIR file (to name an unknown one); empty when unreadable."""
    import h5py

    found: list[str] = []
    try:
        with h5py.File(str(path), "r") as f:
            stack = [f.get("node")]
            while stack and len(found) < limit:
                g = stack.pop()
                if not isinstance(g, h5py.Group):
                    continue
                t = g.get("type")
                if isinstance(t, h5py.Dataset) and t.shape == ():
                    v = t[()]
                    found.append(v.decode(errors="replace") if isinstance(v, bytes) else str(v))
                nodes = g.get("nodes")
                if isinstance(nodes, h5py.Group):
                    stack.extend(nodes.get(k) for k in list(nodes)[:limit])
    except Exception:
        return found
    return found
