"""numcnn at the speed limit (issue 17): both LeNet-5s beside every peer, in one run.

For the modern LeNet-5 (``numcnn.models.lenet5``) and the 1998 one (``lenet5_1998``), at
each thread count, this times

* **training**: images/s of batch-128 steps (numcnn ``fit``; PyTorch eager; PyTorch with
  ``torch.compile``; JAX with the whole step — forward, loss, gradient, SGD with momentum —
  under one ``jax.jit``), softmax cross-entropy and SGD with momentum 0.9 in all;
* **inference**: images/s of batches of 1,000 (numcnn ``predict``; PyTorch eager and
  compiled; ONNX Runtime with its default graph optimisations on numcnn's ONNX export;
  JAX jitted), and the **latency** of one image (median of many calls),

all from the same weights (numcnn's, copied: ``torch_twins.py``, ``jax_twins.py``) and the
same random MNIST-shaped data. Each peer is optional: one that is not installed or fails is
skipped with a note. The ratios are numcnn's **time** over the peer's (below 1: numcnn
faster). Beside them: the FLOPs of one training step and of one inference batch and
numcnn's time over the *shape floor* of ``floor.py`` (the time NumPy's BLAS needs for the
network's matrix products alone, probed on this machine: the "× floor" figure).

Every thread count runs in a child process of its own, pinned to that many cores
(``os.sched_setaffinity``), with every library given the same count: OpenBLAS through
``threadpoolctl`` and ``numcnn.set_num_threads(n)``, ``torch.set_num_threads(n)``, ONNX
Runtime's ``intra_op_num_threads = n``, and for JAX (whose thread pool is fixed at import)
``XLA_FLAGS`` set before the import. Within a child the peers run in an order that rotates
with every repeat; the table shows medians with the min–max range of the repeats.

    python benchmarks/speed_limit.py                       # 1 and 2 threads, 5 repeats
    python benchmarks/speed_limit.py --threads 1 --repeats 3 --peers numcnn onnxruntime
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = ("numcnn", "torch", "compile", "onnxruntime", "jax")
TITLES = {"numcnn": "numcnn", "torch": "PyTorch", "compile": "torch.compile",
          "onnxruntime": "ONNX Runtime", "jax": "JAX (jit)"}
MODELS = ("lenet5", "lenet5-1998")
MEASURES = ("train", "infer", "latency")
LABELS = {"train": "train img/s (batch 128)", "infer": "infer img/s (batch 1000)",
          "latency": "latency µs (1 image)"}


# ----------------------------------------------------------------------------- child
def _pin(threads: int) -> str:
    """Keep this process on ``threads`` cores; returns a note."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return "no CPU affinity on this platform"
    if threads <= len(cpus):
        os.sched_setaffinity(0, cpus[:threads])
        return f"pinned to CPUs {cpus[:threads]}"
    return f"asked for {threads} threads on {len(cpus)} CPUs"


