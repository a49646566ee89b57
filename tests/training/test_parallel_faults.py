"""Faults of data-parallel training (``fit(processes=2)``): workers never outlive the main
process, whatever ends it, and a worker that dies, stops or falls silent stops the run within
a bounded time with an error that names it and says how it ended — no process left behind."""

from __future__ import annotations

import multiprocessing
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
from numcnn.training import parallel as P

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="data-parallel training forks worker processes (Linux)")

# A data-parallel fit that runs until killed; prints its pid and its worker's pid once the
# first batch is done. Without PR_SET_PDEATHSIG for argv[1] == "eof" (the worker sees its
# connection close) and "ppid" (the worker holds its connection open: it sees its parent
# pid change).
SCRIPT = textwrap.dedent("""
    import multiprocessing, os, sys
    import numpy as np
    from numcnn import Sequential
    from numcnn.layers import Dense, Flatten, ReLU
    from numcnn.training import Callback
    from numcnn.training import parallel

    if sys.argv[1:] in (["eof"], ["ppid"]):
        parallel._PDEATHSIG = False
    if sys.argv[1:] == ["ppid"]:
        real = parallel._worker

        def held_open(sock, inherited, *args):
            kept = [os.dup(s.fileno()) for s in inherited]  # noqa: F841 (never closes)
            real(sock, inherited, *args)

        parallel._worker = held_open

    class Report(Callback):
        done = False

        def on_batch_end(self, batch, logs=None):
            if not self.done:
                self.done = True
                pids = [p.pid for p in multiprocessing.active_children()]
                print(os.getpid(), *pids, flush=True)

    rng = np.random.default_rng(0)
    x = rng.random((256, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 256)
    model = Sequential([Flatten(), Dense(64), ReLU(), Dense(10)], input_shape=(1, 8, 8),
                       seed=0)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    model.fit(x, y, batch_size=64, epochs=10 ** 6, verbose=0, processes=2,
              callbacks=[Report()])
""")


def identity(pid):
    """(state letter, start time) of a live process, or None once it is gone (or a zombie,
    which only waits for its new parent to reap it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in (b"Z", b"X") else (fields[0].decode(), fields[19])


def gone_within(pid, seconds, born=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = identity(pid)
        if now is None or (born is not None and now[1] != born):
            return True
        time.sleep(0.02)
    return False


def start_run(*args, **kwargs):
    """The script's process and (main pid, worker pid) once it trains on two processes."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, **kwargs)
    poller = select.poll()
    poller.register(proc.stdout, select.POLLIN)
    line = proc.stdout.readline().decode().split() if poller.poll(30_000) else []
    if len(line) != 2:
        proc.kill()
        pytest.fail(f"the training script printed {line} instead of two pids: "
                    + proc.communicate()[1].decode())
    main, worker = map(int, line)
    assert main == proc.pid and identity(worker) is not None
    return proc, worker


def clean_up(proc, worker, born):
    """Kill what is left (the worker first: it holds the script's pipes); the stderr."""
    if identity(worker) is not None and identity(worker)[1] == born:
        os.kill(worker, signal.SIGKILL)
    proc.kill()
    return proc.communicate()[1].decode()


@pytest.mark.parametrize("how,args", [
    ("SIGKILL", ()),
    ("SIGTERM", ()),
    ("SIGKILL", ("eof",)),  # the fallbacks without PR_SET_PDEATHSIG
    ("SIGKILL", ("ppid",)),
])
def test_worker_dies_with_its_main_process(how, args):
    proc, worker = start_run(*args)
    born = identity(worker)[1]
    try:
        os.kill(proc.pid, getattr(signal, how))
        assert proc.wait(10) == -getattr(signal, how)
        assert gone_within(worker, 5.0, born), f"worker {worker} outlived its parent"
    finally:
        clean_up(proc, worker, born)


