"""Faults of ``fit(distribute="local:2")``: the forked processes never outlive the parent,
whatever ends it; a child that dies, stops or falls silent stops the run within a bounded
time with an error that says so; signals for the process group are the parent's alone; no
process is left behind."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from numcnn import Sequential
from numcnn.layers import Dense, Flatten, Layer
from numcnn.training import Callback

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="local data-parallel training forks (Linux)")

# A local:2 fit that runs until killed; prints its pid and its child's once a batch is done.
SCRIPT = textwrap.dedent("""
    import os
    import numpy as np
    from numcnn import Sequential
    from numcnn.layers import Dense, Flatten, ReLU
    from numcnn.training import Callback

    class Report(Callback):
        done = False

        def on_batch_end(self, batch, logs=None):
            if not self.done and self.model.trainer.rank == 0:
                self.done = True
                print(os.getpid(), *self.model.trainer.sync.comm.children, flush=True)

    rng = np.random.default_rng(0)
    x = rng.random((256, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 256)
    model = Sequential([Flatten(), Dense(64), ReLU(), Dense(10)], input_shape=(1, 8, 8),
                       seed=0)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    model.fit(x, y, batch_size=64, epochs=10 ** 6, verbose=0, distribute="local:2",
              callbacks=[Report()])
""")


def alive(pid):
    """True while ``pid`` runs (not gone, not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def gone_within(pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def start_run(**kwargs):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, **kwargs)
    poller = select.poll()
    poller.register(proc.stdout, select.POLLIN)
    line = proc.stdout.readline().decode().split() if poller.poll(30_000) else []
    if len(line) != 2:
        proc.kill()
        pytest.fail(f"the script printed {line} instead of two pids: "
                    + proc.communicate()[1].decode())
    parent, child = map(int, line)
    assert parent == proc.pid and alive(child)
    return proc, child


def clean_up(proc, child):
    if alive(child):
        os.kill(child, signal.SIGKILL)
    proc.kill()
    return proc.communicate()[1].decode()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_child_dies_with_its_parent(how):
    proc, child = start_run()
    try:
        os.kill(proc.pid, getattr(signal, how))
        assert proc.wait(10) == -getattr(signal, how)
        assert gone_within(child, 5.0), f"child {child} outlived its parent"
    finally:
        clean_up(proc, child)


def test_ctrl_c_for_the_process_group_is_the_parent_s_alone():
    """Ctrl-C reaches every process of the foreground group: the child ignores it, the
    parent raises KeyboardInterrupt and collects the child."""
    proc, child = start_run(start_new_session=True)
    try:
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(10) == -signal.SIGINT  # (Python exits "by" SIGINT)
        assert gone_within(child, 5.0), f"child {child} outlived its parent"
    finally:
        err = clean_up(proc, child)
    assert err.rstrip().endswith("KeyboardInterrupt"), err
    assert "numcnn:" not in err, err  # the parent's own interrupt, no other process's


class InChild(Layer):
    """Identity; in a forked child, at the ``at``-th call, kill or stop this process, or
    exit, or fall asleep."""

    def __init__(self, action, at=1, **kwargs):
        super().__init__(**kwargs)
        self.action, self.at, self.main_pid, self.calls = action, at, os.getpid(), 0

    def fprop(self, x, call):
        if os.getpid() != self.main_pid:
            self.calls += 1
            if self.calls == self.at:
                if self.action == "sleep":
                    time.sleep(60)
                elif self.action == "exit":
                    os._exit(7)
                else:
                    os.kill(os.getpid(), getattr(signal, self.action))
        return x

    def bprop(self, dy, call, accumulate=False):
        return dy


class Children(Callback):
    """Records the parent's children; optionally signals them at a hook."""

    def __init__(self, hook=None, sig=None):
        self.hook, self.sig, self.pids = hook, sig, []

    def _act(self, hook):
        if self.model.trainer.rank != 0:
            return
        self.pids = self.pids or list(self.model.trainer.sync.comm.children)
        if hook == self.hook:
            self.hook = None
            for pid in self.pids:
                os.kill(pid, self.sig)

    def on_batch_begin(self, batch, logs=None):
        self._act("batch_begin")

    def on_batch_end(self, batch, logs=None):
        self._act("batch_end")


def tiny(*middle):
    model = Sequential([Flatten(), *middle, Dense(2)], input_shape=(1, 2, 2), seed=0)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    return model, np.zeros((16, 1, 2, 2), np.float32), np.zeros(16, np.int64)


def fit_fails(model, children, match, seconds):
    _, x, y = tiny()
    began = time.monotonic()
    with pytest.raises(RuntimeError, match=match) as info:
        model.fit(x, y, batch_size=4, epochs=3, verbose=0, distribute="local:2",
                  callbacks=[children])
    took = time.monotonic() - began
    assert took < seconds, f"the fault took {took:.1f} s to surface"
    assert children.pids and not any(alive(pid) for pid in children.pids)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # every child collected: no zombie either
    return str(info.value), took


@pytest.fixture
def short_timeout(monkeypatch):
    monkeypatch.setenv("NUMCNN_MPI_TIMEOUT", "1")


def test_a_child_that_exits_is_named_at_once():
    model, _, _ = tiny(InChild("exit", at=2))
    fit_fails(model, Children(), r"another local data-parallel process died: rank 1 "
              r"\(pid \d+\) exited \(code 7\)", 3.0)


def test_a_child_killed_mid_step_is_named_with_its_signal():
    model, _, _ = tiny(InChild("SIGKILL", at=2))
    fit_fails(model, Children(), r"died: rank 1 \(pid \d+\) was killed by signal SIGKILL",
              3.0)


def test_a_stopped_child_is_named_within_the_timeout(short_timeout):
    model, _, _ = tiny()
    message, took = fit_fails(model, Children("batch_begin", signal.SIGSTOP),
                              "another local data-parallel process hangs", 4.0)
    assert took > 0.9
    assert "rank 1 (pid" in message and "is stopped (a signal such as SIGSTOP)" in message
    assert "NUMCNN_MPI_TIMEOUT=1 s" in message


def test_a_silent_child_is_named_within_the_timeout(short_timeout):
    model, _, _ = tiny(InChild("sleep", at=2))
    message, _ = fit_fails(model, Children(), "another local data-parallel process hangs",
                           4.0)
    assert "is sleeping" in message


def test_sigterm_to_a_child_alone_is_ignored():
    """SIGTERM reaches the children with the rest of a process group (a batch scheduler):
    the parent alone decides whether to stop."""
    model, x, y = tiny()
    children = Children("batch_end", signal.SIGTERM)
    model.fit(x, y, batch_size=4, epochs=3, verbose=0, distribute="local:2",
              callbacks=[children])
    assert model.trainer.epoch == 3 and children.pids
    assert not any(alive(pid) for pid in children.pids)


@pytest.mark.parametrize("error", [KeyboardInterrupt, ArithmeticError])
def test_an_interrupt_or_error_in_the_parent_stops_the_children_at_once(error):
    class Raise(Callback):
        def on_batch_end(self, batch, logs=None):
            if self.model.trainer.rank == 0:
                raise error("in the parent")

    model, x, y = tiny()
    children = Children()
    began = time.monotonic()
    with pytest.raises(error):
        model.fit(x, y, batch_size=4, verbose=0, distribute="local:2",
                  callbacks=[children, Raise()])
    assert time.monotonic() - began < 2.0
    assert children.pids and not any(alive(pid) for pid in children.pids)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)
