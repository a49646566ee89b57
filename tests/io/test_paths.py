"""Every file numcnn writes goes through ``atomic_write``: checked first (never a device, a
FIFO, a socket or a folder), through a symbolic link to its target, permissions kept,
temporary files of killed writes removed, errors naming the file."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import numcnn
from numcnn.io.paths import atomic_write, remove_stale_parts


def model():
    return numcnn.models.lenet5(seed=0)


def test_save_model_refuses_what_is_not_a_file_and_leaves_it_alone(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    os.symlink(tmp_path / "nowhere", tmp_path / "broken")
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("mine")
    dev = tmp_path / "null"
    os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # our own copy of /dev/null
    for target, message in [("fifo", "is a FIFO"), ("broken", "broken symbolic link"),
                            ("dir", "is a folder"), ("null", "character device"),
                            ("file/m.npz", "file is not a folder"),
                            ("", "the path is empty")]:
        before = os.lstat(tmp_path / target) if target and os.path.lexists(
            tmp_path / target) else None
        with pytest.raises(ValueError, match=message):
            numcnn.save_model(model(), str(tmp_path / target) if target else "")
        if before is not None:
            after = os.lstat(tmp_path / target)
            assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    with pytest.raises(ValueError, match="ends with a slash"):
        numcnn.save_model(model(), str(tmp_path / "newdir") + "/")
    assert not (tmp_path / "newdir").exists() and (tmp_path / "file").read_text() == "mine"


def test_a_link_is_written_through_and_permissions_are_kept(tmp_path):
    target, link = tmp_path / "target.npz", tmp_path / "link.npz"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    os.symlink(target, link)
    m = model()
    numcnn.save_model(m, link)
    assert link.is_symlink() and os.stat(target).st_mode & 0o777 == 0o640
    np.testing.assert_array_equal(numcnn.load_model(link).get_weights()["conv2d/W"],
                                  m.get_weights()["conv2d/W"])
    numcnn.save_model(m, tmp_path / "new.npz")  # a new file: 0666 & ~umask, as open()
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(tmp_path / "new.npz").st_mode & 0o777 == 0o666 & ~mask


def test_stale_parts_of_dead_writers_go_and_live_writers_parts_stay(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()
        old = tmp_path / ".m.npz.abcd1234.part"  # an older numcnn's name: no pid
        gone = tmp_path / f".m.npz.{dead}.abcd1234.part"
        live = tmp_path / f".m.npz.{sleeper.pid}.abcd1234.part"
        other = tmp_path / ".other.npz.abcd1234.part"
        for p in (old, gone, live, other):
            p.write_bytes(b"x")
        numcnn.save_model(model(), tmp_path / "m.npz")
        assert not old.exists() and not gone.exists()
        assert live.exists() and other.exists()
        assert remove_stale_parts(tmp_path / "m.npz") == 0
    finally:
        sleeper.kill()
        sleeper.wait()
    assert remove_stale_parts(tmp_path / "m.npz") == 1  # its writer is gone now


def test_a_failed_write_names_the_file_and_leaves_nothing(tmp_path):
    (tmp_path / "m.npz").write_bytes(b"the old model")

    def full(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match=r"cannot write .*m\.npz: No space left on device"):
        atomic_write(tmp_path / "m.npz", full)
    assert (tmp_path / "m.npz").read_bytes() == b"the old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
