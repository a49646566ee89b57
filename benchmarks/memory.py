"""Peak memory of training, measured in a fresh child process per framework (Linux).

Part of the side-by-side benchmark (``bench.py`` beside this file), not of the package.

Two figures per run, both over the training window only (after data loading and model
building):

* **peak RSS** of the training process — the kernel's own high-water mark (``VmHWM``,
  reset through ``/proc/self/clear_refs`` when training starts). It misses the memory of
  data-parallel worker processes (``fit(processes=k)``).
* **peak PSS, all processes** — the proportional set size (``Pss`` in
  ``/proc/<pid>/smaps_rollup``: private pages plus each shared page divided by the number of
  processes sharing it) summed over the training process and all its descendants, sampled
  every ``interval`` seconds by the parent. Pages a forked worker shares with its parent
  (the resident dataset, libraries) are counted once, so this is the figure that compares
  one process with several. Sampling can miss a peak shorter than the interval; training
  repeats the same step hundreds of times, so the steady peak is seen.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import time

_READY = "numcnn-bench-memory: training"
#: this folder (benchmarks/), put on the child's sys.path so that it finds this module
HERE = os.path.dirname(os.path.abspath(__file__))


def status_mib(key: str, pid: int | str = "self") -> float | None:
    """``VmRSS``/``VmHWM`` (etc.) of a process in MiB from ``/proc/<pid>/status``, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def pss_mib(pid: int) -> float:
    """Proportional set size of a process in MiB (0 when it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from the parent pids in ``/proc/*/stat``."""
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{name}/stat") as f:
                text = f.read()
            parent[int(name)] = int(text[text.rindex(")") + 2:].split()[1])  # after "(comm)"
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parent.items() if ppid in frontier]
        tree += frontier
    return tree


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (Linux ≥ 4.0) so the peak covers training only."""
    with contextlib.suppress(OSError):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")


def child_memory(framework: str, model: str, bs: int, steps: int, threads: int,
                 data_dir: str | None, synthetic: bool) -> dict:
    """Run in the child: load, build, announce training on stdout, train, report MiB."""
    import bench  # here, not at the top: bench imports this module

    x, y, _, _ = bench.load_mnist(data_dir, synthetic)
    net = bench.build_numcnn(model, 0, 0.05, 0.9)
    if framework == "torch":
        torch = bench._torch()
        module, opt = bench.torch_twin(net, 0.05, 0.9)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def train() -> None:
            bench.time_torch_train(module, opt, xt, yt, bs, steps)
    else:
        def train() -> None:
            bench.time_numcnn_train(net, x, y, bs, steps)
    with bench.threads_limited(threads):
        base = status_mib("VmRSS") or 0.0
        _reset_peak()
        print(_READY, flush=True)
        train()
    peak = status_mib("VmHWM")
    if peak is None:  # not Linux: getrusage's peak (KiB on Linux, bytes on macOS)
        scale = 1024 * 1024 if sys.platform == "darwin" else 1024
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
    return {"base_mib": base, "peak_mib": peak}


def measure_memory(framework: str, model: str, bs: int, steps: int, threads: int,
                   data_dir: str | None, synthetic: bool, interval: float = 0.01) -> dict:
    """Train in a fresh child with ``framework`` ("numcnn"/"torch"); return its memory.

    Returns:
        ``{"base_mib", "peak_mib", "pss_peak_mib"}``: resident memory before training, the
        kernel's peak RSS of the child during training, and the sampled peak of the summed
        PSS of the child and its worker processes (None where ``/proc`` is missing).
    """
    args = json.dumps([framework, model, bs, steps, threads, data_dir, synthetic])
    code = ("import json, sys; sys.path.insert(0, sys.argv[2]); "
            "from memory import child_memory; "
            "print(json.dumps(child_memory(*json.loads(sys.argv[1]))))")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    proc = subprocess.Popen([sys.executable, "-c", code, args, HERE], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    sampling = os.path.exists(f"/proc/{os.getpid()}/smaps_rollup")
    peak_pss = 0.0
    lines = []
    for line in proc.stdout:  # until the child announces training (or ends)
        lines.append(line)
        if line.strip() == _READY:
            break
    while sampling and proc.poll() is None:
        peak_pss = max(peak_pss, sum(pss_mib(pid) for pid in process_tree(proc.pid)))
        time.sleep(interval)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"memory child for {framework} failed (exit {proc.returncode}):\n"
                           f"{err.strip()}")
    result = json.loads((("".join(lines) + out).strip().splitlines())[-1])
    result["pss_peak_mib"] = peak_pss if sampling else None
    return result
