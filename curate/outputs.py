"""Where commands write folders: refuse an existing target unless --overwrite, and write it atomically."""

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from curate.errors import CurateError


def check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise CurateError(f"output {out} already exists; choose another path or pass --overwrite")


def _partial_path(out: Path) -> Path:
    return out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"


def _move_into_place(partial: Path, out: Path) -> None:
    """Replace `out` with the finished `partial` folder (the old one is removed only once the new one is whole)."""
    if out.exists():
        old = _partial_path(out)
        out.rename(old)
        partial.rename(out)
        shutil.rmtree(old)
    else:
        partial.rename(out)


@contextlib.contextmanager
def atomic_folder(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary sibling folder path; on success it becomes `out`, on any error or interrupt it is removed."""
    check_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial_path(out)
    try:
        yield partial
        _move_into_place(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
