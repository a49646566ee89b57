"""benchmarks/speed_limit.py and its JAX twins: the peers compute numcnn's network, and the
table's ratios are numcnn's median time over the peer's."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numcnn import models


def check_jax_twin(name: str) -> None:
    """The jitted forward equals numcnn's predict; one jitted SGD step equals numcnn's
    (float64 weights in both, so the comparison is at 1e-9). Run in a child process."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from jax_twins import jax_twin
    from numcnn.optimizers import SGD

    net = models.get(name, seed=1, dtype="float64")
    net.compile(SGD(0.01, momentum=0.9), "softmax_cross_entropy", metrics=[])
    rng = np.random.default_rng(0)
    x = rng.random((6, 1, 28, 28)) * (255 if name == "lenet5-1998" else 1)
    y = rng.integers(0, 10, 6)
    fwd, step, state = jax_twin(net, 0.01, 0.9)
    np.testing.assert_allclose(np.asarray(fwd(state[0], x)), net.predict(x), rtol=1e-9,
                               atol=1e-9)
    state, _ = step(state, x, y)
    net.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    for q, lay, k in net.named_params():
        if lay.trainable:
            np.testing.assert_allclose(np.asarray(state[0][q]), lay.params[k],
                                       rtol=1e-9, atol=1e-12, err_msg=q)


@pytest.mark.parametrize("name", ["lenet5", "lenet5-1998"])
def test_jax_twin_forward_and_step_match_numcnn(name):
    """In a child process: JAX's thread pools make every later fork() in the same pytest
    worker warn (an error under the suite's filterwarnings), e.g. fit(distribute=local:2)."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (pip install -e '.[bench]')")
    here = Path(__file__).resolve().parent
    path = [str(here), str(here.parents[1] / "benchmarks")]
    code = (f"import sys; sys.path[:0] = {path!r}\n"
            f"from test_speed_limit import check_jax_twin; check_jax_twin({name!r})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_child_times_every_measure_and_checks_the_peers():
    pytest.importorskip("onnxruntime")
    import speed_limit

    args = speed_limit.build_parser().parse_args(
        ["--peers", "numcnn", "onnxruntime", "--repeats", "2", "--steps", "2",
         "--infer-images", "1000", "--calls", "3", "--no-floor", "--models", "lenet5"])
    args.child = 1
    args.peers = ["numcnn", "onnxruntime"]
    res = speed_limit.child(args)
    r = res["models"]["lenet5"]["results"]
    assert len(r["train"]["numcnn"]) == len(r["infer"]["onnxruntime"]) == 2
    assert "onnxruntime" not in r["train"]  # ONNX Runtime does not train
    assert all(v > 0 for m in r.values() for vals in m.values() for v in vals)


def test_table_ratio_is_numcnn_time_over_peer_time():
    import speed_limit

    args = argparse.Namespace(peers=["numcnn", "torch"], models=["lenet5"], batch_size=128,
                              steps=10, infer_images=2000)
    res = [{"threads": 1, "models": {"lenet5": {
        "results": {"train": {"numcnn": [1.0, 2.0, 3.0], "torch": [4.0, 4.0, 8.0]},
                    "infer": {"numcnn": [0.5], "torch": [0.25]},
                    "latency": {"numcnn": [1e-4], "torch": [2e-4]}},
        "flops_train": 2e8, "floor_train_s": 0.05, "flops_infer": 8e8,
        "floor_infer_s": 0.1, "peak_gflops": 150.0}}}]
    rows = [ln.split(" | ") for ln in speed_limit.table(res, args) if ln.startswith("| lenet5")]
    train, infer, lat = rows
    assert train[5] == "0.50"  # median 2 s over median 4 s
    assert train[6] == "4.00 |"  # 2 s / 10 steps over the 0.05 s floor per step
    assert train[3].startswith("640 ")  # 1280 images in the median 2 s
    assert infer[5] == "2.00" and infer[6] == "2.50 |"  # 0.25 s per 1000 over 0.1 s
    assert lat[3].startswith("100 ") and lat[5] == "0.50"