class Peers:
    """The peers of one model at one thread count: ``fn[peer][measure]()`` -> seconds."""

    def __init__(self, args, model: str, th: int, notes: list[str]):
        import numpy as np

        from numcnn.benchmark import build_numcnn

        self.args, self.model, self.th, self.notes = args, model, th, notes
        rng = np.random.default_rng(args.seed)
        scale = 255.0 if model == "lenet5-1998" else 1.0  # the 1998 net reads grey levels
        bs, steps = args.batch_size, args.steps
        self.x = (rng.random((bs * steps, 1, 28, 28), dtype=np.float32) * scale)
        self.y = rng.integers(0, 10, bs * steps)
        self.xi = rng.random((args.infer_images, 1, 28, 28), dtype=np.float32) * scale
        self.x1 = self.xi[:1].copy()
        self.net = build_numcnn(model, args.seed, args.lr, args.momentum)  # inference
        self.train_net = build_numcnn(model, args.seed, args.lr, args.momentum)
        self.reference = self.net.predict(self.xi[:1000])
        self.fn: dict[str, dict[str, object]] = {}
        for peer in args.peers:
            try:
                self.fn[peer] = getattr(self, "_" + peer)()
            except Exception as err:  # a missing or failing peer is skipped, with a note
                notes.append(f"{model}, {th} thread(s): {TITLES[peer]} skipped "
                             f"({type(err).__name__}: {str(err).splitlines()[0][:160]})")

    def _check(self, peer: str, out) -> None:
        import numpy as np

        err = float(np.abs(np.asarray(out, np.float64) - self.reference).max())
        scale = float(np.abs(self.reference).max())
        if not err <= 1e-3 * scale:
            raise RuntimeError(f"{TITLES[peer]} computes another network: max difference "
                               f"{err:.3g} at scale {scale:.3g}")

    def _numcnn(self):
        from numcnn.threads import num_threads

        net, bs = self.net, self.args.batch_size
        # n cores for training: numcnn's data-parallel processes of one BLAS thread each
        # (fit(distribute="local:n")), or --numcnn-train blas: one process, n BLAS threads
        local = self.th > 1 and self.args.numcnn_train == "local"
        kw = {"distribute": f"local:{self.th}"} if local else {}

        def train():
            with num_threads(1 if local else self.th):
                t = _now()
                self.train_net.fit(self.x, self.y, batch_size=bs, epochs=1, shuffle=False,
                                   verbose=0, **kw)
                return _now() - t
        return {"train": train, "infer": lambda: _timed(net.predict, self.xi, 1000),
                "latency": lambda: _latency(lambda: net.predict(self.x1, batch_size=1),
                                            self.args.calls)}

    def _torch_module(self):
        import torch

        from torch_twins import torch_twin

        torch.set_num_threads(self.th)
        return torch_twin(self.net, self.args.lr, self.args.momentum)

    def _torch_fns(self, peer: str, train_mod, train_opt, eval_mod):
        import torch

        xt, yt = torch.from_numpy(self.x), torch.from_numpy(self.y)
        xit, x1t = torch.from_numpy(self.xi), torch.from_numpy(self.x1)
        bs = self.args.batch_size
        loss_fn = torch.nn.CrossEntropyLoss()

        def train():
            train_mod.train()
            t = _now()
            for s in range(0, len(xt), bs):
                train_opt.zero_grad(set_to_none=True)
                loss = loss_fn(train_mod(xt[s : s + bs]), yt[s : s + bs])
                loss.backward()
                train_opt.step()
            loss.item()
            return _now() - t

        def infer_all():
            with torch.no_grad():
                return [eval_mod(xit[s : s + 1000]).numpy() for s in range(0, len(xit), 1000)]

        def one():
            with torch.no_grad():
                return eval_mod(x1t).numpy()
        self._check(peer, infer_all()[0])
        return {"train": train, "infer": lambda: _timed(infer_all),
                "latency": lambda: _latency(one, self.args.calls)}

    def _torch(self):
        module, opt = self._torch_module()
        evalm, _ = self._torch_module()
        evalm.eval()
        return self._torch_fns("torch", module, opt, evalm)

    def _compile(self):
        import torch

        module, opt = self._torch_module()
        evalm, _ = self._torch_module()
        evalm.eval()
        return self._torch_fns("compile", torch.compile(module, dynamic=False), opt,
                               torch.compile(evalm, dynamic=False))

    def _onnxruntime(self):
        import tempfile

        import onnxruntime as ort

        import numcnn.onnx

        path = os.path.join(tempfile.mkdtemp(prefix="speed-limit-"), "model.onnx")
        numcnn.onnx.export(self.net, path)
        opts = ort.SessionOptions()  # default graph optimisations (ORT_ENABLE_ALL)
        opts.intra_op_num_threads = self.th
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name

        def infer_all():
            return [sess.run(None, {name: self.xi[s : s + 1000]})[0]
                    for s in range(0, len(self.xi), 1000)]
        self._check("onnxruntime", infer_all()[0])
        return {"infer": lambda: _timed(infer_all),
                "latency": lambda: _latency(lambda: sess.run(None, {name: self.x1}),
                                            self.args.calls)}

    def _jax(self):
        import jax
        import numpy as np

        from jax_twins import jax_twin

        fwd, step, state0 = jax_twin(self.net, self.args.lr, self.args.momentum)
        params = state0[0]
        bs = self.args.batch_size
        holder = [state0]

        def train():
            state = holder[0]
            t = _now()
            for s in range(0, len(self.x), bs):
                state, loss = step(state, self.x[s : s + bs], self.y[s : s + bs])
            jax.block_until_ready(loss)
            holder[0] = state
            return _now() - t

        def infer_all():
            return [np.asarray(fwd(params, self.xi[s : s + 1000]))
                    for s in range(0, len(self.xi), 1000)]
        self._check("jax", infer_all()[0])
        return {"train": train, "infer": lambda: _timed(infer_all),
                "latency": lambda: _latency(lambda: np.asarray(fwd(params, self.x1)),
                                            self.args.calls)}


_now = time.perf_counter  # the child's clock (see --clock)


