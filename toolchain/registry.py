"""Backend discovery through the `spikeforge.backends` entry-point group.

Third parties add boards by shipping a package that declares, in its pyproject::

    [project.entry-points."spikeforge.backends"]
    mychip = "mypkg.backend:MyChipBackend"

plus board TOML files whose `backend` key is "mychip" (pass a path with --board).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from .boardspec import Board, get_board
from .errors import BoardError
from .interfaces import Backend

GROUP = "spikeforge.backends"

#: Built-in backends, used when the package metadata is unavailable (running from a source tree).
BUILTIN = {
    "reference": "spikeforge.backends.reference:ReferenceBackend",
    "loihi": "spikeforge.backends.loihi:LoihiBackend",
    "sfq": "spikeforge.backends.sfq:SFQBackend",
    "spinnaker": "spikeforge.backends.spinnaker:SpiNNakerBackend",
    "photonic": "spikeforge.backends.photonic:PhotonicBackend",
    "rram": "spikeforge.backends.rram:RRAMBackend",
}


def _load_target(target: str) -> type[Backend]:
    module, _, attr = target.partition(":")
    mod = __import__(module, fromlist=[attr])
    return getattr(mod, attr)


@cache
def backend_targets() -> dict[str, str]:
    targets = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        targets[ep.name] = ep.value
    return targets


def get_backend(name: str) -> Backend:
    targets = backend_targets()
    if name not in targets:
        raise BoardError(f"no backend named '{name}' is installed; installed: {', '.join(sorted(targets))}")
    try:
        cls = _load_target(targets[name])
    except Exception as exc:
        raise BoardError(f"backend '{name}' ({targets[name]}) failed to load: {exc}") from exc
    return cls()


def backend_for(board: Board | str) -> tuple[Board, Backend]:
    b = get_board(board) if isinstance(board, str) else board
    return b, get_backend(b.backend)
