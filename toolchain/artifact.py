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
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nir
import numpy as np

from . import __version__
from . import graph as graphmod
from .dirswap import new_tmp, parent_lock, recover, swap_in
from .errors import SpikeforgeError
from .interfaces import CompileOptions
from .manifest import FORMAT_VERSION, array_index, check_arrays, parse_manifest
from .npzio import load_npz, save_npz

#: manifest key holding the sha256 of the rest of the manifest: meta is backend data the emulators trust
DIGEST_KEY = "manifest_sha256"


def manifest_digest(manifest: dict[str, Any]) -> str:
    return hash_bytes(dumps({k: v for k, v in manifest.items() if k != DIGEST_KEY}).encode())


#: largest manifest.json read (a manifest is a few kB; a huge one is not ours)
MAX_MANIFEST_BYTES = 64 << 20


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
    #: the full board table (TOML contents) compiled for, so a board file works for every later command
    board_spec: dict[str, Any] | None = None

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
        with parent_lock(target):  # one writer per directory; see toolchain/dirswap.py
            recover(target)
            if target.exists() and not (target / "manifest.json").exists() and any(target.iterdir()):
                raise SpikeforgeError(
                    "output directory exists and is not a spikeforge artifact; refusing to overwrite",
                    file=str(target),
                )
            tmp = new_tmp(target)
            try:
                self._write_into(tmp)
                swap_in(tmp, target)
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
            "arrays": array_index(self.arrays),
        }
        if self.board_spec:
            manifest["board_spec"] = self.board_spec
        manifest[DIGEST_KEY] = manifest_digest(manifest)
        (d / "manifest.json").write_text(dumps(manifest))

    # ---- reading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: str | os.PathLike) -> Artifact:
        """Read an artifact, checking the manifest schema, file hashes and arrays before anything runs."""
        d = Path(directory)
        if not d.exists() and d.parent.is_dir():
            with parent_lock(d.resolve()):  # a save killed between its two renames: bring the old one back
                recover(d.resolve())
        mpath = d / "manifest.json"
        if not d.is_dir():
            raise SpikeforgeError("artifact directory not found", file=str(d))
        if not mpath.is_file():
            raise SpikeforgeError("not a spikeforge artifact (no manifest.json)", file=str(d))
        if mpath.stat().st_size > MAX_MANIFEST_BYTES:
            raise SpikeforgeError(f"manifest.json is larger than {MAX_MANIFEST_BYTES} bytes", file=str(mpath))
        try:
            raw = json.loads(mpath.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise SpikeforgeError(f"manifest.json is not valid JSON ({type(exc).__name__})", file=str(mpath)) from None
        m = parse_manifest(raw, str(mpath))
        if m.format_version >= 2 and raw.get(DIGEST_KEY) != manifest_digest(raw):
            raise SpikeforgeError("manifest.json was modified after compile (sha256 mismatch)", file=str(mpath),
                                  field=DIGEST_KEY)
        for rel, digest in m.files.items():
            p = d / rel
            if not p.is_file():
                raise SpikeforgeError("artifact file listed in the manifest is missing", file=str(p))
            if hash_file(p) != digest:
                raise SpikeforgeError("artifact file was modified after compile (sha256 mismatch: tampered or truncated)",
                                      file=str(p))
        for required in ("reference.nir",):
            if required not in m.files:
                raise SpikeforgeError(f"manifest does not list {required}", file=str(mpath), field="files")
        arrays: dict[str, np.ndarray] = {}
        if "arrays.npz" in m.files:
            try:
                arrays = load_npz(d / "arrays.npz")
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, NotImplementedError,
                    RuntimeError, zlib.error) as exc:
                raise SpikeforgeError(f"arrays.npz is not readable ({type(exc).__name__})",
                                      file=str(d / "arrays.npz")) from None
        elif m.arrays:
            raise SpikeforgeError("manifest lists arrays but arrays.npz is not among its files", file=str(mpath))
        check_arrays(m.arrays, arrays, str(d / "arrays.npz"))
        board_spec = m.board_spec
        if board_spec is not None:
            from .boardspec import parse_board, remember_board

            remember_board(parse_board(board_spec, f"{mpath} (board_spec)"))
        text = set(m.text_files)
        files: dict[str, str | bytes] = {}
        for rel in m.files:
            if rel in ("arrays.npz", "reference.nir", "program.nir"):
                continue
            raw_bytes = (d / rel).read_bytes()
            try:
                files[rel] = raw_bytes.decode() if rel in text else raw_bytes
            except UnicodeDecodeError:
                raise SpikeforgeError("text file is not UTF-8", file=str(d / rel)) from None
        reference = graphmod.read(d / "reference.nir")
        graphmod.validate(reference, file=str(d / "reference.nir"))
        program = None
        if "program.nir" in m.files:
            program = graphmod.read(d / "program.nir")
        return cls(
            board=m.board,
            backend=m.backend,
            reference=reference,
            arrays=arrays,
            meta=m.meta,
            files=files,
            options=CompileOptions.from_dict(m.options.model_dump()),
            input_hash=m.input_hash,
            program=program,
            path=d,
            board_spec=board_spec,
        )