def _clock(args, th: int) -> str:
    """``"cpu"`` (the process's CPU time: other jobs on a shared host do not count) or
    ``"wall"``; ``auto`` is CPU time at 1 thread, wall time at more (CPU time would add up
    the threads)."""
    return ("cpu" if th == 1 else "wall") if args.clock == "auto" else args.clock


def _timed(fn, *args) -> float:
    t = _now()
    fn(*args)
    return _now() - t


def _latency(fn, calls: int) -> float:
    """Median seconds of one call (after one warm-up call)."""
    fn()
    ts = []
    for _ in range(calls):
        t = _now()
        fn()
        ts.append(_now() - t)
    return statistics.median(ts)


def child(args) -> dict:
    """Everything at ``args.child`` threads, in this (pinned) process: a JSON-able dict."""
    th = args.child
    notes = [f"{th} thread(s): {_pin(th)}"]
    if "jax" in args.peers and th == 1:  # JAX sizes its pools at import: flags first
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + " --xla_cpu_multi_thread_eigen=false").strip()
    global _now
    _now = time.process_time if _clock(args, th) == "cpu" else time.perf_counter
    from threadpoolctl import threadpool_limits

    import numcnn

    threadpool_limits(th)  # NumPy's BLAS, for the rest of this process
    numcnn.set_num_threads(th)
    out: dict = {"threads": th, "models": {}, "notes": notes}
    for model in args.models:
        peers = Peers(args, model, th, notes)
        res: dict[str, dict[str, list[float]]] = {m: {} for m in MEASURES}
        for fns in peers.fn.values():  # warm-up: compiles, workspaces, caches
            for fn in fns.values():
                fn()
        names = list(peers.fn)
        for r in range(args.repeats):
            for m in MEASURES:
                for peer in names[r % len(names):] + names[: r % len(names)]:
                    fn = peers.fn[peer].get(m)
                    if fn is not None:
                        res[m].setdefault(peer, []).append(fn())
        out["models"][model] = {"results": res, **_floor(args, peers.net, model, th, notes)}
    return out


def _floor(args, net, model: str, th: int, notes: list[str]) -> dict:
    """FLOPs and the probed shape floor of a training step and an inference batch."""
    if args.no_floor:
        return {}
    try:
        from floor import compute_floor
    except ImportError as err:
        notes.append(f"floor.py not importable ({err}): no × floor figures")
        return {}
    tr = compute_floor(net, args.batch_size, threads=th, training=True, repeats=3)
    inf = compute_floor(net, 1000, threads=th, training=False, repeats=3,
                        peak=tr.peak_gflops)
    return {"flops_train": tr.flops, "floor_train_s": tr.step_seconds,
            "flops_infer": inf.flops, "floor_infer_s": inf.step_seconds,
            "peak_gflops": tr.peak_gflops}


