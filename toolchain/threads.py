"""torch on one thread, for the many tiny simulations the backends run while they compile or train.

Why: on a shared 2-core machine torch's default two threads only hand tiny convolutions back and forth;
the Loihi effect measurements took 3-7 s on two threads and 0.2 s on one (measured under load).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_single_thread() -> Iterator[None]:
    """Run the block with torch limited to one intra-op thread, restoring the caller's setting after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