def test_ctrl_c_for_the_process_group_is_the_main_process_s_alone():
    """Ctrl-C reaches every process of the foreground group: workers ignore it, the main
    process raises KeyboardInterrupt (not a worker's failure) and stops them."""
    proc, worker = start_run(start_new_session=True)
    born = identity(worker)[1]
    try:
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(10) == -signal.SIGINT  # (Python exits "by" SIGINT)
        assert gone_within(worker, 5.0, born), f"worker {worker} outlived its parent"
    finally:
        err = clean_up(proc, worker, born)
    assert err.rstrip().endswith("KeyboardInterrupt"), err
    assert "worker" not in err, err


class InWorker(Layer):
    """Identity; in a forked worker, at the ``at``-th call, kill or stop this process, or
    fall asleep."""

    def __init__(self, action, at=1, **kwargs):
        super().__init__(**kwargs)
        self.action, self.at, self.main_pid, self.calls = action, at, os.getpid(), 0

    def fprop(self, x, call):
        if os.getpid() != self.main_pid:
            self.calls += 1
            if self.calls == self.at:
                if self.action == "sleep":
                    time.sleep(60)
                else:
                    os.kill(os.getpid(), getattr(signal, self.action))
        return x

    def bprop(self, dy, call, accumulate=False):
        return dy


def tiny(*middle):
    model = Sequential([Flatten(), *middle, Dense(2)], input_shape=(1, 2, 2), seed=0)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    return model, np.zeros((16, 1, 2, 2), np.float32), np.zeros(16, np.int64)


class Workers(Callback):
    """Records the worker processes; optionally signals them at a hook."""

    def __init__(self, hook=None, sig=None, wait=False):
        self.hook, self.sig, self.wait, self.procs = hook, sig, wait, []

    def _act(self, hook):
        self.procs = self.procs or list(multiprocessing.active_children())
        if hook == self.hook:
            self.hook = None
            for p in self.procs:
                os.kill(p.pid, self.sig)
                if self.wait:
                    p.join(5.0)

    def on_epoch_end(self, epoch, logs=None):
        self._act("epoch_end")

    def on_batch_begin(self, batch, logs=None):
        self._act("batch_begin")

    def on_batch_end(self, batch, logs=None):
        self._act("batch_end")


def no_process_left(workers):
    assert workers.procs, "the callback saw no worker"
    assert multiprocessing.active_children() == []
    for p in workers.procs:
        assert p.exitcode is not None  # reaped: no zombie either
        assert identity(p.pid) is None


def fit_fails(model, x, y, workers, match, seconds):
    began = time.monotonic()
    with pytest.raises(RuntimeError, match=match) as info:
        model.fit(x, y, batch_size=4, epochs=3, verbose=0, processes=2, callbacks=[workers])
    took = time.monotonic() - began
    assert took < seconds, f"the fault took {took:.1f} s to surface"
    no_process_left(workers)
    return str(info.value)


@pytest.fixture
def short_timeout(monkeypatch):
    monkeypatch.setenv(P.TIMEOUT_ENV, "1")


def test_a_stopped_worker_is_named_within_the_timeout(short_timeout):
    """SIGSTOP from outside, before a batch: the main process sends the part and waits."""
    model, x, y = tiny()
    workers = Workers("batch_begin", signal.SIGSTOP)
    began = time.monotonic()
    message = fit_fails(model, x, y, workers, "stopped", 4.0)
    took = time.monotonic() - began
    pid = workers.procs[0].pid
    assert message.startswith(f"data-parallel worker 1 was stopped by signal SIGSTOP and "
                              f"sent no result for 1 s (pid {pid}). All workers were "
                              f"stopped."), message
    assert f"{P.TIMEOUT_ENV}=1 s" in message
    assert took > 0.9


def test_a_silent_worker_is_named_within_the_timeout(short_timeout):
    model, x, y = tiny(InWorker("sleep", at=2))
    message = fit_fails(model, x, y, Workers(), r"^data-parallel worker 1 is still running "
                        r"\(sleeping\) but sent no result for 1 s \(pid \d+\)", 4.0)
    assert "All workers were stopped" in message


