"""numcnn training on two cores: one process against ``fit(distribute="local:2")`` and
``mpiexec -n 2`` (issue 17's "≥ 1.7× the 1-thread throughput at 2 cores").

    OPENBLAS_NUM_THREADS=1 python benchmarks/two_cores.py [--model lenet5] [--batch 128]
        [--steps 150] [--repeats 5] [--modes 1 local:2 mpi:2]

Every measurement runs in a fresh child process (``mpi:2`` under ``mpiexec -n 2``), the
modes in a rotated order each repeat, one BLAS thread per process. A child trains ``steps``
batches of random MNIST-shaped data (SGD with momentum, modern LeNet-5 by default) after a
warm-up of 3 batches, and reports: wall-clock images/s of the timed ``fit`` (forking the
local processes included), the CPU time per image summed over every process, and per rank
the CPU time per step in forward + backward of its shard, in the gradient allreduce, in the
optimizer step and in the rest of the step (the trainer, metrics, callbacks), and the wall
time per step spent waiting in the allreduce. The table gives medians over the repeats and,
per repeat, the ratio to the one-process run of the same repeat.

On a machine other jobs share, the wall-clock figures are shares of it; the CPU times are
what the work costs. ``projected`` is the one-process CPU time per step over the slowest
rank's: the speed-up the same work would give on two idle cores, if nothing else slowed it.

``--contention`` first times what limits that: forward + backward of a half batch (the
shard of one rank) in a loop, in one process alone and in two independent processes at
once (no communication at all), CPU ms per step, medians — how much the two cores slow each
other down on the same work (shared caches and memory bandwidth).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

PIECES = ("shard", "allreduce", "optimizer")


def child(mode: str, args: argparse.Namespace, out_dir: str) -> None:
    import numcnn
    from numcnn.models import lenet5, resnet20
    from numcnn.training import Callback, distributed
    from numcnn.training import trainer as trainer_mod

    spent = dict.fromkeys(PIECES, 0.0)
    waited = [0.0]

    def timed(cls, name, piece, wall=False):
        raw = getattr(cls, name)

        def wrapper(*a, **k):
            c, t = time.thread_time(), time.perf_counter()
            try:
                return raw(*a, **k)
            finally:
                spent[piece] += time.thread_time() - c
                if wall:
                    waited[0] += time.perf_counter() - t
        setattr(cls, name, wrapper)

    timed(trainer_mod.Trainer, "train_step", "shard")
    timed(distributed.GradientSync, "reduce", "allreduce", wall=True)
    shape = (1, 28, 28) if args.model == "lenet5" else (3, 32, 32)
    model = (lenet5 if args.model == "lenet5" else resnet20)(seed=0)
    opt = numcnn.optimizers.SGD(lr=0.01, momentum=0.9)
    timed(type(opt), "step", "optimizer")
    model.compile(optimizer=opt, loss="softmax_cross_entropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    x = rng.random((n,) + shape, dtype=np.float32)
    y = rng.integers(0, 10, n)
    distribute = {"1": "local:1", "local:2": "local:2", "mpi:2": "mpi"}[mode]
    model.fit(x[:3 * args.batch], y[:3 * args.batch], batch_size=args.batch, verbose=0,
              distribute=distribute)
    step_cpu = [0.0]

    class Report(Callback):
        def on_train_begin(self, logs=None):
            for key in spent:
                spent[key] = 0.0
            waited[0] = 0.0
            step_cpu[0] = time.process_time()

        def on_train_end(self, logs=None):
            rank = self.model.trainer.rank
            row = {k: 1e3 * v / args.steps for k, v in spent.items()}
            row["rest"] = 1e3 * (time.process_time() - step_cpu[0]) / args.steps - sum(
                row.values())
            row["wait_wall"] = 1e3 * waited[0] / args.steps
            with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
                json.dump(row, f)

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    c0, t0 = time.process_time(), time.perf_counter()
    model.fit(x, y, batch_size=args.batch, verbose=0, distribute=distribute,
              callbacks=[Report()])
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c0 + (after.ru_utime + after.ru_stime - before.ru_utime
                                      - before.ru_stime)
    if mode == "mpi:2":
        from mpi4py import MPI

        cpu = MPI.COMM_WORLD.allreduce(time.process_time() - c0)
        if MPI.COMM_WORLD.Get_rank() != 0:
            return
    ranks = [json.load(open(os.path.join(out_dir, f))) for f in sorted(os.listdir(out_dir))]
    print(json.dumps({"mode": mode, "img_per_s": n / wall, "cpu_ms_per_img": 1e3 * cpu / n,
                      "ranks": ranks}), flush=True)


def probe(args: argparse.Namespace) -> None:
    """Forward + backward of a half batch in a loop: CPU ms per step (median of 15x10)."""
    import numcnn
    from numcnn.models import lenet5, resnet20

    shape = (1, 28, 28) if args.model == "lenet5" else (3, 32, 32)
    model = (lenet5 if args.model == "lenet5" else resnet20)(seed=0)
    model.compile(optimizer=numcnn.optimizers.SGD(lr=0.01, momentum=0.9),
                  loss="softmax_cross_entropy", metrics=["accuracy"])
    m = args.batch // 2
    rng = np.random.default_rng(0)
    xs, ys = [rng.random((m,) + shape, dtype=np.float32)], [rng.integers(0, 10, m)]
    for _ in range(5):
        model.trainer.train_step(xs, ys)
    times = []
    for _ in range(15):
        c = time.thread_time()
        for _ in range(10):
            model.trainer.train_step(xs, ys)
        times.append(100 * (time.thread_time() - c))
    print(json.dumps({"cpu_ms": statistics.median(times)}), flush=True)


def contention(args: argparse.Namespace) -> None:
    cmd = [sys.executable, __file__, "--probe", "--model", args.model, "--batch",
           str(args.batch)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    alone, pair = [], []
    for _ in range(3):
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        alone.append(json.loads(out.stdout)["cpu_ms"])
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
        pair += [json.loads(p.communicate()[0])["cpu_ms"] for p in procs]
    med = statistics.median
    print(f"contention: forward + backward of {args.batch // 2} images, CPU ms per step: "
          f"{med(alone):.2f} alone, {med(pair):.2f} with a second process doing the same "
          f"(x{med(pair) / med(alone):.2f}); load {os.getloadavg()[0]:.1f}")


def measure(mode: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as out_dir:
        cmd = [sys.executable, __file__, "--child", mode, "--out-dir", out_dir,
               "--model", args.model, "--batch", str(args.batch), "--steps", str(args.steps)]
        if mode == "mpi:2":
            cmd = ["mpiexec", "-n", "2", *cmd]
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800,
                              start_new_session=True)  # each mode its own session
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
        return json.loads(lines[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("lenet5", "resnet20"), default="lenet5")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--modes", nargs="+", default=["1", "local:2", "mpi:2"])
    p.add_argument("--contention", action="store_true",
                   help="first time a half batch alone and two at once")
    p.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.probe:
        return probe(args)
    if args.child:
        return child(args.child, args, args.out_dir)
    if args.contention:
        contention(args)
    load = [os.getloadavg()[0]]
    runs: dict[str, list[dict]] = {m: [] for m in args.modes}
    for rep in range(args.repeats):
        order = args.modes[rep % len(args.modes):] + args.modes[:rep % len(args.modes)]
        for mode in order:
            runs[mode].append(measure(mode, args))
        load.append(os.getloadavg()[0])
    med = statistics.median
    print(f"model {args.model}, batch {args.batch}, {args.steps} steps, {args.repeats} "
          f"repeats, modes in rotated order; load average (1 min) {min(load):.1f}–"
          f"{max(load):.1f} on {os.cpu_count()} cores")
    print("| mode | images/s (median) | × 1 process (per repeat, median) | CPU ms/image "
          "| per rank, CPU ms/step: shard fwd+bwd / allreduce / optimizer / rest | "
          "allreduce wait (wall ms/step) | projected × |")
    print("|---|---|---|---|---|---|---|")
    one = runs.get("1")
    for mode, rows in runs.items():
        ratio = (med(r["img_per_s"] / o["img_per_s"] for r, o in zip(rows, one))
                 if one else float("nan"))
        pieces = [med(r["ranks"][k][piece] for r in rows) for k in range(len(rows[0]["ranks"]))
                  for piece in (*PIECES, "rest")]
        per_rank = "; ".join(" / ".join(f"{v:.2f}" for v in pieces[4 * k:4 * k + 4])
                             for k in range(len(pieces) // 4))
        waits = ", ".join(f"{med(r['ranks'][k]['wait_wall'] for r in rows):.2f}"
                          for k in range(len(rows[0]["ranks"])))
        total = [[sum(rk[piece] for piece in (*PIECES, "rest")) for rk in r["ranks"]]
                 for r in rows]
        projected = (med(sum(t1) / max(t) for t, t1 in
                         zip(total, [[sum(o["ranks"][0][q] for q in (*PIECES, "rest"))]
                                     for o in one]))
                     if one else float("nan"))
        print(f"| {mode} | {med(r['img_per_s'] for r in rows):,.0f} | {ratio:.2f} | "
              f"{med(r['cpu_ms_per_img'] for r in rows):.4f} | {per_rank} | {waits} | "
              f"{projected:.2f} |")


if __name__ == "__main__":
    main()
