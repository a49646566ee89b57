"""The fault sweep: bad inputs and faults, tried as a new user would, and what numcnn does.

Issue 10 ("Training that survives") counted, against the old main, 245 bad inputs and
faults: 148 clear errors, 11 tracebacks, 1 hang, 9 silent wrong results, 6 leaks and 1 case
of data loss. This script is the reproducible version of that count. It runs a catalogue of
cases — every option of ``numcnn train/evaluate/summary/bench`` with bad values, output
targets that are not ours to replace, checkpoint-folder misuse, damaged MNIST files, damaged
and hostile model and checkpoint files, bad environment variables, misuse of the Python API,
and faults (``kill -9``, SIGTERM, SIGINT during training, then ``--resume``; killed and
stopped data-parallel workers); and the newer commands (``fault_cases_newer.py``,
``fault_cases_pictures.py``, ``fault_cases_serving.py``): ``train --dataset``, clipping and
``--distribute``, ``predict``, ``plot``, ``serve``, ``export`` and ``numcnn.onnx.load`` —
each in its own subprocess with a timeout, in its own temporary folder, and classifies the
outcome:

* **clear** — a clear error: non-zero exit, exactly one line on stderr starting
  ``numcnn: error:`` (the command line) or the documented exception type (the API), no
  traceback, and the message matches what the catalogue says it must name (what was
  expected and/or what was received). A case whose due answer is a warning (``--threads``
  above the core count) is clear when it warns with one ``numcnn: warning:`` line;
* **correct** — an input that is valid after all (a batch larger than the data, missing
  parent folders) gave the verified right result;
* **survived** — a fault: the run was killed or stopped, and resuming (or restarting) gave
  final weights bit-identical (``np.array_equal``) to an uninterrupted run, with nothing
  left behind;
* **traceback** (or ``numcnn: internal error``, or an undocumented exception type from the
  API), **hang** (the timeout), **silent** (exit 0 / no exception where an error or a
  warning was due, or a wrong result), **leak** (a process left running — data-parallel
  workers after their main process is gone —, a ``.part`` temporary file, a half-written
  file), **data loss** (a file that existed before — a device, a FIFO, a model, a data file,
  a checkpoint — was replaced, modified or removed), **crash** (killed by a signal) and
  **unclear** (an error, but not one line, or a message that does not say what the
  catalogue asks; also a valid input refused) are defects.

Usage (from the source checkout; MNIST must be on disk, nothing is downloaded)::

    NUMCNN_DATA_DIR=../shared/data/mnist python benchmarks/fault_sweep.py
    python benchmarks/fault_sweep.py --quick            # skip the slow kill-and-resume runs
    python benchmarks/fault_sweep.py --only faults --only checkpoint
    python benchmarks/fault_sweep.py --list             # the catalogue, nothing run
    python benchmarks/fault_sweep.py --json sweep.json  # every case's raw result

It prints a markdown table per class (cases, clear errors, correct, survived, tracebacks,
hangs, silent, leaks, data loss, other) with totals, then every case that was not clear,
correct or survived with its command and the last line of its stderr, and exits 1 if there
was any. About 4–6 minutes on 2 cores (``--jobs`` cases run side by side; the faults run
one at a time). Run as root it also uses tmpfs and read-only bind mounts (a full disk, a
read-only folder); without that privilege those cases are skipped and listed as skipped.
The sweep only ever writes inside its own temporary folder (and its mounts there).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fnmatch
import gzip
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

QUICK = ["--train-size", "300", "--validation-size", "100", "--verbose", "0"]
#: the command line of the good checkpoint (fixtures) and of the cases that resume it
CKPT_ARGS = [*QUICK, "--batch-size", "50"]
GOOD = ("clear", "correct", "survived")
BAD = ("traceback", "hang", "silent", "leak", "data loss", "crash", "unclear")
#: when a case shows several problems, the one it is counted under (worst first)
PRIORITY = ("data loss", "hang", "crash", "traceback", "leak", "silent", "unclear")
COLUMNS = ("cases", "clear", "correct", "survived", "traceback", "hang", "silent", "leak",
           "data loss", "other")
MIRROR = "http://127.0.0.1:9/"  # a refused port: a case that tried to download fails fast


# ------------------------------------------------------------------------------- the cases
@dataclasses.dataclass
class Case:
    """One bad input or fault. ``argv`` (the command line after ``python -m numcnn``) or
    ``code`` (Python run in a subprocess) or ``runner`` (a fault: a function of
    ``(case, work, fx)`` returning a result)."""

    cls: str
    name: str
    argv: list[str] | None = None
    code: str | None = None
    runner: Callable[..., dict] | None = None
    #: "error" (a clear error is due), "warning" (a warning and success), "ok" (success,
    #: checked by ``verify``)
    expect: str = "error"
    #: regex the error/warning line (CLI) or the exception's message (API) must match
    match: str = ""
    #: API: the documented exception type(s) ("ModelFileError|FileNotFoundError")
    exc: str = "ValueError"
    setup: Callable[[Path, Fixtures], Any] | None = None
    teardown: Callable[[Path], Any] | None = None
    env: dict[str, str | None] = dataclasses.field(default_factory=dict)
    #: for "ok"/"warning": ``(work, fx, stdout, stderr) -> None or what is wrong``
    verify: Callable[..., str | None] | None = None
    #: globs (relative to the work folder) that the case may create or change
    changes: tuple[str, ...] = ()
    timeout: float = 60.0
    needs: str | None = None  # "mount": tmpfs / bind mounts (root)
    #: how a warning line starts (the command line's own warnings; bench says "note:")
    warn_prefix: str = "numcnn: warning:"

    @property
    def id(self) -> str:
        return f"{self.cls}/{self.name}"


@dataclasses.dataclass
class Fixtures:
    """Files every case may copy: a good model, a good checkpoint, MNIST's raw labels."""

    root: Path
    data: Path
    env: dict[str, str]
    model: Path = Path()
    ckpt: Path = Path()
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    ckpt_arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    labels: bytes = b""  # train-labels-idx1-ubyte, decompressed
    test_labels: bytes = b""
    model_bomb: Path = Path()
    idx_bomb: Path = Path()
    mount_ok: bool = False
    cores: int = 1
    tested: str = ""  # the numcnn package the subprocesses import
    refs: dict[tuple, Path] = dataclasses.field(default_factory=dict)

    def reference(self, args: list[str], checkpoints: bool = False) -> Path:
        """The final model of an uninterrupted ``numcnn train *args`` (cached), with a
        checkpoint folder of its own when ``checkpoints``."""
        key = (*args, checkpoints)
        if key not in self.refs:
            out = self.root / f"reference-{len(self.refs)}.npz"
            ck = ["--checkpoint-dir", str(self.root / f"reference-{len(self.refs)}")] \
                if checkpoints else []
            proc = subprocess.run([sys.executable, "-m", "numcnn", "train", *args, *ck,
                                   "--output", str(out)], env=self.env, cwd=self.root,
                                  timeout=600, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"reference run {args} failed: {proc.stderr}")
            self.refs[key] = out
        return self.refs[key]


# --------------------------------------------------------------------------- observation
def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: its kind, inode, device numbers, size, and for regular
    files the modification time and a hash; for links, the target."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            try:
                st = p.lstat()
            except OSError:
                continue
            key: tuple = (stat.S_IFMT(st.st_mode), st.st_ino, st.st_rdev)
            if stat.S_ISREG(st.st_mode):
                key += (st.st_size, st.st_mtime_ns, digest(p) if st.st_size < 1 << 27 else "")
            elif stat.S_ISLNK(st.st_mode):
                key += (os.readlink(p),)
            out[str(p.relative_to(root))] = key
    return out


def outside_snapshot(paths: list[str]) -> dict[str, tuple | None]:
    """Identity of absolute paths outside the work folder that a command names (/dev/...)."""
    out: dict[str, tuple | None] = {}
    for p in paths:
        try:
            st = os.lstat(p)
            out[p] = (stat.S_IFMT(st.st_mode), st.st_ino, st.st_rdev)
        except OSError:
            out[p] = None
    return out


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].decode().split()
    except OSError:
        return None


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = proc_stat(int(entry))
            if fields and fields[3] == str(sid) and fields[0] not in ("Z", "X"):
                pids.append(int(entry))
    return pids


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = proc_stat(int(entry))
            if fields and fields[1] == str(pid) and fields[0] not in ("Z", "X"):
                out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    fields = proc_stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def leftovers(sid: int, grace: float) -> list[int]:
    """Processes of the session still alive ``grace`` seconds after its leader ended; they
    are killed (a leak is counted, never left running)."""
    deadline = time.monotonic() + grace
    left = session_members(sid)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = session_members(sid)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.kill(pid, signal.SIGCONT)
    return left


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def outcome_of(issues: list[str], good: str) -> str:
    for kind in PRIORITY:
        if any(i.split(":")[0] == kind for i in issues):
            return kind
    return good


# ------------------------------------------------------------------------------- running
class Runner:
    def __init__(self, root: Path, fx: Fixtures, env: dict[str, str]):
        self.root, self.fx, self.env = root, fx, env
        self.count = 0
        self.lock = threading.Lock()

    def workdir(self, case: Case) -> tuple[Path, Path]:
        with self.lock:
            self.count += 1
            n = self.count
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", case.id)[:80]
        box = self.root / "cases" / f"{n:04d}-{slug}"
        work = box / "w"
        work.mkdir(parents=True)
        return box, work

    def case_env(self, case: Case, work: Path) -> dict[str, str]:
        env = dict(self.env)
        env["SWEEP_WORK"] = str(work)
        env["SWEEP_MODEL"] = str(self.fx.model)
        env["SWEEP_CKPT"] = str(self.fx.ckpt / "checkpoint.npz")
        for k, v in case.env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v.format(work=work, data=self.fx.data)
        return env

    def run(self, case: Case) -> dict:
        t0 = time.monotonic()
        box, work = self.workdir(case)
        result: dict[str, Any] = {"class": case.cls, "case": case.name, "expect": case.expect}
        try:
            if case.setup is not None:
                case.setup(work, self.fx)
            if case.runner is not None:
                result.update(case.runner(case, work, self.fx, self, box))
            else:
                result.update(self.run_command(case, box, work))
        except Exception as e:  # a broken case is reported, never hidden
            result.update(outcome="unclear", issues=[f"unclear: the sweep failed: {e!r}"],
                          command="", stderr_last=repr(e))
        finally:
            if case.teardown is not None:
                with contextlib.suppress(Exception):
                    case.teardown(work)
        result["seconds"] = round(time.monotonic() - t0, 2)
        return result

    # -- one subprocess, observed
    def spawn(self, cmd: list[str], work: Path, box: Path, env: dict[str, str],
              tag: str = "") -> tuple[subprocess.Popen, Path, Path]:
        out, err = box / f"stdout{tag}", box / f"stderr{tag}"
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL,
                                    stdout=o, stderr=e, start_new_session=True)
        return proc, out, err

    def finish(self, proc: subprocess.Popen, timeout: float) -> tuple[int | None, bool]:
        try:
            return proc.wait(timeout), False
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None, True

    def run_command(self, case: Case, box: Path, work: Path) -> dict:
        env = self.case_env(case, work)
        if case.argv is not None:
            argv = [a.format(work=work, data=self.fx.data, model=self.fx.model)
                    for a in case.argv]
            cmd = [sys.executable, "-m", "numcnn", *argv]
            shown = "numcnn " + " ".join(_quote(a, work) for a in argv)
        else:
            cmd = [sys.executable, "-c", api_program(case.code or "")]
            shown = "python: " + " ".join((case.code or "").split())[:300]
        outside = [a for a in cmd[3:] if a.startswith(("/dev/", "/proc/", "/sys/"))]
        before, before_out = snapshot(work), outside_snapshot(outside)
        proc, out_path, err_path = self.spawn(cmd, work, box, env)
        rc, hung = self.finish(proc, case.timeout)
        left = leftovers(proc.pid, 3.0)
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
        issues = self.file_issues(case, before, snapshot(work), work, failed=rc != 0)
        if outside_snapshot(outside) != before_out:
            issues.append(f"data loss: {outside} changed")
        if left:
            issues.append(f"leak: processes {left} outlived the command")
        if hung:
            issues.append(f"hang: no answer within {case.timeout:g} s")
        elif rc is not None and rc < 0:
            issues.append(f"crash: killed by {signal.Signals(-rc).name}")
        if case.argv is not None:
            good, more = judge_cli(case, rc, stdout, stderr, hung, work, self.fx)
        else:
            good, more = judge_api(case, rc, stdout, stderr, hung, work, self.fx)
        issues += more
        message = api_result(stdout).get("message", "") if case.code else last_line(stderr)
        return {"outcome": outcome_of(issues, good), "issues": issues, "command": shown,
                "rc": rc, "stderr_last": last_line(stderr)[:300],
                "message": str(message)[:300]}

    @staticmethod
    def file_issues(case: Case, before: dict, after: dict, work: Path,
                    failed: bool = True) -> list[str]:
        issues = []
        allowed = case.changes

        def ok(rel: str) -> bool:
            return any(fnmatch.fnmatch(rel, g) for g in allowed)

        for rel, key in before.items():
            if rel not in after:
                if not ok(rel):
                    issues.append(f"data loss: {rel} was removed")
            elif after[rel] != key and not ok(rel):
                what = "replaced" if after[rel][:2] != key[:2] else "modified"
                issues.append(f"data loss: {rel} was {what}")
        for rel, key in after.items():
            if rel in before:
                continue
            if rel.endswith(".part") or Path(rel).name.endswith(".part"):
                issues.append(f"leak: temporary file {rel} left behind")
            elif Path(rel).name == "pwned":
                issues.append("data loss: a pickled payload in the file was executed")
            elif case.expect == "error" and failed and key[0] != stat.S_IFDIR and not ok(rel):
                issues.append(f"leak: {rel} written by a command that failed")
        return issues


def _quote(arg: str, work: Path) -> str:
    arg = arg.replace(str(work) + "/", "").replace(str(work), ".")
    return arg if arg and re.fullmatch(r"[\w./:=,+-]+", arg) else repr(arg)


