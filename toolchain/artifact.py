"""Artifacts: a compiled program as a directory, written atomically and byte-reproducibly.

Layout::

    DIR/manifest.json      format version, tool version, board, backend, input hash, options, meta, file hashes
    DIR/arrays.npz         the program's integer/float tables (weights, thresholds, routing ...)
    DIR/reference.nir      the float graph this program must behave like (what `verify` simulates)
    DIR/program.nir        optional: the lowered / quantised graph, still valid NIR
    DIR/code/...           emitted code (Lava script, PyNN script, netlists ...) and its README
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nir
import numpy as np

from . import __version__
from . import graph as graphmod
from .errors import SpikeforgeError
from .interfaces import CompileOptions
from .npzio import load_npz, save_npz

FORMAT_VERSION = 1


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


def dumps(obj: Any) -> str:
    """Canonical JSON: sorted keys, fixed indentation, trailing newline."""
    return json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n"


@dataclass
class Artifact:
    board: str
    backend: str
    reference: nir.NIRGraph
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str | bytes] = field(default_factory=dict)
    options: CompileOptions = field(default_factory=CompileOptions)
    input_hash: str = ""
    program: nir.NIRGraph | None = None
    path: Path | None = None

    # ---- showing (notebooks and the CLI; see display.py) -------------------------------------------
    @property
    def warnings(self) -> list[str]:
        """Every warning the compile recorded (backend, passes, semantic changes), each once."""
        from .display import artifact_warnings

        return artifact_warnings(self.meta)

    def __repr__(self) -> str:
        from .display import artifact_text

        return artifact_text(self)

    def _repr_html_(self) -> str:
        from .display import artifact_html

        return artifact_html(self)

    # ---- writing -------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write into a temporary sibling directory, then swap it into place: never half-written."""
        target = Path(directory).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and not target.is_dir():
            raise SpikeforgeError("output path exists and is a file, expected a directory", file=str(target))
        if target.exists() and not (target / "manifest.json").exists() and any(target.iterdir()):
            raise SpikeforgeError(
                "output directory exists and is not a spikeforge artifact; refusing to overwrite",
                file=str(target),
            )
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            self._write_into(tmp)
            if target.exists():
                old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self.path = target
        return target

    def _write_into(self, d: Path) -> None:
        files: dict[str, str] = {}
        if self.arrays:
            save_npz(d / "arrays.npz", self.arrays)
            files["arrays.npz"] = hash_file(d / "arrays.npz")
        graphmod.write(self.reference, d / "reference.nir")
        files["reference.nir"] = hash_file(d / "reference.nir")
        if self.program is not None:
            graphmod.write(self.program, d / "program.nir")
            files["program.nir"] = hash_file(d / "program.nir")
        for rel, content in sorted(self.files.items()):
            p = d / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            p.write_bytes(data)
            if rel.endswith(".py") or rel.endswith(".sh"):
                p.chmod(0o755)
            files[rel] = hash_bytes(data)
        manifest = {
            "format_version": FORMAT_VERSION,
            "tool": "spikeforge",
            "tool_version": __version__,
            "board": self.board,
            "backend": self.backend,
            "input_hash": self.input_hash,
            "options": self.options.to_dict(),
            "meta": self.meta,
            "files": files,
            "text_files": sorted(k for k, v in self.files.items() if isinstance(v, str)),
        }
        (d / "manifest.json").write_text(dumps(manifest))

    # ---- reading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: str | os.PathLike) -> Artifact:
        d = Path(directory)
        mpath = d / "manifest.json"
        if not d.is_dir():
            raise SpikeforgeError("artifact directory not found", file=str(d))
        if not mpath.exists():
            raise SpikeforgeError("not a spikeforge artifact (no manifest.json)", file=str(d))
        try:
            manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError as exc:
            raise SpikeforgeError(f"manifest.json is not valid JSON ({exc})", file=str(mpath)) from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise SpikeforgeError(
                f"artifact format {manifest.get('format_version')} is not supported (this spikeforge reads {FORMAT_VERSION})",
                file=str(mpath),
            )
        for rel, digest in manifest.get("files", {}).items():
            p = d / rel
            if not p.exists():
                raise SpikeforgeError("artifact file listed in the manifest is missing", file=str(p))
            if hash_file(p) != digest:
                raise SpikeforgeError("artifact file was modified after compile (hash mismatch)", file=str(p))
        arrays = load_npz(d / "arrays.npz") if (d / "arrays.npz").exists() else {}
        text = set(manifest.get("text_files", []))
        files: dict[str, str | bytes] = {}
        for rel in manifest.get("files", {}):
            if rel in ("arrays.npz", "reference.nir", "program.nir"):
                continue
            raw = (d / rel).read_bytes()
            files[rel] = raw.decode() if rel in text else raw
        return cls(
            board=manifest["board"],
            backend=manifest["backend"],
            reference=graphmod.read(d / "reference.nir"),
            arrays=arrays,
            meta=manifest.get("meta", {}),
            files=files,
            options=CompileOptions.from_dict(manifest.get("options", {})),
            input_hash=manifest.get("input_hash", ""),
            program=graphmod.read(d / "program.nir") if (d / "program.nir").exists() else None,
            path=d,
        )