# ---------------------------------------------------------------------------- parent
def _versions() -> dict[str, str]:
    out = {"Python": platform.python_version()}
    for mod in ("numpy", "numcnn", "torch", "onnxruntime", "jax", "threadpoolctl"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            out[mod] = "not installed"
    try:
        from threadpoolctl import threadpool_info

        blas = [f"{i.get('internal_api')} {i.get('version')}" for i in threadpool_info()
                if i.get("user_api") == "blas"]
        out["BLAS"] = ", ".join(blas) or "?"
    except Exception:
        pass
    return out


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        return f"{names[0]} ×{len(names)}" if names else platform.processor()
    except OSError:
        return platform.processor() or platform.machine()


def _stats(v: list[float]) -> tuple[float, float, float]:
    return statistics.median(v), min(v), max(v)


def _cell(values: list[float] | None, measure: str, images: int) -> str:
    if not values:
        return "—"
    if measure == "latency":
        med, lo, hi = _stats([t * 1e6 for t in values])
        return f"{med:.0f} ({lo:.0f}–{hi:.0f})"
    med, lo, hi = _stats([images / t for t in values])
    return f"{med:,.0f} ({lo:,.0f}–{hi:,.0f})"


def table(results: list[dict], args) -> list[str]:
    """The markdown table and the FLOP/floor lines."""
    peers = [p for p in args.peers if p != "numcnn"]
    head = ["model", "measure", "threads", "numcnn"] + [TITLES[p] for p in peers] + \
        [f"numcnn/{TITLES[p]}" for p in peers] + ["× floor"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    extra = []
    images = {"train": args.batch_size * args.steps, "infer": args.infer_images, "latency": 1}
    for model in args.models:
        for res in results:
            info = res["models"].get(model)
            if info is None:
                continue
            th = res["threads"]
            for m in MEASURES:
                r = info["results"][m]
                if not r.get("numcnn"):
                    continue
                row = [model, LABELS[m], str(th), _cell(r.get("numcnn"), m, images[m])]
                row += [_cell(r.get(p), m, images[m]) for p in peers]
                mine = statistics.median(r["numcnn"])
                row += [f"{mine / statistics.median(r[p]):.2f}" if r.get(p) else "—"
                        for p in peers]
                floor = {"train": info.get("floor_train_s"), "infer": info.get("floor_infer_s")}
                per = {"train": mine / args.steps, "infer": mine * 1000 / args.infer_images}
                row.append(f"{per[m] / floor[m]:.2f}" if floor.get(m) else "—")
                lines.append("| " + " | ".join(row) + " |")
            if "flops_train" in info:
                extra.append(
                    f"{model}, {th} thread(s): {info['flops_train'] / 1e6:.1f} MFLOP per "
                    f"training step of {args.batch_size} images, "
                    f"{info['flops_infer'] / 1e6:.1f} MFLOP per inference batch of 1000; "
                    f"shape floor {info['floor_train_s'] * 1e3:.2f} ms per step, "
                    f"{info['floor_infer_s'] * 1e3:.2f} ms per 1000 images; peak GEMM "
                    f"{info['peak_gflops']:.0f} GFLOP/s")
    return lines + [""] + extra


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS))
    p.add_argument("--repeats", type=int, default=5, help="alternating repeats (default 5)")
    p.add_argument("--batch-size", type=int, default=128, help="training batch (128)")
    p.add_argument("--steps", type=int, default=40, help="training steps per repeat (40)")
    p.add_argument("--infer-images", type=int, default=5000,
                   help="images per inference repeat, in batches of 1000 (5000)")
    p.add_argument("--calls", type=int, default=300, help="calls per latency median (300)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-floor", action="store_true", help="skip the GEMM probe")
    p.add_argument("--numcnn-train", choices=("local", "blas"), default="local",
                   help="numcnn's training at n >= 2 threads: local (default) = "
                   "fit(distribute='local:n'), n processes of 1 BLAS thread; blas = one "
                   "process with n BLAS threads (numcnn.set_num_threads(n))")
    p.add_argument("--clock", choices=("auto", "cpu", "wall"), default="auto",
                   help="auto (default): process CPU time at 1 thread, wall time at more")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "numcnn" not in args.peers:
        args.peers = ["numcnn"] + list(args.peers)
    if args.infer_images % 1000:
        raise SystemExit("--infer-images must be a multiple of 1000")
    if args.child is not None:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return 0
    command = "python benchmarks/speed_limit.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load0 = os.getloadavg()
    results, notes = [], []
    for th in args.threads:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(th)] + \
            (sys.argv[1:] if argv is None else list(argv))
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(th), OMP_NUM_THREADS=str(th))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not line:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            notes.append(f"{th} thread(s): the child failed ({' / '.join(tail)})")
            continue
        res = json.loads(line[-1][7:])
        results.append(res)
        notes += res["notes"]
    load1 = os.getloadavg()
    v = _versions()
    print(f"# speed_limit.py: numcnn beside its peers on LeNet-5 ({start})")
    print(f"command: {command}")
    print(f"machine: {_cpu()}, {os.cpu_count()} CPUs; {platform.platform()}")
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    print(f"load average (1/5/15 min): {load0[0]:.1f}/{load0[1]:.1f}/{load0[2]:.1f} at the "
          f"start, {load1[0]:.1f}/{load1[1]:.1f}/{load1[2]:.1f} at the end")
    print(f"protocol: medians (min–max) of {args.repeats} repeats, peers in an order rotating "
          f"with each repeat; train = {args.steps} steps of {args.batch_size}, infer = "
          f"{args.infer_images} images in batches of 1000, latency = median of {args.calls} "
          "one-image calls; ratios are numcnn's time over the peer's (< 1: numcnn faster); "
          "× floor = numcnn's time over the GEMM shape floor of floor.py; numcnn trains "
          + ("at n ≥ 2 threads in n processes (fit(distribute='local:n'))"
             if args.numcnn_train == "local" else "in one process with n BLAS threads")
          + "; clock: "
          + ", ".join(f"{th} thread(s) {_clock(args, th)}" for th in args.threads))
    print()
    for ln in table(results, args):
        print(ln)
    for n in notes:
        print(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    raise SystemExit(main())
