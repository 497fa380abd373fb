"""The one guard for everything seglib writes: a user's data is never replaced or deleted.

Rules (README, "Safety"):
- An output never lies inside a dataset (a folder with images/ + masks/, or a manifest.csv), is
  never an input of the same command and never contains or lies inside one.
- A folder seglib creates holds a marker file `.seglib-output` naming the command and, once it is
  complete, listing the files it wrote (size and modification time). `force` may replace an existing
  folder only when its marker names the same command and it holds nothing added or changed since
  (a user's notes, a hand-corrected label map); a folder without a marker, or one that holds a
  dataset, is never touched.
- Folders are written under a hidden temporary sibling (`.NAME.seglib-PID-*`) and renamed when
  complete; the temporaries of a killed process are removed by the next run into the same place.
  Should that rename fail, the complete result is moved to a visible sibling and named.
- An output is never a symbolic link (a folder swap would replace the link, not its target, and a
  dangling link fails only at the end): refused before any work, with the real path to give.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from seglib.data.folders import DatasetDir
from seglib.data.io import atomic_file, resolved

MARKER = ".seglib-output"
LOCK = ".seglib-lock"  # while a process writes a folder in place: its process id

class UnsafeOutput(FileExistsError):
    """An output path that would overwrite or delete something seglib must not touch."""


def is_dataset(folder: Path) -> bool:
    return DatasetDir(folder).looks_like_dataset()


def check_output_path(path: str | Path, inputs=(), inside_inputs: bool = False) -> Path:
    """Refuse an output that is a symbolic link, is, contains or (unless `inside_inputs`) lies inside
    an input, or lies inside a dataset."""
    path = Path(path)
    if path.is_symlink():
        raise UnsafeOutput(f"{path}: is a symbolic link (to {os.readlink(path)}); give the real folder or file")
    blocking = next((folder for folder in path.absolute().parents
                     if (folder.exists() or folder.is_symlink()) and not folder.is_dir()), None)
    if blocking is not None:
        what = "a symbolic link that leads to no folder" if blocking.is_symlink() else "a file"
        raise UnsafeOutput(f"{path}: cannot be written: {blocking} is {what}, not a folder")
    target = resolved(path)  # a symbolic link loop: one line naming it
    for given in (Path(i) for i in inputs if i is not None):
        source = resolved(given)
        if target == source:
            raise UnsafeOutput(f"{path}: is an input of this command; choose another output")
        if source in target.parents and not inside_inputs:
            raise UnsafeOutput(f"{path}: lies inside the input {given}; choose an output outside it")
        if target in source.parents:
            raise UnsafeOutput(f"{path}: contains the input {given}; choose an output that does not")
    dataset = next((folder for folder in (target, *target.parents) if is_dataset(folder)), None)
    if dataset is not None:
        raise UnsafeOutput(f"{path}: lies inside the dataset {dataset}; write outputs outside datasets")
    return path


def check_output_file(path: str | Path, inputs=(), force: bool = False, kind: str = "file",
                      written_by_seglib=None) -> Path:
    """A file output (e.g. a metrics CSV): not a folder, not an input, nowhere inside a dataset.
    An existing file is replaced only with `force`, only when `written_by_seglib(path)` recognises it
    as the `kind` of file this command writes (e.g. a metrics table by its header), and never inside
    a folder seglib wrote (a run, a prediction folder: their files are not this command's)."""
    path = check_output_path(path, inputs, inside_inputs=True)  # e.g. metrics.csv beside the predictions
    if path.is_dir():
        raise UnsafeOutput(f"{path}: is a folder; give a file name, e.g. {path / 'metrics.csv'}")
    if not path.exists():
        return path
    if not force:
        hint = "" if written_by_seglib is None else " (pass --force to replace it)"
        raise UnsafeOutput(f"{path}: already exists; refusing to overwrite{hint}")
    holder = next((folder for folder in path.resolve().parents if marked_command(folder)), None)
    if holder is not None:
        raise UnsafeOutput(f"{path}: lies inside {holder}, written by seglib {marked_command(holder)}; "
                           "--force never replaces a file there. Choose another path")
    source = next((Path(given) for given in inputs if given is not None
                   and Path(given).resolve() in path.resolve().parents), None)
    if source is not None:
        raise UnsafeOutput(f"{path}: lies inside the input {source}; --force never replaces a file there. "
                           "Choose another path")
    if written_by_seglib is None or not written_by_seglib(path):
        raise UnsafeOutput(f"{path}: is not a {kind}; --force replaces only that. Choose another path, "
                           "or remove it yourself")
    return path


def first_line(path: Path, limit: int = 4096) -> str:
    """The first line of a text file ('' when it is binary or unreadable), to recognise what wrote it."""
    try:
        with open(path, "rb") as file:
            return file.read(limit).split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    except (OSError, UnicodeDecodeError):
        return ""


def marked_command(folder: Path) -> str | None:
    """The command that created `folder`, from its marker (None: seglib did not create it)."""
    return _marker(folder).get("command") if (folder / MARKER).is_file() else None


def check_replaceable(path: Path, command: str, inputs=(), force: bool | None = None) -> bool:
    """Whether `path` holds something to replace; raises unless `force` may replace it (None: the
    command offers no --force)."""
    check_output_path(path, inputs)
    if not path.exists():
        return False
    if not path.is_dir():
        raise UnsafeOutput(f"{path}: is a file, not a folder; choose another path")
    if not any(path.iterdir()):
        return False
    if not force:
        hint = "" if force is None else " or pass --force"  # None: the command has no --force
        raise UnsafeOutput(f"{path}: exists and is not empty; choose another path{hint}")
    dataset = next((Path(root) for root, _, _ in os.walk(path) if is_dataset(Path(root))), None)
    if dataset is not None:
        raise UnsafeOutput(f"{path}: holds the dataset {dataset}; refusing to replace it even with --force")
    creator = marked_command(path)
    if creator != command:
        made = f"was written by seglib {creator}" if creator else f"was not written by seglib (no {MARKER} file)"
        raise UnsafeOutput(f"{path}: {made}; --force replaces only an earlier {command} output. "
                           "Choose another path, or remove it yourself")
    touched = _touched_since_written(path)
    if touched:
        shown = ", ".join(touched[:3]) + (f" and {len(touched) - 3} more" if len(touched) > 3 else "")
        raise UnsafeOutput(f"{path}: holds files added or changed since seglib {command} wrote it ({shown}); "
                           "--force never deletes them. Move them out, or choose another path")
    return True


def mark(folder: Path, command: str, ids=None, files=None, layout=None) -> None:
    """The marker: the command, for prediction folders the image ids they cover (all of them have a
    prediction; evaluate checks that none went missing), for a folder written in place the layout of
    what the command writes there (claim_folder), and for a complete folder its files (seal). Written
    whole or not at all: a torn marker would orphan the folder."""
    record = {"command": command, **({} if ids is None else {"ids": sorted(ids)}),
              **({} if layout is None else {"layout": list(layout)}),
              **({} if files is None else {"files": files})}
    with atomic_file(folder / MARKER, overwrite=True) as temporary:
        temporary.write_text(json.dumps(record) + "\n")


def seal(folder: Path) -> None:
    """Record in a complete folder's marker what it holds, so that --force can tell the folder as it
    was written from one a person has since added to or edited (check_replaceable). A folder written
    in place lists only the files of its layout: one a person put there during the run is not seglib's."""
    record = _marker(folder)
    files = {name: facts for name, facts in _inventory(folder).items() if _in_layout(name, record.get("layout"))}
    mark(folder, record["command"], record.get("ids"), files, record.get("layout"))


def _inventory(folder: Path) -> dict[str, list[int]]:
    """Relative path -> [size, modification time in ns] of every file below `folder` but the marker."""
    files = (Path(root) / name for root, _, names in os.walk(folder) for name in names)
    return {file.relative_to(folder).as_posix(): [(stat := file.lstat()).st_size, stat.st_mtime_ns]
            for file in files if file not in (folder / MARKER, folder / LOCK)}


def _in_layout(name: str, layout) -> bool:
    """Whether a file (relative path) is one the folder's command writes: any file without a layout."""
    return layout is None or any(fnmatch.fnmatchcase(name, pattern) for pattern in layout)


def _touched_since_written(folder: Path) -> list[str]:
    """The files of `folder` that seglib did not write as they are now: for a sealed folder, those its
    marker does not list so; for an unfinished folder written in place, those outside its layout; none
    for a folder marked by a version of seglib that kept no list. A file removed since loses nothing."""
    record = _marker(folder)
    written, layout = record.get("files"), record.get("layout")
    if isinstance(written, dict):
        return sorted(name for name, facts in _inventory(folder).items() if written.get(name) != facts)
    return sorted(name for name in _inventory(folder) if not _in_layout(name, layout)) if layout else []


def covered_ids(folder: str | Path) -> set[str] | None:
    """The image ids a marked prediction folder was written for, or None when it does not say."""
    ids = _marker(Path(folder)).get("ids")
    return set(ids) if isinstance(ids, list) else None


def _marker(folder: Path) -> dict:
    try:
        record = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


@contextmanager
def output_folder(path: str | Path, command: str, inputs=(), force: bool | None = None, ids=None):
    """Yield a marked temporary folder that becomes `path` only when the block succeeds. An
    existing `path` is replaced (with `force`, see check_replaceable) only after that success.
    `ids`: the images a prediction folder covers (see mark)."""
    path = Path(path)
    replace = check_replaceable(path, command, inputs, force)
    remove_stale_temporaries(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _new_temporary(path)
    try:
        temporary.chmod(0o755)  # mkdtemp makes it private; outputs (datasets, predictions) are meant to be shared
        mark(temporary, command, ids)
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    seal(temporary)
    try:
        _swap(path, temporary, replace, command)
    except OSError as error:  # e.g. another process wrote `path` meanwhile: the finished work stays in sight
        raise UnsafeOutput(f"{path}: the result is complete but could not be put there ({error.strerror or error}); "
                           f"it is in {_kept(temporary, path)}") from None


def _swap(path: Path, temporary: Path, replace: bool, command: str) -> None:
    """Put the finished `temporary` in place of `path`; the replaced folder is moved aside first
    (into a marked temporary, so a kill here leaves it to the stale-temporary clean-up) and put
    back if the new one cannot take its place."""
    if not replace:
        if path.exists():
            path.rmdir()  # an empty folder
        os.replace(temporary, path)
        return
    old = _new_temporary(path)
    mark(old, command)
    os.replace(path, old / path.name)
    try:
        os.replace(temporary, path)
    except OSError:
        os.replace(old / path.name, path)  # the earlier output back in its place
        shutil.rmtree(old)
        raise
    shutil.rmtree(old)


def _kept(temporary: Path, path: Path) -> Path:
    """The finished `temporary` under a visible name beside `path`, which the clean-up of killed
    runs' temporaries never removes (the temporary itself when even that rename fails)."""
    kept = path.with_name(f"{path.name}.complete-{os.getpid()}")
    try:
        os.replace(temporary, kept)
    except OSError:
        return temporary
    return kept


def claim_folder(path: str | Path, command: str, inputs=(), layout=()) -> Path:
    """An empty marked folder at `path`, written in place (a training or segment run, which must stay
    resumable after a kill); anything already there is refused (an earlier run is replaced through
    output_folder, only when the new one is complete). `layout`: glob patterns (relative paths) of every
    file the command writes there, so that a file a person adds during the run is never taken for
    seglib's (seal, check_replaceable)."""
    path = Path(path)
    check_replaceable(path, command, inputs, force=False)
    path.mkdir(parents=True, exist_ok=True)
    mark(path, command, layout=layout or None)
    return path


@contextmanager
def writing_alone(folder: Path):
    """The block as the only process writing `folder` in place (a segment run and its --resume): two
    jobs given one --out would rename each other's files. The lock of a process that no longer runs
    (killed) is taken over."""
    lock = Path(folder) / LOCK
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            owner = lock.read_text().strip()
            if owner.isdigit() and _running(int(owner)):
                raise UnsafeOutput(f"{folder}: is being written by another seglib process ({owner}); "
                                   "wait for it, or choose another --out") from None
            lock.unlink(missing_ok=True)  # its owner was killed
    else:
        raise UnsafeOutput(f"{folder}: cannot lock it for writing ({lock})")
    try:
        os.write(descriptor, f"{os.getpid()}\n".encode())
        os.close(descriptor)
        yield folder
    finally:
        lock.unlink(missing_ok=True)


def remove_stale_temporaries(path: Path) -> None:
    """Delete the marked temporaries of `path` left by processes that no longer run (killed), and the
    empty unmarked ones of a process killed between creating and marking one; nothing else."""
    pattern = re.compile(re.escape(_temporaries(path)) + r"(\d+)-")
    for candidate in path.parent.glob(f"{_temporaries(path)}*") if path.parent.is_dir() else ():
        owner = pattern.match(candidate.name)
        if not owner or _running(int(owner.group(1))):
            continue
        if (candidate / MARKER).is_file():
            shutil.rmtree(candidate, ignore_errors=True)
        elif candidate.is_dir() and not any(candidate.iterdir()):  # killed between creating and marking it
            candidate.rmdir()


def _temporaries(path: Path) -> str:
    """The start of the names of `path`'s hidden temporaries; the owner's process id follows."""
    return f".{path.name}.seglib-"


def _new_temporary(path: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{_temporaries(path)}{os.getpid()}-", dir=path.parent))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