def one_line(stderr: str, prefix: str) -> str | None:
    """The error line when it is the only one (progress lines of a download aside)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()
             and not ln.startswith("numcnn: downloading ")]
    return lines[0] if len(lines) == 1 and lines[0].startswith(prefix) else None


def judge_cli(case: Case, rc: int | None, stdout: str, stderr: str, hung: bool, work: Path,
              fx: Fixtures) -> tuple[str, list[str]]:
    """(the good outcome, problems) of a command-line case."""
    issues = []
    if "Traceback" in stderr:
        issues.append("traceback: " + last_line(stderr))
    elif "numcnn: internal error" in stderr:
        issues.append("traceback: " + last_line(stderr))
    if hung or (rc is not None and rc < 0):
        return "clear", issues
    pattern = case.match.replace("{work}", re.escape(str(work)))
    if case.expect == "error":
        if rc == 0:
            issues.append("silent: exit 0 where an error was due")
        elif not issues:
            line = one_line(stderr, "numcnn: error:")
            if line is None:
                issues.append("unclear: not one 'numcnn: error:' line: "
                              + " | ".join(stderr.strip().splitlines()[-3:])[:300])
            elif not re.search(pattern, line):
                issues.append(f"unclear: the message does not match {case.match!r}")
        return "clear", issues
    if rc != 0:
        if not issues:
            issues.append(f"unclear: a valid input was refused (exit {rc})")
        return "correct", issues
    if case.expect == "warning":
        warned = [ln for ln in stderr.splitlines() if ln.startswith(case.warn_prefix)]
        if not any(re.search(pattern, ln) for ln in warned):
            issues.append("silent: no warning matching " + repr(case.match))
    if case.verify is not None:
        problem = case.verify(work, fx, stdout, stderr)
        if problem:
            issues.append("silent: " + problem)
    return ("clear" if case.expect == "warning" else "correct"), issues


PRELUDE = textwrap.dedent('''
    import json, os, resource, sys, traceback, warnings
    from pathlib import Path
    import numpy as np
    import numcnn
    WORK = Path(os.environ["SWEEP_WORK"])
    MODEL = Path(os.environ["SWEEP_MODEL"])
    CKPT = Path(os.environ["SWEEP_CKPT"])
    X = np.random.default_rng(0).random((32, 1, 8, 8), dtype=np.float32)
    Y = np.arange(32) % 10

    def tiny(seed=0):
        from numcnn.layers import Dense, Flatten
        m = numcnn.Sequential([Flatten(), Dense(10)], input_shape=(1, 8, 8), seed=seed)
        m.compile(optimizer="sgd", loss="softmax_cross_entropy", metrics=["accuracy"])
        return m

    def _limit():  # an unbounded allocation surfaces as MemoryError, not as a dead machine
        with open("/proc/self/status") as f:
            vm = next(int(ln.split()[1]) for ln in f if ln.startswith("VmSize:")) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))

    _limit()
    _out = {}
    with warnings.catch_warnings(record=True) as _w:
        warnings.simplefilter("always")
        _ns = dict(globals())
        try:
            exec(compile(CODE, "<case>", "exec"), _ns)
        except BaseException as e:
            _out = dict(raised=type(e).__name__, message=str(e)[:3000],
                        mro=[c.__name__ for c in type(e).__mro__],
                        tb=traceback.format_exc()[-3000:])
        else:
            _out = dict(raised=None, result=repr(_ns.get("result"))[:500])
    _out["warnings"] = [str(w.message)[:500] for w in _w]
    print("@@RESULT " + json.dumps(_out), flush=True)
''')


def api_program(code: str) -> str:
    return f"CODE = {textwrap.dedent(code)!r}\n" + PRELUDE


def api_result(stdout: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith("@@RESULT "):
            return json.loads(line[len("@@RESULT "):])
    return {}


def judge_api(case: Case, rc: int | None, stdout: str, stderr: str, hung: bool, work: Path,
              fx: Fixtures) -> tuple[str, list[str]]:
    """(the good outcome, problems) of a Python API case."""
    issues: list[str] = []
    if hung or (rc is not None and rc < 0):
        return "clear", issues
    res = api_result(stdout)
    if not res:
        return "clear", ["traceback: the program died: " + last_line(stderr)]
    pattern = case.match.replace("{work}", re.escape(str(work)))
    expected = case.exc.split("|")
    if res.get("raised"):
        if case.expect == "warning" and set(expected) & set(res.get("mro", [])) \
                and re.search(pattern, res["message"]):
            return "clear", issues  # an error is as clear as the warning that was due
        if case.expect != "error":
            issues.append(f"unclear: a valid call raised {res['raised']}: {res['message']}")
        elif not set(expected) & set(res.get("mro", [])):
            issues.append(f"traceback: {res['raised']}: {res['message'][:200]} (expected "
                          f"{case.exc})")
        elif "Traceback" in res["message"]:
            issues.append("unclear: a traceback inside the message")
        elif not re.search(pattern, res["message"]):
            issues.append(f"unclear: the message does not match {case.match!r}")
        return "clear", issues
    if case.expect == "error":
        issues.append(f"silent: no exception (returned {res.get('result')})")
        return "clear", issues
    if case.expect == "warning" and not any(re.search(pattern, w)
                                            for w in res.get("warnings", [])):
        issues.append(f"silent: no warning matching {case.match!r}")
    if case.verify is not None:
        problem = case.verify(work, fx, stdout, stderr)
        if problem:
            issues.append("silent: " + problem)
    elif case.expect == "ok" and res.get("result") != "True":
        issues.append(f"silent: wrong result {res.get('result')}")
    return ("clear" if case.expect == "warning" else "correct"), issues


# --------------------------------------------------------------------- file making helpers
def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def weights_equal(a: Path, b: Path) -> str | None:
    """None when the parameters and buffers of two model files are bit-identical."""
    wa, wb = load_arrays(a), load_arrays(b)
    keys = sorted(k for k in wa if k.startswith(("param/", "buffer/")))
    if keys != sorted(k for k in wb if k.startswith(("param/", "buffer/"))):
        return "the files hold different entries"
    diff = [k for k in keys if not np.array_equal(wa[k], wb[k])]
    return f"weights differ from the uninterrupted run: {diff[:3]}" if diff else None


def npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def write_zip(path: Path, members: list[tuple[str, Any]]) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        with zipfile.ZipFile(path, "w") as z:
            for key, value in members:
                z.writestr(key if key.endswith(".txt") else key + ".npy",
                           value if isinstance(value, bytes) else npy(value))


def config_of(arrays: dict) -> dict:
    return json.loads(str(arrays["__config__"]))


def with_config(arrays: dict, cfg: Any) -> dict:
    return {**arrays, "__config__": np.array(json.dumps(cfg))}


class Payload:
    """Unpickling this runs ``touch pwned``: a file that appears proves pickle was used."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def bomb_member(key_shape: tuple[int, ...], inflate: int) -> bytes:
    """A deflated zip of one member: an .npy header for ``key_shape`` float32, then
    ``inflate`` zero bytes (a few hundred KiB on disk)."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "<f4", "fortran_order": False, "shape": key_shape})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("param/dense/W.npy", "w") as w:
            w.write(head.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(inflate >> 20):
                w.write(chunk)
    return buf.getvalue()


def patch_central(data: bytes, name: str, **fields: int) -> bytes:
    """Change fields of member ``name``'s central-directory record and local header."""
    buf = bytearray(data)
    offsets = {"crc": (16, 14, "<L"), "compressed": (20, 18, "<L"), "size": (24, 22, "<L"),
               "method": (10, 8, "<H"), "flags": (8, 6, "<H")}
    eocd = buf.rindex(b"PK\x05\x06")
    count, _, cd = struct.unpack("<HLL", buf[eocd + 10: eocd + 20])
    for _ in range(count):
        n, m, k = struct.unpack("<HHH", buf[cd + 28: cd + 34])
        local = struct.unpack("<L", buf[cd + 42: cd + 46])[0]
        if buf[cd + 46: cd + 46 + n].decode() == name:
            for field, value in fields.items():
                central, loc, fmt = offsets[field]
                struct.pack_into(fmt, buf, cd + central, value)
                struct.pack_into(fmt, buf, local + loc, value)
            return bytes(buf)
        cd += 46 + n + m + k
    raise KeyError(name)


