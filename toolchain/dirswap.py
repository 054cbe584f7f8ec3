"""Swap a freshly written directory into place so that readers see the old one or the new one, never half.

Why a lock and a recovery step: a save writes `.NAME.art-tmp-XXXX`, moves the old artifact aside to
`.NAME.art-old-XXXX`, then renames the new one in. A SIGKILL between the two renames left the target
absent and the old artifact hidden; a SIGKILL while writing left the temporary directory behind; two
processes saving at once raced on the rename (`Directory not empty`). All saves into one parent
directory therefore hold an exclusive `flock` on that directory, and whoever takes the lock first
restores a hidden old artifact whose target is missing and removes leftover temporary directories
(while the lock is held, no other writer can own them).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_TAG = ".art-tmp-"
OLD_TAG = ".art-old-"


@contextmanager
def parent_lock(target: Path) -> Iterator[None]:
    """Exclusive lock on the target's parent directory (released when the process dies)."""
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _leftovers(target: Path) -> tuple[list[Path], list[Path]]:
    name = re.escape(target.name)
    tmp_re = re.compile(rf"^\.{name}({re.escape(TMP_TAG)}[0-9a-z_]+|\.[0-9a-z_]{{8}})$")  # 2nd: pre-lock saves
    old_re = re.compile(rf"^\.{name}({re.escape(OLD_TAG)}|\.old-)[0-9a-f]+$")
    tmps, olds = [], []
    for p in target.parent.iterdir():
        if not p.is_dir() or p.is_symlink():
            continue
        if tmp_re.match(p.name):
            tmps.append(p)
        elif old_re.match(p.name):
            olds.append(p)
    return tmps, sorted(olds, key=lambda p: p.stat().st_mtime, reverse=True)


def recover(target: Path) -> None:
    """Call with the lock held: restore an interrupted swap, remove stale temporary directories."""
    if not target.parent.is_dir():
        return
    tmps, olds = _leftovers(target)
    for t in tmps:
        shutil.rmtree(t, ignore_errors=True)
    for old in olds:
        if not target.exists() and (old / "manifest.json").is_file():
            os.replace(old, target)  # the newest complete old artifact comes back
        else:
            shutil.rmtree(old, ignore_errors=True)


def new_tmp(target: Path) -> Path:
    tmp = target.parent / f".{target.name}{TMP_TAG}{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    return tmp


def swap_in(tmp: Path, target: Path) -> None:
    """Call with the lock held: the new directory replaces the target (old kept aside until then)."""
    if target.exists():
        old = target.parent / f".{target.name}{OLD_TAG}{uuid.uuid4().hex[:12]}"
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