def test_a_worker_stopping_itself_is_named(short_timeout):
    # SIGSTOP, not SIGTSTP: the kernel discards SIGTSTP in an orphaned process group (a
    # suite started in the background by a shell that has exited), and the worker ran on
    model, x, y = tiny(InWorker("SIGSTOP", at=3))
    fit_fails(model, x, y, Workers(), r"^data-parallel worker 1 was stopped by signal "
              r"SIGSTOP and sent no result for 1 s", 4.0)


def test_a_worker_killed_mid_step_is_named_with_its_signal():
    model, x, y = tiny(InWorker("SIGKILL", at=2))
    fit_fails(model, x, y, Workers(), r"^data-parallel worker 1 was killed by signal SIGKILL "
              r"while it computed its part of a batch \(pid \d+\)$", 3.0)


@pytest.mark.parametrize("hook,when", [
    ("batch_end", "before it received its part of a batch"),
    ("epoch_end", "before it received the epoch's random seeds"),
])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGUSR1])
def test_sending_to_a_dead_worker_names_how_it_died(hook, when, sig):
    """The main process learns of the death when it writes: no BrokenPipeError leaks."""
    model, x, y = tiny()
    workers = Workers(hook, sig, wait=True)
    fit_fails(model, x, y, workers, rf"^data-parallel worker 1 was killed by signal "
              rf"{sig.name} {when} \(pid \d+\)$", 3.0)
    assert workers.procs[0].exitcode == -sig


def test_sigterm_to_a_worker_alone_is_ignored():
    """SIGTERM reaches workers with the rest of a process group (a batch scheduler): the
    main process alone decides whether to stop."""
    model, x, y = tiny()
    workers = Workers("batch_end", signal.SIGTERM)
    model.fit(x, y, batch_size=4, epochs=3, verbose=0, processes=2, callbacks=[workers])
    assert workers.procs[0].exitcode == 0
    no_process_left(workers)


@pytest.mark.parametrize("error", [KeyboardInterrupt, ArithmeticError])
def test_an_interrupt_or_error_in_the_main_process_stops_the_workers_at_once(error):
    class Raise(Callback):
        def on_batch_end(self, batch, logs=None):
            raise error("in the main process")

    model, x, y = tiny()
    workers = Workers()
    began = time.monotonic()
    with pytest.raises(error):
        model.fit(x, y, batch_size=4, verbose=0, processes=2, callbacks=[workers, Raise()])
    assert time.monotonic() - began < 2.0
    no_process_left(workers)


def test_a_failed_data_parallel_object_refuses_further_work(short_timeout):
    model, x, y = tiny(InWorker("SIGKILL"))
    with P.DataParallel(model.trainer, [x], [y], 2) as dp:
        procs = list(multiprocessing.active_children())
        with pytest.raises(RuntimeError, match="killed by signal SIGKILL"):
            dp.forward_backward(np.arange(4), [x[:4]], [y[:4]])
        with pytest.raises(RuntimeError, match="stopped after an error: data-parallel "
                           "worker 1 was killed"):
            dp.forward_backward(np.arange(4), [x[:4]], [y[:4]])
    assert procs and all(p.exitcode == -signal.SIGKILL for p in procs)


def test_worker_timeout_reads_the_environment(monkeypatch):
    monkeypatch.delenv(P.TIMEOUT_ENV, raising=False)
    assert P.worker_timeout() == P.WORKER_TIMEOUT == 60.0
    monkeypatch.setenv(P.TIMEOUT_ENV, " 2.5 ")
    assert P.worker_timeout() == 2.5
    for bad in ("0", "-1", "nan", "inf", "soon"):
        monkeypatch.setenv(P.TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match=f"{P.TIMEOUT_ENV}='{bad}': expected a positive"):
            P.worker_timeout()
