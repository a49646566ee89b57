"""Checks on the paths numcnn writes to: never replace what is not ours.

A path given for a model, a checkpoint or a log must be a regular file or not exist yet,
in an existing folder: a folder, a device (``/dev/full``), a FIFO or a socket at that path
is refused with a clear error *before* any work is done (a training run then fails at
once, not after hours). Files are written to a temporary name beside the target and
renamed into place (:func:`numcnn.io.saving.atomic_write`); the temporary files of a write
that was killed are removed by the next write to the same place
(:func:`remove_stale_parts`).
"""

from __future__ import annotations

import errno
import glob
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def check_output_file(path: str | os.PathLike, what: str = "the output",
                      create_parent: bool = False, missing_parent_ok: bool = True) -> Path:
    """Raise ``ValueError`` unless ``path`` can be (re)written as a regular file.

    Args:
        path: the file to write. what: what it is, for the message.
        create_parent: create a missing parent folder now.
        missing_parent_ok: a missing parent folder is fine when its nearest existing
            ancestor is a writable folder (the writer creates it); else it is an error.
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise ValueError(f"{what}: the path is empty")
    p = Path(text)
    if str(text).endswith(("/", os.sep)) or (os.altsep and str(text).endswith(os.altsep)):
        if p.is_dir():
            raise ValueError(f"{what}: {p} is a folder; expected a file name")
        raise ValueError(f"{what}: {text} names a folder (it ends with a slash); expected a "
                         "file name")
    try:
        st = p.lstat()
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        above = next((a for a in p.parents if a.exists() and not a.is_dir()), p.parent)
        raise ValueError(f"{what}: cannot write {p}: {above} is not a folder") \
            from None
    except OSError as e:
        raise ValueError(f"{what}: cannot use {p} ({e.strerror})") from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            try:
                st = p.stat()
            except OSError:
                raise ValueError(f"{what}: {p} is a broken symbolic link") from None
        if stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{what}: {p} is a folder; expected a file name")
        if not stat.S_ISREG(st.st_mode):
            kind = ("a character device" if stat.S_ISCHR(st.st_mode) else
                    "a block device" if stat.S_ISBLK(st.st_mode) else
                    "a FIFO" if stat.S_ISFIFO(st.st_mode) else
                    "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise ValueError(f"{what}: {p} is {kind}; numcnn writes only regular files and "
                             "never replaces anything else")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        if create_parent:
            parent.mkdir(parents=True, exist_ok=True)
        elif missing_parent_ok:
            parent = next((a for a in parent.parents if a.exists()), Path("."))
        else:
            raise ValueError(f"{what}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise ValueError(f"{what}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: cannot write in the folder {parent} (permission denied)")
    if parent == (p.parent if str(p.parent) else Path(".")):
        _probe(parent, p.name, what)
    return p


def what_is_at(path: str | os.PathLike) -> str:
    """What is at ``path`` when it is not a regular file to read: ``"a folder"``, ``"a
    FIFO"``, ``"a character device"``, ``"a broken symbolic link"``, … — or ``""`` (a regular
    file, or nothing at all)."""
    try:
        st = os.stat(path)
    except OSError as e:
        if os.path.islink(path):
            return "a symbolic link loop" if e.errno == errno.ELOOP else \
                "a broken symbolic link"
        return ""
    mode = st.st_mode
    return ("" if stat.S_ISREG(mode) else "a folder" if stat.S_ISDIR(mode) else
            "a character device" if stat.S_ISCHR(mode) else
            "a block device" if stat.S_ISBLK(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "not a regular file")


def missing_file(path: str | os.PathLike, what: str) -> FileNotFoundError:
    """The error for a file to read that is not a regular file: ``no <what> at <path>``, and
    what is there instead (a folder, a FIFO, a device — never opened: a FIFO would block)."""
    kind = what_is_at(path)
    more = f" ({os.fspath(path)} is {kind}; expected a regular file)" if kind else ""
    return FileNotFoundError(f"no {what} at {os.fspath(path)}{more}")


def _probe(folder: Path, name: str, what: str) -> None:
    """Create and remove a temporary file where the writer will put its own: some folders
    pass the permission test but refuse files (``/proc``, a read-only mount, a full disk)."""
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise ValueError(f"{what}: cannot create a file in the folder {folder} "
                         f"({e.strerror or e})") from None
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:
        pass


def remove_stale_parts(path: str | os.PathLike) -> int:
    """Remove the temporary files an interrupted atomic write of ``path`` left behind
    (``.<name>.<pid>.<random>.part`` beside it, whose process is gone; or of an older
    numcnn, without the pid); returns how many were removed. A write in progress in
    another live process is left alone."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        return 0
    removed = 0
    prefix = f".{p.name}."
    for part in folder.glob(f"{glob.escape(prefix)}*.part"):
        middle = part.name[len(prefix): -len(".part")]
        pid_text = middle.split(".", 1)[0] if "." in middle else ""
        if pid_text.isdigit() and int(pid_text) != os.getpid() and _alive(int(pid_text)):
            continue  # another process is writing it now
        try:
            if part.is_file() and not part.is_symlink():
                part.unlink()
                removed += 1
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Any, what: str = "the output") -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it into
    place: readers see the old file or the new one, never half of one.

    ``path`` is checked first (:func:`check_output_file`: never a folder, a device, a FIFO
    or a socket; a missing parent folder is created); through a symbolic link the link's
    target is written and the link kept; an existing file keeps its permissions (a new
    one gets ``0666 & ~umask``, as ``open`` would); temporary files of earlier writes that
    were killed are removed. An ``OSError`` (a full disk, …) names the file. Returns the
    path written.
    """
    p = check_output_file(path, what, create_parent=True)
    target = Path(os.path.realpath(p)) if p.is_symlink() else p
    folder = target.parent if str(target.parent) else Path(".")
    remove_stale_parts(target)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".part",
                                   dir=folder)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        tmp = None
    except OSError as e:
        raise OSError(e.errno, f"cannot write {p}: {e.strerror or e}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return target
