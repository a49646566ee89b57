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

import os
import stat
from pathlib import Path


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
    try:
        st = p.lstat()
    except FileNotFoundError:
        st = None
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
    (``.<name>.<random>.part`` beside it); returns how many were removed."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        return 0
    removed = 0
    for part in folder.glob(f".{p.name}.*.part"):
        try:
            if part.is_file() and not part.is_symlink():
                part.unlink()
                removed += 1
        except OSError:
            pass
    return removed