def bomb_archive(arrays: dict, bomb: bytes) -> bytes:
    """``arrays`` with ``param/dense/W`` replaced by the deflated bomb member."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(bomb)) as src, zipfile.ZipFile(out, "w") as z:
        for k, v in arrays.items():
            if k != "param/dense/W":
                z.writestr(k + ".npy", npy(v))
        info = src.getinfo("param/dense/W.npy")
        with src.open(info) as r, z.open(info, "w") as w:  # copied, deflated again
            shutil.copyfileobj(r, w, 1 << 20)
    return out.getvalue()


def mknod_char(path: Path) -> None:
    """A character device of our own (the numbers of /dev/full): a victim that may be lost
    without harm to the machine."""
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 7))


def make_socket(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()


def mount(kind: str, where: Path, size: str = "64k") -> None:
    where.mkdir(parents=True, exist_ok=True)
    if kind == "tmpfs":
        cmd = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]
    else:
        cmd = ["mount", "--bind", "-o", "ro", str(where), str(where)]
    subprocess.run(cmd, check=True, capture_output=True)


def umount_all(work: Path) -> None:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for p in reversed(points):
        p = p.replace("\\040", " ")
        if p.startswith(str(work)):
            subprocess.run(["umount", "-l", p], capture_output=True)


def idx_header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def gzip_stream(path: Path, head: bytes, zeros: int) -> None:
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(head)
        chunk = bytes(1 << 20)
        for _ in range(zeros >> 20):
            f.write(chunk)


# --------------------------------------------------------------------------- the catalogue
def cli(cls: str, name: str, argv: list[str], match: str = "", **kw: Any) -> Case:
    return Case(cls, name, argv=argv, match=match, **kw)


def api(cls: str, name: str, code: str, exc: str = "ValueError", match: str = "",
        **kw: Any) -> Case:
    return Case(cls, name, code=code, exc=exc, match=match, **kw)


def tested(work: Path, fx: Fixtures, out: str, err: str) -> str | None:
    return None if "Test loss" in out else "no test result"


def flag_cases() -> list[Case]:
    """Every option of the four commands with bad values."""
    cases: list[Case] = []
    c = "command-line options"

    def bad_numbers(command: list[str], flag: str, kind: str, values: list[str]) -> None:
        what = {"pos-int": "a positive int", "nonneg-int": "a non-negative int",
                "pos-float": "a positive float", "nonneg-float": "a non-negative float"}[kind]
        for v in values:
            match = re.escape(f"{flag} must be {what}; received {v!r}")
            if v.startswith("-") and not re.fullmatch(r"-[\d.]+", v):
                match = re.escape(f"argument {flag}: expected one argument")  # argparse's
            cases.append(cli(c, f"{command[0]} {flag} {v!r}", [*command, flag, v], match))

    train = ["train", *QUICK]
    int_bad = ["-1", "0", "abc", "1.5", "nan", "inf", "", "1e3"]
    for flag in ("--epochs", "--batch-size", "--train-size", "--threads",
                 "--checkpoint-every"):
        bad_numbers(train, flag, "pos-int", int_bad)
    for flag in ("--seed", "--validation-size"):
        bad_numbers(train, flag, "nonneg-int", ["-1", "abc", "1.5", "nan", ""])
    bad_numbers(train, "--lr", "pos-float", ["-0.1", "0", "abc", "nan", "inf", "-inf", "",
                                             "1e999"])
    for flag in ("--momentum", "--dropout"):
        bad_numbers(train, flag, "nonneg-float", ["-0.5", "abc", "nan", "inf", ""])
    cases += [
        cli(c, "train --dropout 1", [*train, "--dropout", "1"], r"rate.*received rate=1"),
        cli(c, "train --dropout 1.5", [*train, "--dropout", "1.5"], r"received rate=1\.5"),
        cli(c, "train --momentum 1.5 (diverges)", [*train, "--momentum", "1.5"],
            r"momentum|loss became nan"),
        cli(c, "train --lr 1e300 (diverges)", [*train, "--lr", "1e300"],
            r"loss became nan.*lower the learning rate"),
        cli(c, "train --validation-size 300 (all the data)", [*train, "--validation-size",
                                                                "300"],
            r"--validation-size must be below 300; received 300"),
        cli(c, "train --validation-size 10**12", [*train, "--validation-size", str(10**12)],
            r"--validation-size must be below 300; received 1000000000000"),
        cli(c, "train --model nosuch", [*train, "--model", "nosuch"],
            r"unknown model 'nosuch'; expected one of: .*lenet5, lenet5-1998"),
        cli(c, "train --model ''", [*train, "--model", ""], r"unknown model ''; expected"),
        cli(c, "train --optimizer nosuch", [*train, "--optimizer", "nosuch"],
            r"unknown optimizer 'nosuch'; expected one of"),
        cli(c, "train --optimizer ''", [*train, "--optimizer", ""],
            r"optimizer ''.*expected"),
        cli(c, "train --loss nosuch", [*train, "--loss", "nosuch"],
            r"unknown loss 'nosuch'; expected one of"),
        cli(c, "train --loss '' (the default loss)", [*train, "--loss", ""], expect="ok",
            verify=tested),
        cli(c, "train --loss mse (one-hot labels)", [*train, "--loss", "mse"], expect="ok",
            verify=tested),
        cli(c, "train --schedule nosuch", [*train, "--schedule", "nosuch"],
            r"nosuch.*expected"),
        cli(c, "train --schedule ''", [*train, "--schedule", ""], r"schedule.*empty|expected"),
        cli(c, "train --schedule step:step_size=-1", [*train, "--schedule",
                                                      "step:step_size=-1"],
            r"step_size must be a positive int; received"),
        cli(c, "train --schedule step:gamma=abc", [*train, "--schedule", "step:gamma=abc"],
            r"gamma.*abc"),
        cli(c, "train --schedule cosine:nosuch=1", [*train, "--schedule", "cosine:nosuch=1"],
            r"nosuch"),
        cli(c, "train --schedule step:step_size", [*train, "--schedule", "step:step_size"],
            r"step_size"),
        cli(c, "train --augment bogus", [*train, "--augment", "bogus"],
            r"invalid choice: 'bogus' \(choose from"),
        cli(c, "train --verbose 3", [*train, "--verbose", "3"], r"invalid choice: 3"),
        cli(c, "train --verbose abc", [*train, "--verbose", "abc"],
            r"--verbose: invalid int value: 'abc'"),
        cli(c, "train --bogus", [*train, "--bogus"], r"unrecognized arguments: --bogus"),
        cli(c, "train --epochs (no value)", ["train", "--epochs"],
            r"--epochs: expected one argument"),
        cli(c, "train extra positional", [*train, "model.npz"],
            r"unrecognized arguments: model.npz"),
        cli(c, "train --data-dir '' (as an empty $NUMCNN_DATA_DIR: not named)",
            [*train, "--data-dir", ""], expect="ok", verify=tested),
        cli(c, "no command", [], r"the following arguments are required|command"),
        cli(c, "unknown command", ["fit"], r"invalid choice: 'fit'"),
    ]
    # evaluate
    ev = ["evaluate", "{model}"]
    for v in ["-1", "0", "abc", "1.5", "nan", ""]:
        cases.append(cli(c, f"evaluate --batch-size {v!r}", [*ev, "--batch-size", v],
                         re.escape(f"--batch-size must be a positive int; received {v!r}")))
    for v in ["-1", "0", "abc", "1.5", ""]:
        cases.append(cli(c, f"evaluate --threads {v!r}", [*ev, "--threads", v],
                         re.escape(f"--threads must be a positive int; received {v!r}")))
    cases += [
        cli(c, "evaluate (no path)", ["evaluate"], r"required: path"),
        cli(c, "evaluate --data-dir missing", [*ev, "--data-dir", "nowhere"],
            r"'nowhere'.*does not exist"),
        cli(c, "evaluate --bogus", [*ev, "--bogus"], r"unrecognized arguments: --bogus"),
        cli(c, "evaluate two paths", [*ev, "{model}"], r"unrecognized arguments"),
    ]
    # summary
    cases += [
        cli(c, "summary nosuch", ["summary", "nosuch"],
            r"unknown model 'nosuch'; expected one of"),
        cli(c, "summary ''", ["summary", ""], r"unknown model ''; expected"),
        cli(c, "summary (no model)", ["summary"], r"required: model"),
        cli(c, "summary missing.npz", ["summary", "missing.npz"], r"missing\.npz"),
        cli(c, "summary --bogus", ["summary", "lenet5", "--bogus"],
            r"unrecognized arguments: --bogus"),
    ]
    # bench
    bench = ["bench", "--synthetic", "--steps", "1", "--repeats", "1", "--no-inference"]
    for flag, values in (("--threads", ["0", "-1", "abc", "nan"]),
                         ("--batch-size", ["0", "-1", "abc", "nan", "1.5"]),
                         ("--repeats", ["0", "-1", "abc"]), ("--seed", ["-1", "abc"])):
        kind = "nonneg-int" if flag == "--seed" else "pos-int"
        bad_numbers(bench, flag, kind, values)
    for v in ["0", "-1", "abc"]:
        cases.append(cli(c, f"bench --steps {v!r}", ["bench", "--steps", v],
                         re.escape(f"--steps must be a positive int; received {v!r}")))
        cases.append(cli(c, f"bench --epochs {v!r}", ["bench", "--epochs", v],
                         re.escape(f"--epochs must be a positive int; received {v!r}")))
    cases += [
        cli(c, "bench --steps and --epochs", ["bench", "--steps", "5", "--epochs", "1"],
            r"not allowed with argument"),
        cli(c, "bench --model nosuch", [*bench, "--model", "nosuch"],
            r"unknown model 'nosuch'; expected one of"),
        cli(c, "bench --data-dir missing (random images, said)",
            ["bench", "--steps", "1", "--repeats", "1", "--no-inference", "--data-dir",
             "nowhere"], r"MNIST unavailable.*'nowhere'.*random images",
            expect="warning", warn_prefix="note:"),
        cli(c, "bench --threads (no value)", ["bench", "--threads"],
            r"--threads: expected at least one argument"),
    ]
    return cases


def model_damages() -> dict[str, tuple[Callable[[Path, dict, Fixtures], None], str]]:
    """Damage kinds of a model (or checkpoint) file: a writer from the good file's arrays,
    and what the error must say (beside the file's name)."""

    def raw(fn: Callable[[bytes], bytes]) -> Callable:
        def make(path: Path, arrays: dict, fx: Fixtures) -> None:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            path.write_bytes(fn(buf.getvalue()))
        return make

    def cfg(mutate: Callable[[dict], Any]) -> Callable:
        def make(path: Path, arrays: dict, fx: Fixtures) -> None:
            c = config_of(arrays)
            out = mutate(c)
            np.savez(path, **with_config(arrays, c if out is None else out))
        return make

    def layers(c: dict) -> list:
        return c["model"]["config"]["layers"]

    def dense(c: dict, i: int = -1) -> dict:
        return [lay for lay in layers(c) if lay["class_name"] == "Dense"][i]["config"]

    def entries(change: Callable[[dict], dict]) -> Callable:
        def make(path: Path, arrays: dict, fx: Fixtures) -> None:
            np.savez(path, **change(dict(arrays)))
        return make

    def members(extra: list[tuple[str, Any]]) -> Callable:
        def make(path: Path, arrays: dict, fx: Fixtures) -> None:
            write_zip(path, list(arrays.items()) + extra)
        return make

    def setitem(d: dict, k: str, v: Any) -> dict:
        d[k] = v
        return d

    def nan_at(key: str, value: float = np.nan) -> Callable:
        def change(a: dict) -> dict:
            arr = a[key].copy()
            arr.flat[0] = value
            a[key] = arr
            return a
        return change

    def flip(at: float) -> Callable[[bytes], bytes]:
        def fn(b: bytes) -> bytes:
            i = int(len(b) * at)
            return b[:i] + bytes([b[i] ^ 0xFF]) + b[i + 1:]
        return fn

    def bomb(lying: bool) -> Callable:
        def make(path: Path, arrays: dict, fx: Fixtures) -> None:
            data = bomb_archive(arrays, fx.model_bomb.read_bytes())
            if lying:  # the directory declares the size of the real entry
                data = patch_central(data, "param/dense/W.npy",
                                     size=128 + arrays["param/dense/W"].nbytes)
            path.write_bytes(data)
        return make

    def pickled(path: Path, arrays: dict, fx: Fixtures) -> None:
        obj = np.empty(1, dtype=object)
        obj[0] = Payload()
        buf = io.BytesIO()
        np.lib.format.write_array(buf, obj, allow_pickle=True)
        write_zip(path, [(k, v) for k, v in arrays.items() if k != "param/dense/b"]
                  + [("param/dense/b", buf.getvalue())])

    def member_flip(name: str) -> Callable:
        def make(path: Path, arrays: dict, fx: Fixtures) -> None:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            data = bytearray(buf.getvalue())
            info = zipfile.ZipFile(buf).getinfo(name)
            data[info.header_offset + 30 + len(info.filename) + 128 + 40] ^= 0x10
            path.write_bytes(bytes(data))
        return make

    def central(offset: Callable[[int, int], int], name: str = "param/dense/W.npy"
                ) -> Callable:
        """Flip a byte of ``name``'s central-directory record."""
        def make(path: Path, arrays: dict, fx: Fixtures) -> None:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            data = bytearray(buf.getvalue())
            eocd = data.rindex(b"PK\x05\x06")
            count, _, cd = struct.unpack("<HLL", data[eocd + 10: eocd + 20])
            for _ in range(count):
                n, m, k = struct.unpack("<HHH", data[cd + 28: cd + 34])
                if data[cd + 46: cd + 46 + n].decode() == name:
                    data[cd + offset(cd, n)] ^= 0x20
                    break
                cd += 46 + n + m + k
            path.write_bytes(bytes(data))
        return make

    def single_npy(path: Path, arrays: dict, fx: Fixtures) -> None:
        path.write_bytes(npy(arrays["param/dense/W"]))

    def pickle_file(path: Path, arrays: dict, fx: Fixtures) -> None:
        path.write_bytes(pickle.dumps(Payload()))

    d: dict[str, tuple[Callable, str]] = {
        "truncated to half": (raw(lambda b: b[: len(b) // 2]), r"zip|truncat|damaged"),
        "truncated by one byte": (raw(lambda b: b[:-1]), r"zip|truncat|damaged"),
        "first 100 bytes only": (raw(lambda b: b[:100]), r"zip|truncat|damaged"),
        "garbage": (raw(lambda b: bytes(np.random.default_rng(0).integers(
            0, 256, 4096, dtype=np.uint8))), r"expected a zip"),
        "empty": (raw(lambda b: b""), r"empty|expected a zip"),
        "bit flip in a weight": (member_flip("param/dense/W.npy"), r"param/dense/W.*CRC"),
        "bit flip in the optimizer state": (member_flip("optim/state/dense/W/v.npy"),
                                            r"optim/state/dense/W/v.*CRC"),
        "CRC flipped in the directory": (central(lambda rec, n: 16), r"CRC|damaged"),
        "an entry's name flipped in the directory": (central(lambda rec, n: 46 + 1),
                                                     r"pAram|unexpected|local header|name"),
        "a size flipped in the directory": (central(lambda rec, n: 24 + 2),
                                            r"size|declares|damaged|expected"),
        "text file": (raw(lambda b: b"this is not a model\n" * 40), r"expected a zip"),
        "a pickle": (pickle_file, r"expected a zip"),
        "a single .npy": (single_npy, r"a single \.npy array"),
        "zip bomb (256 MiB member)": (bomb(False), r"param/dense/W.*expected shape|budget"),
        "lying zip bomb": (bomb(True), r"param/dense/W.*(CRC|damaged|archive declares)"),
        "no config": (entries(lambda a: {k: v for k, v in a.items() if k != "__config__"}),
                      r"no __config__ entry"),
        "config not text": (entries(lambda a: setitem(a, "__config__", np.zeros(3))),
                            r"one string.*received"),
        "config not JSON": (entries(lambda a: setitem(a, "__config__", np.array("{nope"))),
                            r"not JSON"),
        "config a list": (cfg(lambda c: [1, 2, 3]), r"JSON object; received list"),
        "config nested too deep": (entries(lambda a: setitem(
            a, "__config__", np.array("[" * 50000 + "]" * 50000))), r"nested too deeply"),
        "config without 'model'": (cfg(lambda c: c.pop("model") and None), r"model"),
        "config without 'format'": (cfg(lambda c: c.pop("format") and None), r"format"),
        "format 3": (cfg(lambda c: setitem(c, "format", 3)), r"format 3; expected 1 or 2"),
        "format a string": (cfg(lambda c: setitem(c, "format", "2")), r"format '2'"),
        "unknown top-level key": (cfg(lambda c: setitem(c, "hello", 1)),
                                  r"unknown keys \['hello'\]"),
        "model not an object": (cfg(lambda c: setitem(c, "model", [1])), r"'model' must be"),
        "model without class_name": (cfg(lambda c: c["model"].pop("class_name") and None),
                                     r"class_name"),
        "model config not an object": (cfg(lambda c: setitem(c["model"], "config", 5) and None),
                                       r"config"),
        "layers not a list": (cfg(lambda c: setitem(c["model"]["config"], "layers", "x")
                                  and None), r"layers"),
        "a layer not an object": (cfg(lambda c: layers(c).__setitem__(0, 7)), r"layer"),
        "unknown layer": (cfg(lambda c: layers(c)[0].update(class_name="Nope")),
                          r"unknown layer class 'Nope'"),
        "unknown model class": (cfg(lambda c: c["model"].update(class_name="NoSuchModel")),
                                r"NoSuchModel"),
        "a layer as the model": (cfg(lambda c: c["model"].update(class_name="Dense")),
                                 r"Dense layer; expected a model"),
        "stride 0": (cfg(lambda c: layers(c)[0]["config"].update(stride=[0, 1])),
                     r"stride must be positive"),
        "negative units": (cfg(lambda c: dense(c).update(units=-5)), r"units"),
        "units a string": (cfg(lambda c: dense(c).update(units="10")), r"units"),
        "units a float": (cfg(lambda c: dense(c).update(units=10.5)), r"units"),
        "units 10**12": (cfg(lambda c: dense(c).update(units=10 ** 12)),
                         r"would allocate at least.*over the budget"),
        "input 10**6 x 10**6": (cfg(lambda c: c["model"]["config"].update(
            input_shape=[1, 10 ** 6, 10 ** 6])), r"values per sample|budget"),
        "negative input size": (cfg(lambda c: c["model"]["config"].update(
            input_shape=[1, -28, 28])), r"input_shape|negative|positive"),
        "kernel larger than the input": (cfg(lambda c: layers(c)[0]["config"].update(
            kernel_size=[99, 99])), r"conv2d|kernel|larger|input"),
        "config disagrees with the weights": (cfg(lambda c: dense(c).update(units=11)),
                                              r"param/dense_2/W.*expected shape"),
        "missing weight": (entries(lambda a: {k: v for k, v in a.items()
                                               if k != "param/dense/b"}),
                           r"param/dense/b.*does not hold"),
        "unknown weight": (entries(lambda a: setitem(a, "param/dense/zzz",
                                                     np.zeros(3, np.float32))),
                           r"unexpected entries \['param/dense/zzz'\]"),
        "misshaped weight": (entries(lambda a: setitem(a, "param/dense/W",
                                                       np.zeros((2, 2), np.float32))),
                             r"param/dense/W.*expected shape \(400, 120\).*received \(2, 2\)"),
        "float64 weight": (entries(lambda a: setitem(a, "param/dense/b", np.zeros(120))),
                           r"expected float32 weights.*received <f8"),
        "integer weight": (entries(lambda a: setitem(a, "param/dense/b",
                                                     np.zeros(120, np.int32))),
                           r"expected float32 weights.*received <i4"),
        "string weight": (entries(lambda a: setitem(a, "param/dense/b",
                                                    np.array(["x"] * 120))),
                         r"expected float32 weights.*received <U1"),
        "complex weight": (entries(lambda a: setitem(a, "param/dense/b",
                                                     np.zeros(120, np.complex64))),
                           r"refused|expected float32"),
        "NaN weight": (entries(nan_at("param/dense/W")),
                       r"param/dense/W.*expected finite weights"),
        "infinite weight": (entries(nan_at("param/conv2d/b", np.inf)),
                            r"param/conv2d/b.*expected finite weights"),
        "NaN optimizer state": (entries(nan_at("optim/state/dense/W/v")),
                                r"optim/state/dense/W/v.*finite"),
        "pickled object array (code inside)": (pickled, r"param/dense/b.*dtype 'object'"),
        "record array": (members([("param/x", np.zeros(2, "i4,f4"))]), r"param/x.*refused"),
        "duplicate entry": (members([("param/dense/b", np.zeros(120, np.float32))]),
                            r"two entries named 'param/dense/b.npy'"),
        "a non-.npy entry": (members([("README.txt", b"hello")]),
                             r"'README.txt' is not a \.npy array"),
        "trainer rng of 5 words": (entries(lambda a: setitem(a, "trainer/rng",
                                                             np.zeros(5, np.uint64))),
                                   r"trainer/rng.*6 uint64 words"),
        "negative epoch": (entries(lambda a: setitem(a, "trainer/epoch", np.array(-3))),
                           r"trainer/epoch.*received -3"),
        "optimizer lr -1": (entries(lambda a: setitem(a, "optim/lr", np.array(-1.0))),
                            r"lr must be positive"),
        "unknown optimizer": (cfg(lambda c: c["training"]["optimizer"].update(name="nope")),
                              r"unknown optimizer 'nope'"),
        "unknown loss": (cfg(lambda c: c["training"]["loss"][0].update(name="nope")),
                         r"nope"),
    }
    return d


def pixel_damages() -> dict[str, tuple[Any, str]]:
    """Bad ``extra.pixel_scale`` values (metadata the command line applies to images)."""
    return {"pixel_scale -1": (-1, r"pixel_scale.*received -1"),
            "pixel_scale 0": (0, r"pixel_scale.*received 0"),
            "pixel_scale a string": ("1/255", r"pixel_scale.*received '1/255'"),
            "pixel_scale infinite": (float("inf"), r"pixel_scale.*received inf"),
            "pixel_scale NaN": (float("nan"), r"pixel_scale.*received nan"),
            "pixel_scale true": (True, r"pixel_scale.*received True"),
            "pixel_scale 1e300": (1e300, r"pixel_scale.*received 1e\+300")}


def model_file_cases() -> list[Case]:
    """Damaged and hostile model files through evaluate, summary and load_model."""
    cases: list[Case] = []
    kinds = dict(model_damages())
    for name, (value, match) in pixel_damages().items():
        def make(path: Path, arrays: dict, fx: Fixtures, value: Any = value) -> None:
            c = config_of(arrays)
            c["extra"]["pixel_scale"] = value
            np.savez(path, **with_config(arrays, c))
        kinds[name] = (make, match)
    # summary reads the architecture and weights, not the training state; the pixel scale
    # is bounded only where it is applied to images (evaluate)
    training_only = {"bit flip in the optimizer state", "NaN optimizer state",
                     "negative epoch", "optimizer lr -1"}
    load = "m = numcnn.load_model('m.npz')\nresult = m is not None"
    for name, (make, match) in kinds.items():
        def setup(work: Path, fx: Fixtures, make: Callable = make) -> None:
            make(work / "m.npz", fx.arrays, fx)
        full = r"m\.npz.*(" + match + ")"
        cases.append(cli("model files: evaluate", name, ["evaluate", "m.npz"], full,
                         setup=setup))
        ok = name in training_only or name == "pixel_scale 1e300"
        cases.append(cli("model files: summary", name, ["summary", "m.npz"], full,
                         setup=setup, expect="ok" if ok else "error",
                         verify=(lambda w, fx, o, e: None if "dense_2" in o else "no table")
                         if ok else None))
        ok = name == "pixel_scale 1e300"
        cases.append(api("model files: load_model", name, load, "ModelFileError", full,
                         setup=setup, expect="ok" if ok else "error"))
    # what is at the path is not a file
    special = {
        "a folder": (lambda w, fx: (w / "m.npz").mkdir(), r"m\.npz"),
        "a FIFO": (lambda w, fx: os.mkfifo(w / "m.npz"), r"m\.npz"),
        "a socket": (lambda w, fx: make_socket(w / "m.npz"), r"m\.npz"),
        "a broken symlink": (lambda w, fx: os.symlink(w / "nowhere", w / "m.npz"), r"m\.npz"),
        "a symlink to /dev/zero": (lambda w, fx: os.symlink("/dev/zero", w / "m.npz"),
                                   r"m\.npz"),
        "missing": (None, r"m\.npz"),
    }
    for name, (setup, match) in special.items():
        cases.append(cli("model files: evaluate", name, ["evaluate", "m.npz"], match,
                         setup=setup))
        cases.append(cli("model files: summary", name, ["summary", "m.npz"], match,
                         setup=setup))
        cases.append(api("model files: load_model", name, "numcnn.load_model('m.npz')",
                         "ModelFileError|FileNotFoundError", match, setup=setup))
    for dev in ("/dev/null", "/dev/zero", "/dev/urandom"):
        cases.append(cli("model files: evaluate", dev, ["evaluate", dev], re.escape(dev)))
        cases.append(api("model files: load_model", dev, f"numcnn.load_model({dev!r})",
                         "ModelFileError|FileNotFoundError", re.escape(dev)))
    cases.append(cli("model files: evaluate", "an empty path", ["evaluate", ""],
                     r"empty|''|no model file"))
    return cases


def checkpoint_cases() -> list[Case]:
    """--checkpoint-dir misuse, disagreeing resumes and damaged checkpoints."""
    c = "checkpoint folder"
    cases: list[Case] = []

    def copy_ckpt(work: Path, fx: Fixtures) -> None:
        shutil.copytree(fx.ckpt, work / "ck", copy_function=shutil.copyfile)

    ck = [*CKPT_ARGS, "--checkpoint-dir", "ck"]
    targets: dict[str, tuple[str, Any, str]] = {
        "a regular file": ("ck", lambda w, fx: (w / "ck").write_text("mine"),
                           r"ck exists and is not a folder"),
        "our own character device": ("ck", lambda w, fx: mknod_char(w / "ck"),
                                     r"ck exists and is not a folder"),
        "/dev/full": ("/dev/full", None, r"/dev/full exists and is not a folder"),
        "a FIFO": ("ck", lambda w, fx: os.mkfifo(w / "ck"), r"ck exists and is not a folder"),
        "a socket": ("ck", lambda w, fx: make_socket(w / "ck"),
                     r"ck exists and is not a folder"),
        "a symlink to a file": ("ck", lambda w, fx: ((w / "f").write_text("mine"),
                                                     os.symlink(w / "f", w / "ck")),
                                r"ck exists and is not a folder"),
        "a broken symlink": ("ck", lambda w, fx: os.symlink(w / "nowhere", w / "ck"),
                             r"File exists: 'ck'|ck.*(broken|exists|not a folder)"),
        "the empty string": ("", None, r"--checkpoint-dir: the path is empty"),
        "blanks": ("   ", None, r"--checkpoint-dir: the path is empty"),
        "a path under a file": ("f/ck", lambda w, fx: (w / "f").write_text("mine"),
                                r"f.*(not a folder|Not a directory)"),
        "a folder under /proc": ("/proc/ck", None, r"(cannot|No such|denied).*/proc/ck"),
        "a folder under /sys": ("/sys/ck", None,
                                r"(cannot|No such|denied|not permitted|Read-only).*/sys/ck"),
        "a folder under /dev/null": ("/dev/null/ck", None, r"/dev/null.*(not a folder|Not a)"),
    }
    for name, (target, setup, match) in targets.items():
        cases.append(cli(c, f"--checkpoint-dir is {name}",
                         ["train", *QUICK, "--checkpoint-dir", target], match, setup=setup))

    def ro(work: Path, fx: Fixtures) -> None:
        mount("bind", work / "ro")

    def full(size: str) -> Callable:
        def setup(work: Path, fx: Fixtures) -> None:
            mount("tmpfs", work / "full", size)
        return setup

    cases += [
        cli(c, "--checkpoint-dir in a read-only folder", ["train", *QUICK, "--checkpoint-dir",
                                                          "ro/ck"],
            r"ro.*(Read-only|cannot)", setup=ro, teardown=umount_all, needs="mount"),
        cli(c, "--checkpoint-dir on a full disk", ["train", *QUICK, "--checkpoint-dir",
                                                   "full/ck"],
            r"full/ck.*No space left|No space left.*full/ck", setup=full("64k"),
            teardown=umount_all, needs="mount", changes=("full/ck",)),
        cli(c, "--checkpoint-dir holding the user's files", ["train", *QUICK,
                                                             "--checkpoint-dir", "ck"],
            expect="ok", changes=("ck/checkpoint.npz",),
            setup=lambda w, fx: ((w / "ck").mkdir(), (w / "ck" / "notes.txt").write_text("x"),
                                 (w / "ck" / "model.npz").write_bytes(fx.model.read_bytes())),
            verify=lambda w, fx, o, e: None if (w / "ck" / "checkpoint.npz").is_file()
            else "no checkpoint written"),
        cli(c, "an existing checkpoint without --resume", ck,
            r"already holds a checkpoint; pass --resume", setup=copy_ckpt),
        cli(c, "--resume on an empty folder", [*ck, "--resume"],
            r"--resume: no checkpoint in ck", setup=lambda w, fx: (w / "ck").mkdir()),
        cli(c, "--resume on a missing folder", [*ck, "--resume"],
            r"--resume: no checkpoint in ck"),
        cli(c, "--resume without --checkpoint-dir", [*CKPT_ARGS, "--resume"],
            r"--resume needs --checkpoint-dir"),
        cli(c, "--checkpoint-every without --checkpoint-dir", [*QUICK, "--checkpoint-every",
                                                                "3"],
            r"--checkpoint-every needs --checkpoint-dir"),
        cli(c, "--resume where checkpoint.npz is a folder", [*ck, "--resume"],
            r"no checkpoint in ck", setup=lambda w, fx: (w / "ck" / "checkpoint.npz").mkdir(
                parents=True)),
        cli(c, "checkpoint.npz is a FIFO, no --resume", ck,
            r"checkpoint", setup=lambda w, fx: ((w / "ck").mkdir(),
                                                os.mkfifo(w / "ck" / "checkpoint.npz"))),
        cli(c, "checkpoint.npz is a FIFO, --resume", [*ck, "--resume"],
            r"checkpoint", setup=lambda w, fx: ((w / "ck").mkdir(),
                                                os.mkfifo(w / "ck" / "checkpoint.npz"))),
        cli(c, "checkpoint.npz links to /dev/null, --resume", [*ck, "--resume"],
            r"checkpoint", setup=lambda w, fx: ((w / "ck").mkdir(),
                                                os.symlink("/dev/null",
                                                           w / "ck" / "checkpoint.npz"))),
    ]
    for i, c_ in enumerate(cases):  # "train" is implied for the ones built from QUICK
        if c_.argv and c_.argv[0] != "train":
            cases[i].argv = ["train", *c_.argv]
    # a resume whose command line disagrees
    others = {"--batch-size 20": (["--batch-size", "20"], r"batch_size: 50 in the checkpoint"),
              "--lr 0.1": (["--lr", "0.1"], r"lr: 0.05 in the checkpoint, 0.1 now"),
              "--seed 1": (["--seed", "1"], r"seed: 0 in the checkpoint, 1 now"),
              "--epochs 2": (["--epochs", "2"], r"epochs: 1 in the checkpoint, 2 now"),
              "--dropout 0.2": (["--dropout", "0.2"], r"dropout"),
              "--momentum 0.5": (["--momentum", "0.5"], r"momentum"),
              "--optimizer adam": (["--optimizer", "adam"], r"optimizer|Adam"),
              "--schedule constant": (["--schedule", "constant"], r"schedule"),
              "--loss mse": (["--loss", "mse"], r"loss"),
              "--train-size 400": (["--train-size", "400"], r"train_size: 300"),
              "--validation-size 50": (["--validation-size", "50"], r"validation_size: 100"),
              "--threads 2": (["--threads", "2"], r"threads: 1 in the checkpoint, 2 now"),
              "--model lenet5-1998": (["--model", "lenet5-1998"], r"model: 'lenet5'")}
    for name, (extra, match) in others.items():
        args = [*CKPT_ARGS, *extra]
        if "--train-size" in extra or "--validation-size" in extra:
            args = [a for a in QUICK] + ["--batch-size", "50"]
            idx = args.index(extra[0])
            args[idx + 1] = extra[1]
        cases.append(cli(c, f"--resume with {name}", ["train", *args, "--checkpoint-dir", "ck",
                                                      "--resume"],
                         r"disagrees with the checkpoint.*" + match, setup=copy_ckpt))
    # damaged checkpoints
    damages = model_damages()
    chosen = ["truncated to half", "truncated by one byte", "garbage", "empty",
              "bit flip in a weight", "CRC flipped in the directory", "zip bomb (256 MiB member)",
              "config not JSON", "config a list", "unknown layer", "units 10**12",
              "config disagrees with the weights", "missing weight", "NaN weight",
              "pickled object array (code inside)", "trainer rng of 5 words",
              "negative epoch", "NaN optimizer state", "a pickle"]

    def ckpt_meta(mutate: Callable[[dict], Any]) -> Callable:
        def make(path: Path, arrays: dict, fx: Fixtures) -> None:
            cfg_ = config_of(arrays)
            mutate(cfg_["extra"]["checkpoint"])
            np.savez(path, **with_config(arrays, cfg_))
        return make

    def setitem(d: dict, k: str, v: Any) -> None:
        d[k] = v

    kinds = {k: damages[k] for k in chosen}
    kinds.update({
        "a model file, not a checkpoint": (
            lambda p, a, fx: shutil.copyfile(fx.model, p), r"not a numcnn training checkpoint"),
        "run metadata a string": (ckpt_meta(lambda m: setitem(m, "run", "x")),
                                  r"checkpoint|run|disagrees"),
        "settings a list": (ckpt_meta(lambda m: setitem(m["run"], "settings", [1, 2])),
                            r"checkpoint|settings"),
        "callbacks a string": (ckpt_meta(lambda m: setitem(m, "callbacks", "x")),
                               r"checkpoint|callbacks"),
        "a callback entry a number": (ckpt_meta(lambda m: m["callbacks"].__setitem__(0, 5)),
                                      r"checkpoint|callback"),
        "a callback state a string": (ckpt_meta(lambda m: setitem(m["callbacks"][1], "state",
                                                                  "x")),
                                      r"checkpoint|state"),
        "scheduler state of wrong type": (ckpt_meta(lambda m: m["callbacks"][1]["state"].update(
            epoch="a", initial_lr=[1])), r"checkpoint|epoch|initial_lr"),
        "history state damaged": (ckpt_meta(lambda m: m["callbacks"][2]["state"].update(
            history="x", epoch=7)), r"checkpoint|history"),
        "trainer step 10**9": (lambda p, a, fx: np.savez(p, **{**a, "trainer/step":
                                                               np.array(10 ** 9)}),
                               r"trainer/step|damaged training state"),
    })
    for name, (make, match) in kinds.items():
        def setup(work: Path, fx: Fixtures, make: Callable = make) -> None:
            (work / "ck").mkdir()
            make(work / "ck" / "checkpoint.npz", fx.ckpt_arrays, fx)
        cases.append(cli(c, f"--resume from a damaged checkpoint: {name}",
                         ["train", *CKPT_ARGS, "--checkpoint-dir", "ck", "--resume"],
                         r"(checkpoint\.npz|ck).*(" + match + ")", setup=setup))
    return cases


def output_cases() -> list[Case]:
    """--output targets (and save_model's through the API) that are not ours to replace."""
    cases: list[Case] = []
    c = "output paths"

    def ro(work: Path, fx: Fixtures) -> None:
        mount("bind", work / "ro")

    def full(size: str, existing: bool = False) -> Callable:
        def setup(work: Path, fx: Fixtures) -> None:
            mount("tmpfs", work / "full", size)
            if existing:
                shutil.copyfile(fx.model, work / "full" / "m.npz")
        return setup

    targets: dict[str, tuple[str, Any, str, dict]] = {
        "/dev/full": ("/dev/full", None, r"/dev/full is a character device", {}),
        "/dev/null": ("/dev/null", None, r"/dev/null is a character device", {}),
        "our own character device": ("dev", lambda w, fx: mknod_char(w / "dev"),
                                     r"dev is a character device", {}),
        "a FIFO": ("fifo", lambda w, fx: os.mkfifo(w / "fifo"), r"fifo is a FIFO", {}),
        "a socket": ("sock", lambda w, fx: make_socket(w / "sock"), r"sock is a socket", {}),
        "a folder": ("dir", lambda w, fx: (w / "dir").mkdir(),
                     r"dir is a folder; expected a file name", {}),
        "a folder, with a slash": ("dir/", lambda w, fx: (w / "dir").mkdir(),
                                   r"dir is a folder", {}),
        "a missing folder, with a slash": ("newdir/", None, r"newdir.*(folder|file name)", {}),
        "a broken symlink": ("broken", lambda w, fx: os.symlink(w / "nowhere", w / "broken"),
                             r"broken is a broken symbolic link", {}),
        "a symlink loop": ("loop", lambda w, fx: os.symlink(w / "loop", w / "loop"),
                           r"loop.*symbolic link", {}),
        "a symlink to our device": ("link", lambda w, fx: (mknod_char(w / "dev"),
                                                           os.symlink(w / "dev", w / "link")),
                                    r"link is a character device", {}),
        "a symlink to a folder": ("link", lambda w, fx: ((w / "dir").mkdir(),
                                                         os.symlink(w / "dir", w / "link")),
                                  r"link is a folder", {}),
        "a symlink to a FIFO": ("link", lambda w, fx: (os.mkfifo(w / "fifo"),
                                                       os.symlink(w / "fifo", w / "link")),
                                r"link is a FIFO", {}),
        "the empty string": ("", None, r"--output: the path is empty", {}),
        "blanks": ("  ", None, r"--output: the path is empty", {}),
        "a path under a file": ("f/m.npz", lambda w, fx: (w / "f").write_text("mine"),
                                r"f/m\.npz \(Not a directory\)|f is not a folder", {}),
        "a path under /dev/null": ("/dev/null/m.npz", None,
                                   r"/dev/null/m\.npz \(Not a directory\)|/dev/null is not a "
                                   r"folder", {}),
        "/proc/version": ("/proc/version", None, r"cannot create a file in the folder /proc",
                          {}),
        "a new file in /proc": ("/proc/m.npz", None, r"cannot create a file in the folder /proc",
                                {}),
        "a new file in /proc/self": ("/proc/self/m.npz", None,
                                     r"cannot (create a file|write) in the folder /proc/self",
                                     {}),
        "a new file in /sys": ("/sys/m.npz", None, r"/sys", {}),
        "a read-only folder": ("ro/m.npz", ro, r"ro.*(Read-only|cannot)", {"needs": "mount"}),
        "a missing folder in a read-only one": ("ro/new/m.npz", ro, r"ro.*(Read-only|cannot)",
                                                {"needs": "mount"}),
        "a full disk": ("full/m.npz", full("64k"), r"full/m\.npz.*No space left",
                        {"needs": "mount"}),
        "a full disk holding the old model": ("full/m.npz", full("700k", True),
                                              r"full/m\.npz.*No space left",
                                              {"needs": "mount"}),
    }
    for name, (target, setup, match, extra) in targets.items():
        teardown = umount_all if extra.get("needs") else None
        cases.append(cli(c, f"--output is {name}", ["train", *QUICK, "--output", target],
                         match, setup=setup, teardown=teardown, **extra))
    def link_target(work: Path, fx: Fixtures) -> None:
        shutil.copyfile(fx.ckpt / "checkpoint.npz", work / "target.npz")  # another model
        os.symlink("target.npz", work / "link.npz")

    def through_link(work: Path, fx: Fixtures, out: str, err: str) -> str | None:
        if not (work / "link.npz").is_symlink():
            return "the symlink was replaced by a file"
        return weights_equal(work / "target.npz", fx.model)

    cases += [
        cli(c, "--output is a symlink to an older model", ["train", *QUICK, "--output",
                                                           "link.npz"],
            expect="ok", changes=("target.npz",), setup=link_target, verify=through_link),
        cli(c, "--output in missing folders", ["train", *QUICK, "--output", "a/b/c/m.npz"],
            expect="ok", changes=("a", "a/*"),
            verify=lambda w, fx, o, e: None if zipfile.is_zipfile(w / "a/b/c/m.npz")
            else "no model written"),
        cli(c, "--output over an older model", ["train", *QUICK, "--output", "m.npz"],
            expect="ok", changes=("m.npz",),
            setup=lambda w, fx: shutil.copyfile(fx.model, w / "m.npz"),
            verify=lambda w, fx, o, e: weights_equal(w / "m.npz", fx.model)),
    ]
    # the same through the API
    save = "numcnn.save_model(numcnn.models.get('lenet5'), {!r})"
    for name, target, setup, match, exc, extra in [
        ("our own character device", "dev", lambda w, fx: mknod_char(w / "dev"),
         r"character device", "ValueError", {}),
        ("a FIFO", "fifo", lambda w, fx: os.mkfifo(w / "fifo"), r"FIFO", "ValueError", {}),
        ("a socket", "sock", lambda w, fx: make_socket(w / "sock"), r"socket", "ValueError", {}),
        ("a folder", "dir", lambda w, fx: (w / "dir").mkdir(), r"folder", "ValueError", {}),
        ("a broken symlink", "broken", lambda w, fx: os.symlink(w / "x", w / "broken"),
         r"broken symbolic link", "ValueError", {}),
        ("the empty string", "", None, r"empty", "ValueError", {}),
        ("a path under a file", "f/m.npz", lambda w, fx: (w / "f").write_text("x"),
         r"not a folder", "ValueError", {}),
        ("a new file in /proc", "/proc/m.npz", None, r"/proc", "ValueError|OSError", {}),
        ("a read-only folder", "ro/m.npz", ro, r"ro", "ValueError|OSError", {"needs": "mount"}),
        ("a full disk holding the old model", "full/m.npz", full("700k", True),
         r"No space left", "ValueError|OSError", {"needs": "mount"}),
    ]:
        teardown = umount_all if extra.get("needs") else None
        cases.append(api(c, f"save_model to {name}", save.format(target), exc, match,
                         setup=setup, teardown=teardown, **extra))
    fit = ("m = tiny(); m.fit(X, Y, epochs=1, verbose=0, callbacks=[{}])\n"
           "result = 'trained'")
    cases += [
        api(c, "ModelCheckpoint to our own character device",
            fit.format("numcnn.training.ModelCheckpoint('dev')"), "ValueError",
            r"character device", setup=lambda w, fx: mknod_char(w / "dev")),
        api(c, "ModelCheckpoint to a folder", fit.format("numcnn.training.ModelCheckpoint('d')"),
            "ValueError", r"folder", setup=lambda w, fx: (w / "d").mkdir()),
        api(c, "CSVLogger to a FIFO", fit.format("numcnn.training.CSVLogger('fifo')"),
            "ValueError", r"FIFO", setup=lambda w, fx: os.mkfifo(w / "fifo")),
        api(c, "CSVLogger to our own character device",
            fit.format("numcnn.training.CSVLogger('dev')"), "ValueError", r"character device",
            setup=lambda w, fx: mknod_char(w / "dev")),
        api(c, "BackupAndRestore in a file", fit.format("numcnn.training.BackupAndRestore('f')"),
            "ValueError", r"not a folder", setup=lambda w, fx: (w / "f").write_text("x")),
    ]
    return cases


def data_cases() -> list[Case]:
    """Data folders that lack files or hold damaged ones (MNIST through the command line)
    and the IDX reader through the API."""
    c = "MNIST data"
    cases: list[Case] = []
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte"]
    env = {"NUMCNN_DATA_DIR": None}  # a user naming --data-dir, no variable set

    def folder(skip: tuple[str, ...] = (), files: dict[str, Any] | None = None) -> Callable:
        def setup(work: Path, fx: Fixtures) -> None:
            d = work / "d"
            d.mkdir()
            for n in names:
                if n not in skip:
                    os.symlink(fx.data / f"{n}.gz", d / f"{n}.gz")
            for fname, content in (files or {}).items():
                target = d / fname
                if callable(content):
                    content(target, fx)
                else:
                    target.write_bytes(content)
        return setup

    def labels(fn: Callable[[bytes], bytes], gz: bool = False, name: str = names[1]
               ) -> Callable:
        def write(target: Path, fx: Fixtures) -> None:
            data = fn(fx.labels if "train" in name else fx.test_labels)
            target.write_bytes(gzip.compress(data, 6) if gz else data)
        return write

    def gz_cut(name: str, frac: float) -> Callable:
        def write(target: Path, fx: Fixtures) -> None:
            data = (fx.data / f"{name}.gz").read_bytes()
            target.write_bytes(data[: int(len(data) * frac)])
        return write

    def gz_flip(name: str, frac: float) -> Callable:
        def write(target: Path, fx: Fixtures) -> None:
            data = bytearray((fx.data / f"{name}.gz").read_bytes())
            data[int(len(data) * frac)] ^= 0xFF
            target.write_bytes(bytes(data))
        return write

    def bomb(target: Path, fx: Fixtures) -> None:
        shutil.copyfile(fx.idx_bomb, target)

    def flip_at(i: int) -> Callable[[bytes], bytes]:
        return lambda b: b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1:]

    train = ["train", *QUICK, "--data-dir", "d"]
    lab = names[1]
    damaged: dict[str, tuple[Callable, str]] = {
        "the folder missing": (lambda w, fx: None, r"'d'.*does not exist"),
        "the folder a file": (lambda w, fx: (w / "d").write_text("x"), r"'d'.*not a directory"),
        "the folder empty": (lambda w, fx: (w / "d").mkdir(),
                             r"d.*train-images-idx3-ubyte.*t10k-labels-idx1-ubyte"),
        "the files under other names": (folder(skip=tuple(names), files={
            f"{n}.idx": b"" for n in names}), r"MNIST files not found.*d"),
        "labels truncated (raw)": (folder((lab,), {lab: labels(lambda b: b[:-100])}),
                                   rf"{lab}.*(truncated|short|expected)"),
        "labels truncated (gz)": (folder((lab,), {lab + ".gz": gz_cut(lab, 0.5)}),
                                  rf"{lab}.*(truncated|corrupt)"),
        "images truncated (gz)": (folder((names[0],), {names[0] + ".gz": gz_cut(names[0], 0.7)}),
                                  rf"{names[0]}.*(truncated|corrupt)"),
        "labels bit flip (raw)": (folder((lab,), {lab: labels(flip_at(5000))}),
                                  rf"{lab}.*expected SHA-256"),
        "labels bit flip (gz)": (folder((lab,), {lab + ".gz": gz_flip(lab, 0.5)}),
                                 rf"{lab}.*(corrupt|CRC|SHA-256|invalid|too long)"),
        "test images bit flip (gz)": (folder((names[2],), {names[2] + ".gz":
                                                            gz_flip(names[2], 0.3)}),
                                      rf"{names[2]}.*(corrupt|CRC|SHA-256|invalid|long)"),
        "labels wrong magic": (folder((lab,), {lab: labels(lambda b: b"\x12\x34" + b[2:])}),
                               rf"{lab}.*wrong magic"),
        "labels header declares 2**32-1 items": (folder((lab,), {lab: labels(
            lambda b: idx_header(8, (2 ** 32 - 1,)) + b[8:])}),
            rf"{lab}.*(expected|wrong file).*60000"),
        "labels header of an image file": (folder((lab,), {lab: labels(
            lambda b: idx_header(8, (60000, 28, 28)) + b[8:])}),
            rf"{lab}.*wrong file"),
        "labels with trailing bytes": (folder((lab,), {lab: labels(lambda b: b + b"x" * 100)}),
                                       rf"{lab}.*too long"),
        "labels empty": (folder((lab,), {lab: b""}), rf"{lab}.*too short"),
        "labels 3 bytes": (folder((lab,), {lab: b"\x00\x00\x08"}), rf"{lab}.*too short"),
        "labels a gzip bomb (256 MiB)": (folder((lab,), {lab + ".gz": bomb}),
                                         rf"{lab}.*too long"),
        "labels raw bytes named .gz": (folder((lab,), {lab + ".gz": labels(lambda b: b)}),
                                       rf"{lab}\.gz: not a gzip file"),
        "labels garbage named .gz": (folder((lab,), {lab + ".gz": bytes(range(256)) * 10}),
                                     rf"{lab}.*(wrong magic|corrupt|expected|not a gzip)"),
        "test labels in place of train labels": (folder((lab,), {lab: labels(
            lambda b: b, name=names[3])}), rf"{lab}.*wrong file.*60000"),
        "labels of type float32": (folder((lab,), {lab: labels(
            lambda b: b[:2] + b"\x0d" + b[3:8] + b"\x00" * 3 * 60000 + b[8:])}),
            rf"{lab}.*(uint8|float32|wrong file)"),
        "labels with 33 dimensions": (folder((lab,), {lab: labels(
            lambda b: idx_header(8, (1,) * 33))}), rf"{lab}.*(32|dimensions)"),
        "labels with 0 dimensions": (folder((lab,), {lab: labels(
            lambda b: idx_header(8, ()))}), rf"{lab}.*(zero dimensions|wrong)"),
        "labels a FIFO": (folder((lab,), {lab: lambda t, fx: os.mkfifo(t)}),
                          rf"{lab}"),
        "labels a folder": (folder((lab,), {lab: lambda t, fx: t.mkdir()}), rf"{lab}"),
        "labels a symlink loop": (folder((lab,), {lab: lambda t, fx: os.symlink(t, t)}),
                                  rf"{lab}"),
        "labels a broken symlink": (folder((lab,), {lab: lambda t, fx: os.symlink(
            t.parent / "nowhere", t)}), rf"{lab}"),
        "a damaged raw file beside a good .gz": (folder((), {lab: labels(flip_at(9000))}),
                                                 rf"{lab}.*expected SHA-256"),
    }
    for n in names:
        damaged[f"{n} missing"] = (folder((n,)), rf"MNIST files not found: {n}.*d")
    for name, (setup, match) in damaged.items():
        expect = "ok" if not match else "error"
        cases.append(cli(c, name, train, match, setup=setup, env=env, expect=expect,
                         verify=(lambda w, fx, o, e: None if "Test loss" in o
                                 else "no test result") if expect == "ok" else None))
    cases += [
        cli(c, "evaluate with test labels truncated", ["evaluate", "{model}", "--data-dir", "d"],
            rf"{names[3]}.*(truncated|short|expected)", env=env,
            setup=folder((names[3],), {names[3]: labels(lambda b: b[:-1], name=names[3])})),
        cli(c, "$NUMCNN_DATA_DIR missing", ["train", *QUICK], r"nowhere.*does not exist",
            env={"NUMCNN_DATA_DIR": "{work}/nowhere"}),
        cli(c, "$NUMCNN_DATA_DIR a file", ["train", *QUICK], r"f.*not a directory",
            env={"NUMCNN_DATA_DIR": "{work}/f"}, setup=lambda w, fx: (w / "f").write_text("x")),
        cli(c, "$NUMCNN_DATA_DIR lacking a file", ["train", *QUICK],
            rf"MNIST files not found: {lab}", env={"NUMCNN_DATA_DIR": "{work}/d"},
            setup=folder((lab,))),
    ]
    # the IDX reader and the loader through the API
    c = "IDX reader (API)"
    load = "from numcnn.datasets.idx import load_idx\nresult = load_idx({!r}).shape"
    idx: dict[str, tuple[Any, str, str]] = {
        "dims (2**32-1)^3": (idx_header(8, (2 ** 32 - 1,) * 3), r"more than the limit",
                             "DataError"),
        "dims 65536^4": (idx_header(8, (65536,) * 4), r"more than the limit", "DataError"),
        "dims 2**31 x 2**31 x 4": (idx_header(8, (2 ** 31, 2 ** 31, 4)), r"more than the limit",
                                   "DataError"),
        "33 dimensions": (idx_header(8, (1,) * 33), r"at most 32", "DataError"),
        "0 dimensions": (idx_header(8, ()), r"zero dimensions", "DataError"),
        "type code 0x07": (idx_header(7, (3,)) + b"abc", r"type code 0x07", "DataError"),
        "wrong magic": (b"\x01\x02\x08\x01" + struct.pack(">I", 3) + b"abc", r"wrong magic",
                        "DataError"),
        "truncated data": (idx_header(8, (10,)) + b"12345", r"10|truncated|short", "DataError"),
        "trailing data": (idx_header(8, (10,)) + b"x" * 15, r"10|long|more", "DataError"),
        "truncated header": (idx_header(8, (10, 10))[:9], r"short|truncated|header",
                             "DataError"),
        "empty": (b"", r"too short", "DataError"),
        "float data of NaNs": (idx_header(0x0D, (2,)) + b"\x7f\xc0\x00\x00" * 2, "", ""),
        "gzip, corrupt": ("gzflip", r"corrupt|CRC|invalid", "DataError"),
        "gzip, truncated": ("gzcut", r"corrupt|truncated", "DataError"),
        "gzip bomb (header 1 MiB, 256 MiB inside)": ("bomb", r"long|more|expected",
                                                     "DataError"),
    }
    for name, (content, match, exc) in idx.items():
        def setup(work: Path, fx: Fixtures, content: Any = content) -> None:
            f = work / "f.idx"
            if content == "gzflip":
                data = bytearray(gzip.compress(idx_header(8, (1000,)) + bytes(range(250)) * 4))
                data[len(data) // 2] ^= 0xFF
                f.write_bytes(bytes(data))
            elif content == "gzcut":
                f.write_bytes(gzip.compress(idx_header(8, (1000,)) + bytes(1000))[:30])
            elif content == "bomb":
                gzip_stream(f, idx_header(8, (1 << 20,)), 256 << 20)
            else:
                f.write_bytes(content)
        if exc:
            cases.append(api(c, name, load.format("f.idx"), exc, r"f\.idx.*(" + match + ")",
                             setup=setup))
        else:  # valid: a float IDX may hold NaN
            cases.append(api(c, name, load.format("f.idx").replace(".shape", ".shape == (2,)"),
                             expect="ok", setup=setup))
    cases += [
        api(c, "a missing file", load.format("nothing.idx"), "FileNotFoundError", r"nothing"),
        api(c, "a folder", load.format("d"), "DataError|IsADirectoryError", r"d",
            setup=lambda w, fx: (w / "d").mkdir()),
        api(c, "/dev/zero", load.format("/dev/zero"), "DataError", r"/dev/zero"),
        api(c, "/dev/urandom", load.format("/dev/urandom"), "DataError", r"/dev/urandom"),
        api(c, "/dev/null", load.format("/dev/null"), "DataError", r"/dev/null"),
        api(c, "declared 1 GiB over $NUMCNN_MAX_IDX_BYTES=64M", load.format("f.idx"),
            "DataError", r"more than the limit of 67108864",
            env={"NUMCNN_MAX_IDX_BYTES": "64M"},
            setup=lambda w, fx: (w / "f.idx").write_bytes(idx_header(8, (1 << 30,)))),
        api(c, "$NUMCNN_MAX_IDX_BYTES=abc", load.format("f.idx"), "ValueError",
            r"NUMCNN_MAX_IDX_BYTES.*abc", env={"NUMCNN_MAX_IDX_BYTES": "abc"},
            setup=lambda w, fx: (w / "f.idx").write_bytes(idx_header(8, (3,)) + b"abc")),
        api(c, "$NUMCNN_MAX_IDX_BYTES=-5", load.format("f.idx"), "ValueError",
            r"NUMCNN_MAX_IDX_BYTES.*-5", env={"NUMCNN_MAX_IDX_BYTES": "-5"},
            setup=lambda w, fx: (w / "f.idx").write_bytes(idx_header(8, (3,)) + b"abc")),
        api(c, "mnist.load_data(data_dir=missing)",
            "from numcnn.datasets import mnist\nmnist.load_data(data_dir='nowhere')",
            "FileNotFoundError", r"nowhere", env=env),
        api(c, "mnist.load_data(download=False) on an empty folder",
            "from numcnn.datasets import mnist\nmnist.load_data(data_dir='d', download=False)",
            "FileNotFoundError", r"train-images-idx3-ubyte", env=env,
            setup=lambda w, fx: (w / "d").mkdir()),
        api(c, "mnist.load_file under an unknown name",
            "from numcnn.datasets import mnist\nmnist.load_file('labels.bin')", "ValueError",
            r"unknown MNIST file name 'labels.bin'",
            setup=lambda w, fx: (w / "labels.bin").write_bytes(fx.labels)),
    ]
    return cases


def api_cases() -> list[Case]:
    """Misuse of the Python API, each in a subprocess."""
    c = "Python API"
    fit = "m = tiny()\nm.fit({x}, {y}, epochs={epochs}, batch_size={bs}, verbose=0{more})"

    def f(x: str = "X", y: str = "Y", epochs: str = "1", bs: str = "8", more: str = "") -> str:
        return fit.format(x=x, y=y, epochs=epochs, bs=bs, more=more)

    return [
        api(c, "fit: labels out of range (10 of 10 classes)", f(y="np.full(32, 10)"),
            "ValueError", r"10|label|class|range"),
        api(c, "fit: negative labels", f(y="np.full(32, -1)"), "ValueError",
            r"-1|label|class|range"),
        api(c, "fit: fractional labels", f(y="np.full(32, 0.5)"), "ValueError|TypeError",
            r"label|integer|int|0\.5"),
        api(c, "fit: x and y of different lengths", f(y="Y[:30]"), "ValueError",
            r"32 samples but y has 30"),
        api(c, "fit: NaN inputs", f(x="np.full_like(X, np.nan)"),
            "ValueError|FloatingPointError", r"nan|NaN|finite"),
        api(c, "fit: 32x32 images for a 28x28 conv net",
            "m = numcnn.models.get('lenet5')\n"
            "m.compile(optimizer='sgd', loss='softmax_cross_entropy')\n"
            "m.fit(np.zeros((8, 1, 32, 32), np.float32), np.zeros(8, int), verbose=0)",
            "ValueError",
            r"expected input of shape \(N, 1, 28, 28\); received \(8, 1, 32, 32\)"),
        api(c, "fit: batch_size 0", f(bs="0"), "ValueError", r"batch_size.*received 0"),
        api(c, "fit: batch_size -1", f(bs="-1"), "ValueError", r"batch_size.*received -1"),
        api(c, "fit: batch_size 2.5", f(bs="2.5"), "ValueError|TypeError",
            r"batch_size.*2\.5"),
        api(c, "fit: batch_size '8'", f(bs="'8'"), "ValueError|TypeError", r"batch_size"),
        api(c, "fit: epochs -1", f(epochs="-1"), "ValueError", r"epochs.*-1"),
        api(c, "fit: epochs 1.5", f(epochs="1.5"), "ValueError|TypeError", r"epochs.*1\.5"),
        api(c, "fit: an empty dataset", f(x="X[:0]", y="Y[:0]"), "ValueError", r"empty"),
        api(c, "fit: validation_data not a pair", f(more=", validation_data=X"), "ValueError",
            r"validation_data"),
        api(c, "fit: validation labels of another length",
            f(more=", validation_data=(X, Y[:3])"), "ValueError", r"validation"),
        api(c, "fit: processes=0", f(more=", processes=0"), "ValueError", r"processes.*0"),
        api(c, "fit: a batch larger than the data is the full batch",
            "a, b = tiny(1), tiny(1)\n"
            "a.fit(X, Y, batch_size=32, epochs=2, shuffle=False, verbose=0)\n"
            "b.fit(X, Y, batch_size=10**12, epochs=2, shuffle=False, verbose=0)\n"
            "wa, wb = a.get_weights(), b.get_weights()\n"
            "result = all(np.array_equal(wa[k], wb[k]) for k in wa)", expect="ok"),
        api(c, "fit before compile",
            "from numcnn.layers import Dense, Flatten\n"
            "m = numcnn.Sequential([Flatten(), Dense(10)], input_shape=(1, 8, 8))\n"
            "m.fit(X, Y, verbose=0)", "RuntimeError|ValueError", r"compile"),
        api(c, "evaluate on an empty set", "tiny().evaluate(X[:0], Y[:0])", "ValueError",
            r"empty"),
        api(c, "predict on the wrong shape", "tiny().predict(np.zeros((4, 28, 28)))",
            "ValueError", r"shape|expected"),
        api(c, "compile with an unknown loss", "tiny().compile(optimizer='sgd', loss='nope')",
            "ValueError", r"unknown loss 'nope'"),
        api(c, "compile with an unknown optimizer",
            "tiny().compile(optimizer='nope', loss='softmax_cross_entropy')", "ValueError",
            r"unknown optimizer 'nope'"),
        api(c, "models.get of an unknown name", "numcnn.models.get('nosuch')", "ValueError",
            r"nosuch"),
        api(c, "SGD(lr=-1)", "numcnn.optimizers.SGD(lr=-1)", "ValueError", r"lr"),
        api(c, "SGD(lr=nan)", "numcnn.optimizers.SGD(lr=float('nan'))", "ValueError", r"lr"),
        api(c, "SGD(momentum=-0.5)", "numcnn.optimizers.SGD(lr=0.1, momentum=-0.5)",
            "ValueError", r"momentum"),
        api(c, "Dense(0)", "numcnn.layers.Dense(0)", "ValueError", r"units"),
        api(c, "Dense(-3)", "numcnn.layers.Dense(-3)", "ValueError", r"units"),
        api(c, "Conv2D(kernel_size=0)", "numcnn.layers.Conv2D(4, 0)", "ValueError",
            r"kernel"),
        api(c, "Dropout(1.5)", "numcnn.layers.Dropout(1.5)", "ValueError", r"rate"),
        api(c, "set_num_threads(0)", "numcnn.set_num_threads(0)", "ValueError", r"0"),
        api(c, "set_num_threads('2')", "numcnn.set_num_threads('2')", "ValueError|TypeError",
            r"'2'"),
        api(c, "$NUMCNN_NUM_THREADS=abc", "numcnn.get_num_threads()", "ValueError",
            r"NUMCNN_NUM_THREADS.*abc", env={"NUMCNN_NUM_THREADS": "abc"}),
        api(c, "$NUMCNN_NUM_THREADS=-2", "numcnn.get_num_threads()", "ValueError",
            r"NUMCNN_NUM_THREADS|-2", env={"NUMCNN_NUM_THREADS": "-2"}),
        api(c, "$NUMCNN_MPI_TIMEOUT=abc", f(bs="32", more=", distribute='local:2'"),
            "ValueError", r"NUMCNN_MPI_TIMEOUT.*abc", env={"NUMCNN_MPI_TIMEOUT": "abc"}),
        api(c, "$NUMCNN_MAX_MODEL_BYTES=abc", "numcnn.load_model(MODEL)", "ValueError",
            r"NUMCNN_MAX_MODEL_BYTES.*abc", env={"NUMCNN_MAX_MODEL_BYTES": "abc"}),
        api(c, "$NUMCNN_MAX_MODEL_BYTES=1K", "numcnn.load_model(MODEL)", "ModelFileError",
            r"budget of 1024 bytes", env={"NUMCNN_MAX_MODEL_BYTES": "1K"}),
        api(c, "LearningRateScheduler('nosuch')",
            "numcnn.training.LearningRateScheduler('nosuch', epochs=2)", "ValueError",
            r"nosuch"),
        api(c, "EarlyStopping on a metric never logged",
            f(more=", callbacks=[numcnn.training.EarlyStopping(monitor='nosuch')]"),
            "ValueError", r"nosuch", expect="warning"),
        api(c, "ModelCheckpoint with an unknown field",
            f(more=", callbacks=[numcnn.training.ModelCheckpoint('m-{nosuch}.npz')]"),
            "ValueError", r"nosuch"),
        api(c, "restore_training_state from a model file",
            "m = numcnn.models.get('lenet5')\n"
            "m.compile(optimizer='sgd', loss='softmax_cross_entropy')\n"
            "numcnn.training.restore_training_state(MODEL, m)", "ValueError",
            r"not a numcnn training checkpoint"),
        api(c, "restore_training_state into another model",
            "numcnn.training.restore_training_state(CKPT, tiny())", "ValueError",
            r"another model"),
        api(c, "restore_training_state from a truncated checkpoint",
            "numcnn.training.restore_training_state('c.npz', tiny())", "ModelFileError",
            r"c\.npz", setup=lambda w, fx: (w / "c.npz").write_bytes(
                (fx.ckpt / "checkpoint.npz").read_bytes()[:5000])),
    ]


def env_cases() -> list[Case]:
    """Bad environment variables through the command line."""
    c = "environment variables"
    train = ["train", *QUICK]
    two = [*train, "--distribute", "local:2", "--batch-size", "200"]
    cases = []
    for v in ["abc", "0", "-1", "nan", "inf", ""]:
        match = rf"NUMCNN_MPI_TIMEOUT={re.escape(repr(v))}: expected a positive number"
        if v == "":
            cases.append(cli(c, "NUMCNN_MPI_TIMEOUT=''", two, expect="ok",
                             env={"NUMCNN_MPI_TIMEOUT": v},
                             verify=lambda w, fx, o, e: None if "Test loss" in o else "no test"))
            continue
        cases.append(cli(c, f"NUMCNN_MPI_TIMEOUT={v}", two, match,
                         env={"NUMCNN_MPI_TIMEOUT": v}))
    for v in ["abc", "0", "-1", "1.5X"]:
        cases.append(cli(c, f"NUMCNN_MAX_MODEL_BYTES={v}", ["evaluate", "{model}"],
                         rf"NUMCNN_MAX_MODEL_BYTES must be a positive number.*{re.escape(v)}",
                         env={"NUMCNN_MAX_MODEL_BYTES": v}))
    cases += [
        cli(c, "NUMCNN_MAX_MODEL_BYTES=1K", ["evaluate", "{model}"],
            r"more than the budget of 1024 bytes", env={"NUMCNN_MAX_MODEL_BYTES": "1K"}),
        cli(c, "NUMCNN_MAX_MODEL_BYTES=1K for summary", ["summary", "{model}"],
            r"more than the budget of 1024 bytes", env={"NUMCNN_MAX_MODEL_BYTES": "1K"}),
        cli(c, "NUMCNN_DATA_DIR empty, no cache, no network", train,
            r"could not download|download", env={"NUMCNN_DATA_DIR": ""},
            changes=("*",)),
    ]
    return cases


def ignored_cases() -> list[Case]:
    """Options a model ignores or cannot use (silent wrong results before issue 10)."""
    c = "options a model ignores"
    t98 = ["train", *QUICK, "--model", "lenet5-1998"]
    cases = [cli(c, f"lenet5-1998 with {flag} {v}", [*t98, flag, v],
                 rf"{flag}.*not used by --model lenet5-1998")
             for flag, v in (("--optimizer", "adam"), ("--lr", "0.1"), ("--momentum", "0.5"),
                             ("--loss", "mse"), ("--dropout", "0.5"),
                             ("--schedule", "constant"))]
    cases += [
        cli(c, "--optimizer sdlm on lenet5", ["train", *QUICK, "--optimizer", "sdlm"],
            r"--optimizer sdlm needs curvature estimates"),
        cli(c, "--augment affine on lenet5", ["train", *QUICK, "--augment", "affine"],
            r"--augment is only supported with --model lenet5-1998; received --model lenet5"),
        cli(c, "--momentum with adam", ["train", *QUICK, "--optimizer", "adam", "--momentum",
                                        "0.5"], r"--momentum"),
    ]
    return cases


# ---------------------------------------------------------------------------------- faults
FAULT_ARGS = ["--train-size", "4100", "--validation-size", "100", "--epochs", "2",
              "--batch-size", "20", "--dropout", "0.3", "--checkpoint-every", "10",
              "--verbose", "0"]
FAULT_ARGS_PLAIN = [a for a in FAULT_ARGS if a not in ("--checkpoint-every", "10")]
FAULT_ARGS_T2 = ["--train-size", "4100", "--validation-size", "100", "--epochs", "2",
                 "--batch-size", "64", "--dropout", "0.3", "--checkpoint-every", "5",
                 "--distribute", "local:2", "--verbose", "0"]
FAULT_ARGS_1998 = ["--model", "lenet5-1998", "--train-size", "400", "--epochs", "2",
                   "--augment", "affine", "--checkpoint-every", "60", "--verbose", "0"]


def wait_trigger(proc: subprocess.Popen, trigger: tuple, ckpt: Path, box: Path,
                 started: float) -> bool:
    """Wait for ``trigger``; False if the process ended first."""
    kind = trigger[0]
    deadline = time.monotonic() + 120
    if kind == "start":
        while proc.poll() is None and time.monotonic() < started + trigger[1]:
            time.sleep(0.005)
        return proc.poll() is None
    if kind == "ckpt":  # the n-th new checkpoint, then a delay
        n, delay = trigger[1], trigger[2]
        seen = ckpt.stat().st_mtime_ns if ckpt.exists() else None
        count = 0
        while proc.poll() is None and time.monotonic() < deadline:
            now = ckpt.stat().st_mtime_ns if ckpt.exists() else None
            if now is not None and now != seen:
                seen, count = now, count + 1
                if count >= n:
                    time.sleep(delay)
                    break
            time.sleep(0.003)
        return proc.poll() is None
    if kind == "part":  # a temporary file of the final model appears
        while proc.poll() is None and time.monotonic() < deadline:
            if list(ckpt.parent.glob(".final.npz.*.part")):
                return True
            time.sleep(0.0005)
        return False
    if kind == "workers":
        while proc.poll() is None and time.monotonic() < deadline:
            if children_of(proc.pid):
                time.sleep(trigger[1])
                return proc.poll() is None
            time.sleep(0.01)
        return False
    raise ValueError(kind)


def kill_and_resume(args: list[str], plan: list[tuple[str, tuple]], checkpoints: bool = True,
                    group: bool = False) -> Callable:
    """A fault runner: train with ``args``, deliver each ``(signal, trigger)`` of ``plan``
    to a fresh (resumed) run, then run to the end and compare the final weights with an
    uninterrupted run's."""

    def runner(case: Case, work: Path, fx: Fixtures, rn: Runner, box: Path) -> dict:
        ref = fx.reference(args, checkpoints)
        env = rn.case_env(case, work)
        extra = ["--checkpoint-dir", "ck"] if checkpoints else []
        base = [sys.executable, "-m", "numcnn", "train", *args, *extra, "--output", "final.npz"]
        ckpt = work / "ck" / "checkpoint.npz"
        issues: list[str] = []
        log: list[str] = []
        delivered, last_err = 0, ""
        steps = [*plan, ("", ("end",))] + [("", ("end",))] * 2
        finished = False
        for i, (sig, trigger) in enumerate(steps):
            resume = checkpoints and ckpt.exists()
            cmd = base + (["--resume"] if resume else [])
            proc, _, err_path = rn.spawn(cmd, work, box, env, tag=f"-{i}")
            started = time.monotonic()
            if sig:
                running = wait_trigger(proc, trigger, ckpt, box, started)
                if running:
                    signum = getattr(signal, sig)
                    if group or signum == signal.SIGKILL:  # kill -9 of the whole job
                        os.killpg(proc.pid, signum)
                    else:
                        os.kill(proc.pid, signum)
                    delivered += 1
            rc, hung = rn.finish(proc, 300)
            left = leftovers(proc.pid, 5.0)
            err = err_path.read_text(errors="replace")
            last_err = last_line(err) or last_err
            where = ""
            if sig and ckpt.exists():  # where the last complete checkpoint stands
                with contextlib.suppress(Exception):
                    with np.load(ckpt, allow_pickle=False) as f:
                        where = f" (checkpoint at epoch {int(f['trainer/epoch'])}, batch " \
                                f"{int(f['trainer/step'])})"
            log.append(f"{sig or 'run'}{'+resume' if resume else ''}: rc {rc}{where}")
            if hung:
                issues.append(f"hang: run {i} did not end")
                break
            if left:
                issues.append(f"leak: processes {left} outlived run {i}")
            if "Traceback" in err or "internal error" in err:
                issues.append("traceback: " + last_line(err))
            if rc == 0:
                finished = True
                break
            if sig in ("SIGTERM", "SIGINT") and rc is not None and rc > 0:
                want = 128 + getattr(signal, sig)
                line = one_line(err, f"numcnn: stopped by {sig}") or \
                    one_line(err, "numcnn: interrupted")
                if rc != want or line is None:
                    issues.append(f"unclear: {sig} gave exit {rc}: {last_line(err)}")
            elif rc is not None and rc > 0:
                if "checkpoint" in err and ("damaged" in err or "truncated" in err):
                    issues.append("data loss: the checkpoint was left damaged: "
                                  + last_line(err))
                else:
                    issues.append(f"unclear: run {i} failed: {last_line(err)}")
                break
        if finished:
            problem = weights_equal(work / "final.npz", ref)
            if problem:
                issues.append("silent: " + problem)
        elif not any(i.split(":")[0] in BAD for i in issues):
            issues.append("unclear: the run never finished")
        parts = [str(p.relative_to(work)) for p in work.rglob("*.part")]
        if parts:
            issues.append(f"leak: temporary files left: {parts}")
        if delivered == 0:
            issues.append("unclear: the run ended before any signal could be delivered")
        return {"outcome": outcome_of(issues, "survived"), "issues": issues,
                "command": "numcnn train " + " ".join(args + extra) + " --output final.npz; "
                           + ", ".join(log), "rc": None, "stderr_last": last_err,
                "signals": delivered}

    return runner


def orphan_runner(sig: str) -> Callable:
    """Kill the main process of a --distribute local:2 run: its child must be gone within
    5 s."""

    def runner(case: Case, work: Path, fx: Fixtures, rn: Runner, box: Path) -> dict:
        env = rn.case_env(case, work)
        args = [*FAULT_ARGS_T2[:-6], "--distribute", "local:2", "--verbose", "0", "--epochs",
                "50"]
        cmd = [sys.executable, "-m", "numcnn", "train", *args]
        proc, _, err_path = rn.spawn(cmd, work, box, env)
        issues: list[str] = []
        if not wait_trigger(proc, ("workers", 0.5), work, box, time.monotonic()):
            rn.finish(proc, 60)
            return {"outcome": "unclear", "issues": ["unclear: no worker was seen"],
                    "command": "numcnn train " + " ".join(args),
                    "stderr_last": last_line(err_path.read_text())}
        workers = children_of(proc.pid)
        os.kill(proc.pid, getattr(signal, sig))
        rc, hung = rn.finish(proc, 30)
        deadline = time.monotonic() + 5
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = [w for w in workers if alive(w)]
        if hung:
            issues.append(f"hang: the main process did not end after {sig}")
        if left:
            issues.append(f"leak: workers {left} outlived their main process by 5 s")
        left = leftovers(proc.pid, 0.5)
        if left:
            issues.append(f"leak: processes {left} left in the session")
        err = err_path.read_text(errors="replace")
        if "Traceback" in err:
            issues.append("traceback: " + last_line(err))
        return {"outcome": outcome_of(issues, "survived"), "issues": issues, "rc": rc,
                "command": f"numcnn train {' '.join(args)}; kill -{sig[3:]} <main pid>",
                "stderr_last": last_line(err), "workers": workers}

    return runner


def worker_fault_runner(sig: str, expect: str) -> Callable:
    """Kill or stop a data-parallel child process (NUMCNN_MPI_TIMEOUT=3): the run must stop
    with a clear error naming it within the bound, leaving no process; SIGTERM to a child
    alone is ignored and the run ends with the uninterrupted run's weights."""

    def runner(case: Case, work: Path, fx: Fixtures, rn: Runner, box: Path) -> dict:
        env = rn.case_env(case, work)
        env["NUMCNN_MPI_TIMEOUT"] = "3"
        args = FAULT_ARGS_T2[:-6] + ["--distribute", "local:2", "--verbose", "0"]
        cmd = [sys.executable, "-m", "numcnn", "train", *args, "--output", "final.npz"]
        ref = fx.reference(args) if expect == "survive" else None
        proc, _, err_path = rn.spawn(cmd, work, box, env)
        issues: list[str] = []
        shown = f"NUMCNN_MPI_TIMEOUT=3 numcnn train {' '.join(args)}; kill -{sig[3:]} <child>"
        if not wait_trigger(proc, ("workers", 0.3), work, box, time.monotonic()):
            rn.finish(proc, 60)
            return {"outcome": "unclear", "issues": ["unclear: no worker was seen"],
                    "command": shown, "stderr_last": last_line(err_path.read_text())}
        workers = children_of(proc.pid)
        t0 = time.monotonic()
        for w in workers:
            os.kill(w, getattr(signal, sig))
        rc, hung = rn.finish(proc, 60)
        took = time.monotonic() - t0
        left = leftovers(proc.pid, 3.0)
        err = err_path.read_text(errors="replace")
        if hung:
            issues.append("hang: the main process waited for its worker for 60 s")
        if left:
            issues.append(f"leak: processes {left} left behind")
        if "Traceback" in err:
            issues.append("traceback: " + last_line(err))
        good = "clear"
        if expect == "survive":
            good = "survived"
            if rc != 0:
                issues.append(f"unclear: SIGTERM to a worker stopped the run: {last_line(err)}")
            else:
                problem = weights_equal(work / "final.npz", ref)  # type: ignore[arg-type]
                if problem:
                    issues.append("silent: " + problem)
        elif not hung:
            line = one_line(err, "numcnn: error:")
            if rc == 0:
                issues.append("silent: the run finished although its worker was "
                              + ("killed" if sig == "SIGKILL" else "stopped"))
            elif line is None or not re.search(expect, line):
                issues.append(f"unclear: {last_line(err)}")
            elif took > 3 + 20:
                issues.append(f"hang: the fault was reported after {took:.0f} s")
        return {"outcome": outcome_of(issues, good), "issues": issues, "rc": rc,
                "command": shown, "stderr_last": last_line(err), "seconds_to_report":
                round(took, 2)}

    return runner


def output_kill_runner(case: Case, work: Path, fx: Fixtures, rn: Runner, box: Path) -> dict:
    """SIGKILL while --output is being written over an older model: the file is the old
    model or the new one, whole; the next write removes the killed write's temporary file."""
    env = rn.case_env(case, work)
    args = [*QUICK, "--epochs", "1"]
    shutil.copyfile(fx.model, work / "final.npz")
    cmd = [sys.executable, "-m", "numcnn", "train", *args, "--output", "final.npz"]
    issues: list[str] = []
    caught = False
    for attempt in range(8):  # the write lasts milliseconds: try until one is caught
        proc, _, err_path = rn.spawn(cmd, work, box, env, tag=f"-{attempt}")
        if wait_trigger(proc, ("part",), work / "final.npz", box, time.monotonic()):
            os.killpg(proc.pid, signal.SIGKILL)
            caught = True
        rn.finish(proc, 120)
        leftovers(proc.pid, 2.0)
        try:
            load_arrays(work / "final.npz")
        except Exception as e:
            issues.append(f"data loss: final.npz is damaged after the kill ({e})")
        if caught:
            break
    proc, _, err_path = rn.spawn(cmd, work, box, env, tag="-last")
    rc, hung = rn.finish(proc, 120)
    if rc != 0:
        issues.append(f"unclear: the next run failed: {last_line(err_path.read_text())}")
    parts = [p.name for p in work.glob("*.part")]
    if parts:
        issues.append(f"leak: the killed write's temporary file is still there: {parts}")
    if not caught:
        issues.append("unclear: no write was caught in 8 attempts")
    return {"outcome": outcome_of(issues, "survived"), "issues": issues, "rc": rc,
            "command": "numcnn train " + " ".join(args) + " --output final.npz (over an older "
                       "model); kill -9 while final.npz is written; run again",
            "stderr_last": last_line(err_path.read_text())}


def fault_cases(fx_cores: int) -> list[Case]:
    c = "faults"
    cases = [
        Case(c, "SIGKILL during start-up, then resume",
             runner=kill_and_resume(FAULT_ARGS, [("SIGKILL", ("start", 0.4))])),
        Case(c, "SIGKILL right after the first checkpoint, then resume",
             runner=kill_and_resume(FAULT_ARGS, [("SIGKILL", ("ckpt", 1, 0.0))])),
        Case(c, "SIGKILL 50 ms after a checkpoint, then resume",
             runner=kill_and_resume(FAULT_ARGS, [("SIGKILL", ("ckpt", 1, 0.05))])),
        Case(c, "SIGKILL in the second epoch, then resume",
             runner=kill_and_resume(FAULT_ARGS, [("SIGKILL", ("ckpt", 22, 0.02))])),
        Case(c, "SIGKILL five times, resuming each time",
             runner=kill_and_resume(FAULT_ARGS, [("SIGKILL", ("ckpt", 1, d))
                                                 for d in (0.0, 0.1, 0.02, 0.3, 0.05)])),
        Case(c, "SIGKILL while checkpoints are written every batch",
             runner=kill_and_resume([*FAULT_ARGS[:-4], "--checkpoint-every", "1", "--verbose",
                                     "0"],
                                    [("SIGKILL", ("ckpt", 3, d)) for d in (0.001, 0.004, 0.0)])),
        Case(c, "SIGTERM mid-epoch: stop, save, resume",
             runner=kill_and_resume(FAULT_ARGS, [("SIGTERM", ("ckpt", 2, 0.03))])),
        Case(c, "SIGTERM during start-up, then run again",
             runner=kill_and_resume(FAULT_ARGS, [("SIGTERM", ("start", 0.3))])),
        Case(c, "SIGINT (Ctrl-C) mid-epoch: stop, save, resume",
             runner=kill_and_resume(FAULT_ARGS, [("SIGINT", ("ckpt", 2, 0.03))])),
        Case(c, "SIGKILL without --checkpoint-dir, then run again",
             runner=kill_and_resume(FAULT_ARGS_PLAIN, [("SIGKILL", ("start", 1.5))],
                                    checkpoints=False)),
        Case(c, "SIGTERM without --checkpoint-dir, then run again",
             runner=kill_and_resume(FAULT_ARGS_PLAIN, [("SIGTERM", ("start", 1.5))],
                                    checkpoints=False)),
        Case(c, "--distribute local:2: SIGKILL (process group), then resume",
             runner=kill_and_resume(FAULT_ARGS_T2, [("SIGKILL", ("ckpt", 2, 0.03))])),
        Case(c, "--distribute local:2: SIGKILL three times, resuming each time",
             runner=kill_and_resume(FAULT_ARGS_T2, [("SIGKILL", ("ckpt", 1, d))
                                                    for d in (0.0, 0.08, 0.02)])),
        Case(c, "--distribute local:2: SIGTERM to the main process, then resume",
             runner=kill_and_resume(FAULT_ARGS_T2, [("SIGTERM", ("ckpt", 2, 0.03))])),
        Case(c, "--distribute local:2: SIGINT (Ctrl-C) to the process group, then resume",
             runner=kill_and_resume(FAULT_ARGS_T2, [("SIGINT", ("ckpt", 2, 0.03))],
                                    group=True)),
        Case(c, "lenet5-1998 with distortions: SIGKILL, then resume",
             runner=kill_and_resume(FAULT_ARGS_1998, [("SIGKILL", ("ckpt", 2, 0.05))])),
        Case(c, "--distribute local:2: SIGKILL of the main process (orphaned workers)",
             runner=orphan_runner("SIGKILL")),
        Case(c, "--distribute local:2: SIGTERM of the main process (workers end with it)",
             runner=orphan_runner("SIGTERM")),
        Case(c, "--distribute local:2: SIGKILL of a worker", expect="error",
             runner=worker_fault_runner("SIGKILL", r"data-parallel process died: rank 1 "
                                                   r"\(pid \d+\) was killed by signal SIGKILL")),
        Case(c, "--distribute local:2: SIGSTOP of a worker (timeout 3 s)", expect="error",
             runner=worker_fault_runner("SIGSTOP", r"data-parallel process hangs: waited "
                                                   r"\d+ s; rank 1 \(pid \d+\) is stopped")),
        Case(c, "--distribute local:2: SIGTERM to a worker alone (ignored)",
             runner=worker_fault_runner("SIGTERM", "survive")),
        Case(c, "SIGKILL while --output is written over an older model",
             runner=output_kill_runner),
        cli(c, "a diverging run (--lr 1e6): one line, the older model kept",
            ["train", *QUICK, "--lr", "1e6", "--schedule", "constant", "--output", "m.npz"],
            r"loss became nan.*lower the learning rate",
            setup=lambda w, fx: shutil.copyfile(fx.model, w / "m.npz")),
        cli(c, "a huge --batch-size is the full batch",
            ["train", *QUICK, "--batch-size", str(10 ** 12), "--output", "m.npz"],
            expect="ok", changes=("m.npz",),
            verify=lambda w, fx, o, e: weights_equal(
                w / "m.npz", fx.reference([*QUICK, "--batch-size", "200"]))),
        cli(c, f"--threads {fx_cores + 1} above the {fx_cores} core(s) warns",
            ["train", *QUICK, "--threads", str(fx_cores + 1), "--output", "m.npz"],
            rf"--threads {fx_cores + 1} is more than the {fx_cores} core", expect="warning",
            changes=("m.npz",)),
        cli(c, f"evaluate --threads {fx_cores + 1} warns",
            ["evaluate", "{model}", "--threads", str(fx_cores + 1)],
            rf"--threads {fx_cores + 1} is more than the", expect="warning", timeout=180),
        cli(c, "--threads 16 with a batch that splits 16 ways warns and finishes",
            ["train", "--train-size", "1124", "--validation-size", "100", "--batch-size",
             "1024", "--threads", "16", "--verbose", "0"],
            r"--threads 16 is more than the", expect="warning", timeout=180),
        cli(c, "--threads 10**6 warns and stays bounded",
            ["train", *QUICK, "--threads", str(10 ** 6)], r"--threads 1000000 is more than the",
            expect="warning", timeout=300),
    ]
    for case in cases:
        if case.runner is not None:
            case.timeout = 600
    return cases


def catalogue(cores: int) -> list[Case]:
    from fault_cases_newer import newer_cases  # the newer commands (a sibling module)

    cases = (flag_cases() + output_cases() + checkpoint_cases() + data_cases()
             + model_file_cases() + api_cases() + env_cases() + ignored_cases()
             + newer_cases() + fault_cases(cores))
    seen = set()
    for case in cases:
        if case.id in seen:
            raise ValueError(f"two cases named {case.id}")
        seen.add(case.id)
    return cases


# ------------------------------------------------------------------------------- fixtures
def make_fixtures(root: Path, data: Path, env: dict[str, str]) -> Fixtures:
    fx = Fixtures(root=root / "fixtures", data=data, env=env)
    fx.root.mkdir(parents=True)
    fx.model = fx.root / "good.npz"
    fx.ckpt = fx.root / "ckpt"
    for argv in (["train", *QUICK, "--output", str(fx.model)],
                 ["train", *CKPT_ARGS, "--checkpoint-dir", str(fx.ckpt)]):
        proc = subprocess.run([sys.executable, "-m", "numcnn", *argv], env=env, cwd=fx.root,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise SystemExit(f"fault_sweep: the fixture run `numcnn {' '.join(argv)}` failed:\n"
                             + proc.stderr)
    fx.arrays = load_arrays(fx.model)
    fx.ckpt_arrays = load_arrays(fx.ckpt / "checkpoint.npz")
    fx.labels = gzip.decompress((data / "train-labels-idx1-ubyte.gz").read_bytes())
    fx.test_labels = gzip.decompress((data / "t10k-labels-idx1-ubyte.gz").read_bytes())
    fx.model_bomb = fx.root / "bomb-member.zip"
    fx.model_bomb.write_bytes(bomb_member(((256 << 20) // 4,), 256 << 20))
    fx.idx_bomb = fx.root / "labels-bomb.gz"
    gzip_stream(fx.idx_bomb, idx_header(8, (60000,)), 256 << 20)
    fx.cores = len(os.sched_getaffinity(0))
    fx.tested = subprocess.run([sys.executable, "-c", "import numcnn; print(numcnn.__file__)"],
                               env=env, capture_output=True, text=True).stdout.strip()
    probe = root / "mount-probe"
    try:
        mount("tmpfs", probe, "16k")
        umount_all(probe)
        fx.mount_ok = True
    except (OSError, subprocess.CalledProcessError):
        fx.mount_ok = False
    return fx


# -------------------------------------------------------------------------------- report
def table(results: list[dict]) -> str:
    classes: dict[str, dict[str, int]] = {}
    for r in results:
        row = classes.setdefault(r["class"], dict.fromkeys(COLUMNS, 0))
        row["cases"] += 1
        col = r["outcome"] if r["outcome"] in COLUMNS else "other"
        row[col] += 1
    total = dict.fromkeys(COLUMNS, 0)
    for row in classes.values():
        for k in COLUMNS:
            total[k] += row[k]
    head = ["class", "cases", "clear errors", "correct", "survived", "tracebacks", "hangs",
            "silent", "leaks", "data loss", "other"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in [*classes.items(), ("**total**", total)]:
        lines.append("| " + " | ".join([name] + [str(row[k]) for k in COLUMNS]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", action="append", default=[], metavar="CLASS",
                   help="run only the classes whose name contains CLASS (repeatable), e.g. "
                        "faults, checkpoint, 'model files', data, API, options, output, "
                        "datasets, clipping, predict, plot, serve, export, 'ONNX import'")
    p.add_argument("--case", action="append", default=[], metavar="TEXT",
                   help="run only the cases whose class/name contains TEXT (repeatable)")
    p.add_argument("--quick", action="store_true",
                   help="skip the kill-and-resume faults (the slow part)")
    p.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)),
                   help="cases run side by side (default: the cores); faults run alone")
    p.add_argument("--json", metavar="PATH", help="write every case's raw result here")
    p.add_argument("--list", action="store_true", help="print the catalogue and exit")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--verbose", action="store_true", help="print every case as it ends")
    p.add_argument("--data-dir", default=os.environ.get("NUMCNN_DATA_DIR"),
                   help="the MNIST folder (default $NUMCNN_DATA_DIR)")
    args = p.parse_args(argv)

    cores = len(os.sched_getaffinity(0))
    cases = catalogue(cores)
    if args.only:
        cases = [c for c in cases if any(o.lower() in c.cls.lower() for o in args.only)]
    if args.case:
        cases = [c for c in cases if any(t.lower() in c.id.lower() for t in args.case)]
    if args.quick:
        cases = [c for c in cases if c.runner is None]
    if args.list:
        for c in cases:
            what = ("numcnn " + " ".join(map(repr, c.argv))) if c.argv is not None else \
                ("python: " + " ".join((c.code or "").split())) if c.code else "(fault runner)"
            print(f"{c.id}\t{c.expect}\t{what[:150]}")
        print(f"{len(cases)} cases")
        return 0
    if not args.data_dir or not Path(args.data_dir, "train-labels-idx1-ubyte.gz").is_file():
        p.error("MNIST is needed: set NUMCNN_DATA_DIR (or --data-dir) to the folder with the "
                "four .gz IDX files")
    data = Path(args.data_dir).resolve()

    root = Path(tempfile.mkdtemp(prefix="numcnn-fault-sweep-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMCNN_")}
    env.update(NUMCNN_DATA_DIR=str(data), NUMCNN_HOME=str(root / "home"),
               NUMCNN_MNIST_MIRROR=MIRROR, NUMCNN_FASHION_MNIST_MIRROR=MIRROR,
               NUMCNN_CIFAR10_MIRROR=MIRROR, OPENBLAS_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1", PYTHONWARNINGS="ignore::DeprecationWarning")
    t0 = time.monotonic()
    print(f"fault sweep: {len(cases)} cases; fixtures in {root}", file=sys.stderr, flush=True)
    results: list[dict] = []
    tested, skipped = "", []
    try:
        fx = make_fixtures(root, data, env)
        runner = Runner(root, fx, env)
        tested = fx.tested
        skipped = [c for c in cases if c.needs == "mount" and not fx.mount_ok]
        todo = [c for c in cases if c not in skipped]
        lock = threading.Lock()

        def one(case: Case) -> dict:
            r = runner.run(case)
            with lock:
                results.append(r)
                n = len(results)
                if args.verbose or r["outcome"] not in GOOD:
                    print(f"  [{n}/{len(todo)}] {case.id}: {r['outcome']} ({r['seconds']} s)"
                          + ("" if r["outcome"] in GOOD else f" — {r['issues'][:1]}"),
                          file=sys.stderr, flush=True)
                elif n % 50 == 0:
                    print(f"  [{n}/{len(todo)}] ...", file=sys.stderr, flush=True)
            return r

        parallel = [c for c in todo if c.runner is None and "faults" not in c.cls]
        serial = [c for c in todo if c not in parallel]
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            list(pool.map(one, parallel))
        for case in serial:
            one(case)
    finally:
        umount_all(root)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    wall = time.monotonic() - t0
    order = {c.id: i for i, c in enumerate(cases)}
    results.sort(key=lambda r: order.get(f"{r['class']}/{r['case']}", 0))

    print(f"\n## Fault sweep: {len(results)} cases in {wall:.0f} s on {cores} core(s), "
          f"{time.strftime('%Y-%m-%d')}, numcnn from {os.path.dirname(tested)}\n")
    print(table(results))
    if skipped:
        print(f"\nskipped (no mount privilege): {', '.join(c.id for c in skipped)}")
    bad = [r for r in results if r["outcome"] not in GOOD]
    if bad:
        print(f"\n## {len(bad)} case(s) that were not a clear error, correct or survived\n")
        for r in bad:
            print(f"* **{r['outcome']}** — {r['class']} / {r['case']}\n"
                  f"  - command: `{r.get('command', '')}`\n"
                  f"  - issues: {'; '.join(r.get('issues', []))}\n"
                  f"  - stderr's last line: `{r.get('stderr_last', '')}`")
    if args.json:
        Path(args.json).write_text(json.dumps({"seconds": round(wall, 1), "cores": cores,
                                               "results": results}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.modules.setdefault("fault_sweep", sys.modules["__main__"])  # for fault_cases_newer
    sys.exit(main())
