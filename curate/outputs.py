"""Where commands write: never into, over or around an input; `--overwrite` replaces only what curate wrote; atomically.

The rule, for every command that writes a folder or a file:
- an output path that is, contains or lies inside an input (a dataset, the index, a model) is refused;
- an existing output is replaced only with `--overwrite`, and only when curate wrote it: a folder that is empty or
  holds curate's marker (`.curate_output.json`, listing every file curate put there) and nothing else, or a file
  that carries curate's stamp; anything else is refused with one line naming it;
- the new output is built beside the target and moved into place whole; what a killed run left beside it
  (`.NAME.partial-PID-…`, from a process that is gone) is removed by the next run that writes the same target.
"""

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from curate import provenance
from curate.errors import CurateError

MARKER = ".curate_output.json"
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)-[0-9a-f]{8}$")


def resolved(path: str | Path) -> Path:
    """`path` absolute, with `~` and symbolic links resolved (what would really be written or removed)."""
    return Path(path).expanduser().resolve()


def check_apart(out: str | Path, inputs: Sequence[str | Path]) -> Path:
    """Refuse an output that is, holds or sits inside any input path; return the output resolved."""
    target = resolved(out)
    for given in inputs:
        source = resolved(given)
        if target == source:
            raise CurateError(f"output {target} is an input of this command; choose another path (inputs are never modified)")
        if source.is_relative_to(target):
            raise CurateError(f"output {target} holds the input {source}; choose a path outside your inputs (they are never modified)")
        if target.is_relative_to(source):
            raise CurateError(f"output {target} lies inside the input {source}; choose a path outside it (inputs are never modified)")
    return target


def _written_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())


def foreign_file(folder: Path) -> str | None:
    """The first file in `folder` that curate did not write there, or None when the folder is curate's own output
    (empty, or marked and holding only the files its marker lists)."""
    if not any(folder.iterdir()):
        return None
    present = _written_files(folder)
    marker = folder / MARKER
    try:
        listed = set(json.loads(marker.read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return present[0] if present else next(folder.iterdir()).name  # unmarked: the first thing in it
    return next((name for name in present if name not in listed and name != MARKER), None)


def check_target(out: str | Path, overwrite: bool, inputs: Sequence[str | Path] = ()) -> Path:
    """Check a folder output before any work: apart from the inputs, and new, or curate's own with --overwrite."""
    target = check_apart(out, inputs)
    if not (target.exists() or target.is_symlink()):
        return target
    if not overwrite:
        raise CurateError(f"output {target} already exists; choose another path or pass --overwrite")
    if not target.is_dir():
        raise CurateError(f"output {target} is a file, not a folder curate wrote; choose another path (--overwrite replaces only curate's own output)")
    stranger = foreign_file(target)
    if stranger is not None:
        raise CurateError(f"output {target} holds {stranger}, which curate did not write; --overwrite replaces only curate's own output folders: choose another path")
    return target


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(target: Path) -> None:
    """Remove what killed runs left beside `target`: partial copies whose process is gone."""
    if not target.parent.is_dir():
        return
    for path in target.parent.iterdir():
        match = _PARTIAL.match(path.name)
        if match and match["name"] == target.name and not _pid_alive(int(match["pid"])):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _partial_path(target: Path) -> Path:
    return target.parent / f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _mark(folder: Path) -> None:
    files = _written_files(folder)
    marker = {"written_by": "curate", "code_version": provenance.code_version(), "created": provenance.now(), "files": files}
    (folder / MARKER).write_text(json.dumps(marker, indent=1))


def _move_into_place(partial: Path, target: Path) -> None:
    """Replace `target` with the finished `partial` (the old one is removed only once the new one is whole)."""
    if target.exists():
        old = _partial_path(target)
        target.rename(old)
        partial.rename(target)
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    else:
        partial.rename(target)


@contextlib.contextmanager
def os_errors(target: Path) -> Iterator[None]:
    try:
        yield
    except PermissionError:
        raise CurateError(f"cannot write {target}: permission denied; choose a folder you can write to") from None
    except OSError as err:
        raise CurateError(f"cannot write {target}: {err.strerror or err}; choose another path") from None


@contextlib.contextmanager
def atomic_folder(out: str | Path, overwrite: bool, inputs: Sequence[str | Path] = ()) -> Iterator[Path]:
    """Yield a temporary sibling folder path to fill; on success it is marked as curate's and becomes `out`, on any
    error or interrupt it is removed. The checks of `check_target` run first."""
    target = check_target(out, overwrite, inputs)
    with os_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_leftovers(target)
    partial = _partial_path(target)
    try:
        yield partial
        with os_errors(target):
            partial.mkdir(exist_ok=True)
            _mark(partial)
            _move_into_place(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


STAMP = "written by curate"  # in the first lines of every single file curate writes (HTML comment, JSON key)


def write_file(out: str | Path, text: str, inputs: Sequence[str | Path] = ()) -> Path:
    """Write one text file atomically. An existing file is replaced only when curate wrote it (its stamp is in its
    first 512 bytes); a folder, an input, or a file of someone else is refused. `text` must carry the stamp."""
    assert STAMP in text[:512], "files curate writes carry its stamp near the top"
    target = check_apart(out, inputs)
    if target.is_dir():
        raise CurateError(f"output {target} is a folder; give a file path, e.g. {target / 'report.html'}")
    if target.exists():
        with open(target, "rb") as handle:
            head = handle.read(512).decode("utf-8", "replace")
        if STAMP not in head:
            raise CurateError(f"{target} exists and curate did not write it; choose another path (curate replaces only its own files)")
    with os_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_leftovers(target)
        partial = _partial_path(target)
        try:
            partial.write_text(text)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    return target


WORKSPACE = ".curate_workspace"


def workspace(out: str | Path, inputs: Sequence[str | Path] = ()) -> Path:
    """A folder that a command fills over several runs and reuses (`curate compare`, `curate bench`): new, empty, or
    one curate made before (it holds curate's workspace marker); a user's folder is refused."""
    target = check_apart(out, inputs)
    if target.exists() and not target.is_dir():
        raise CurateError(f"output {target} is a file; give a folder for this command's work")
    if target.is_dir() and any(target.iterdir()) and not (target / WORKSPACE).is_file():
        raise CurateError(f"output folder {target} holds files curate did not put there; give a new or empty folder")
    with os_errors(target):
        target.mkdir(parents=True, exist_ok=True)
        (target / WORKSPACE).write_text(f"{STAMP}: this folder holds a curate command's reusable work\n")
    return target
