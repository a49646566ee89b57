"""The inference path of ``predict``: a chain model compiled into fused stages.

``Model.predict`` on a chain of the layers below (both LeNet-5s, and any Sequential of the
same layers) runs here instead of through the training graph. Nothing is kept for a
backward pass, and a graph pass merges what it can:

* ``[Rescale] [Pad2D] Conv2D [BatchNorm2D] [activation] [pooling] [activation]`` is one
  stage: the rescaling is applied while the input is copied into the padded buffer (the
  ``Pad2D`` border becomes the buffer's), the BatchNorm's running-statistics affine map and
  the ``S`` of ``A·tanh(S·x)`` are folded into the kernels and bias, and the pooling is
  done block by block while the convolution's output is in cache
  (:func:`numcnn.functional.fast.infer.conv_pool`: max pooling before the bias and the
  activation, LeNet's subsampling after it, with its ``coef`` and bias);
* a convolution whose kernel covers its whole input (LeNet-5's C5) and ``Dense`` are one
  product each, ``(units, D) @ (D, n)``, with their activation;
* the amplitude ``A`` of a scaled tanh is carried to the next linear step and folded there
  (into its kernels, or its output when that is smaller); ``Dropout`` is the identity;
  ``RBFOutput`` computes its squared distances as the layer does.

Arrays are batch-innermost, ``(C, H, W, n)`` and ``(D, n)``, and the batch runs in chunks
of :data:`CHUNK` images, so a chunk's activations stay in the cache and the products are
wide; with ``numcnn.set_num_threads(T)``, ``T ≥ 2``, the batch is split into ``T`` parts
run by ``T`` threads with one BLAS thread each (NumPy releases the GIL in BLAS and in its
element-wise loops). The parameters are read at every call — an optimizer step or
``set_weights`` is seen at once — and the folds are recomputed then (a few thousand
values).

Other models (graphs, other layers, channels-last, ``fuse=False``) return None from
:func:`inference_plan` and ``predict`` runs the graph as before. Results equal the graph's
within float rounding (the folds and the order of the sums differ).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..functional.fast.infer import (
    Buffers,
    RowPlan,
    apply_activation,
    conv_pool,
    conv_pool_views,
    conv_rows_pool,
    rbf_distances,
)
from ..layers.activations import ReLU, Tanh
from ..layers.conv import Conv2D
from ..layers.core import Dense, Flatten
from ..layers.lenet import RBFOutput, ScaledTanh, Subsampling2D
from ..layers.norm import BatchNorm2D
from ..layers.pooling import MaxPool2D
from ..layers.regularization import Dropout
from ..layers.rescaling import Rescale
from ..layers.reshaping import Pad2D

#: images per chunk: a chunk's activations and im2col blocks stay in a 1–2 MB L2 cache
CHUNK = 64
#: a batch is split between threads only when each part has at least this many images
MIN_PART = 16


class Unsupported(Exception):
    """The model has a layer or a pattern the inference path does not handle."""


def _act(layer: Any) -> tuple[str, float, float] | None:
    """``(kind, A, S)`` of an activation layer computing ``A·g(S·x)``, else None."""
    t = type(layer)
    if t is ReLU:
        return ("relu", 1.0, 1.0)
    if t is Tanh:
        return ("tanh", 1.0, 1.0)
    if t is ScaledTanh:
        return ("tanh", layer.A, layer.S)
    return None


# --------------------------------------------------------------------------------- stages
class ConvStage:
    """``[Rescale] [Pad2D] Conv2D [BatchNorm2D] [act] [MaxPool2D | Subsampling2D] [act]``."""

    def __init__(self, conv: Conv2D, in_shape: tuple, rescale: Any, pad: Any, bn: Any,
                 act: Any, pool: Any, post: Any, first: bool):
        C, H, Wd = in_shape
        if pool is not None and type(pool) is MaxPool2D and post is not None:
            if act is not None:
                raise Unsupported("two activations around a max pooling")
            act, post = post, None  # max pooling first anyway: the same computation
        self.conv, self.bn, self.act, self.pool, self.post = conv, bn, act, pool, post
        self.first = first
        self.scale = (rescale.scale, rescale.offset) if rescale is not None else None
        cp = conv._pads((H + (pad.padding[0] + pad.padding[1] if pad else 0),
                         Wd + (pad.padding[2] + pad.padding[3] if pad else 0)))
        if pad is not None:
            if any(cp):
                raise Unsupported("Pad2D before a padded convolution")
            self.pads, self.fill = tuple(pad.padding), pad.value
        else:
            self.pads, self.fill = cp, conv.padding_value
        pt, pb, pl, pr = self.pads
        self.Hp, self.Wp = H + pt + pb, Wd + pl + pr
        kh, kw = conv.kernel_size
        sh, sw = conv.stride
        self.Ho, self.Wo = (self.Hp - kh) // sh + 1, (self.Wp - kw) // sw + 1
        self.P = 1 if pool is None else (pool.pool_size if type(pool) is Subsampling2D
                                         else pool.pool_size[0])
        self.pool_kind = None if pool is None else ("sum" if type(pool) is Subsampling2D
                                                     else "max")
        self.Ha, self.Wb = self.Ho // self.P, self.Wo // self.P
        self.in_shape = (C, H, Wd)
        self.F = conv.out_channels
        self.out_shape = (self.F, self.Ha, self.Wb)
        self.copy_in = first or any(self.pads) or self.scale is not None
        self.rows = tuple(conv.stride) == (1, 1) and self.P > 1  # row fields (infer.RowPlan)
        if pool is not None and tuple(pool.output_shape((self.F, self.Ho, self.Wo))) != \
                self.out_shape:
            raise Unsupported(f"{pool.display_name}: output size not {self.out_shape}")

    def weights(self, c_in: float, n_total: int) -> tuple[Any, float]:
        """Per call: ``((W2, b, pool_scale, pool_bias), pending scale)``. The activation's
        input is ``S·(s·(c_in·W∗h + b) + t)`` (``s``, ``t`` the BatchNorm's affine map, else
        1 and 0), so ``W2 = (S·s·c_in)·W`` and ``b2 = S·(s·b + t)``."""
        W = self.conv.params["W"]
        F, dt = self.F, W.dtype
        b = self.conv.params.get("b")
        kind, A, S = self.act if self.act is not None else (None, 1.0, 1.0)
        s = t = None
        if self.bn is not None:  # the running statistics' affine map, in float64
            gamma, beta = (np.asarray(v, np.float64) for v in self.bn._gamma_beta())
            s = gamma / np.sqrt(self.bn.buffers["running_var"].astype(np.float64)
                                + self.bn.eps)
            t = beta - self.bn.buffers["running_mean"].astype(np.float64) * s
        Wo = W.transpose(0, 2, 1, 3) if self.rows else W  # rows in the fields' order
        if s is not None:  # per-channel scales, folded in float64 and rounded once
            chan = (S * c_in * s).reshape(F, 1, 1, 1)
            W2 = (Wo.astype(np.float64) * chan).astype(dt).reshape(F, -1)
        elif S * c_in != 1.0 or (self.rows and W.shape[1] > 1):
            # one pass scales and re-orders: a fresh (F, kh, C, kw) array
            W2 = np.multiply(Wo, dt.type(S * c_in), out=np.empty(Wo.shape, dt)).reshape(F, -1)
        else:  # a view of the live kernels (C = 1: the orders agree)
            W2 = Wo.reshape(F, -1)
        bias = None
        if b is not None and s is None and S == 1.0:
            bias = b.reshape(F, 1)
        elif s is not None:
            bb = np.zeros(F) if b is None else b.astype(np.float64)
            bias = (S * (s * bb + t)).astype(dt).reshape(F, 1)
        elif b is not None:
            bias = (b * dt.type(S)).reshape(F, 1)
        pool_scale = pool_bias = None
        pending = A
        if self.pool_kind == "sum":  # post-act input: pS·(coef·(A·Σ) + b)
            _, pA, pS = self.post if self.post is not None else (None, 1.0, 1.0)
            pool_scale = (self.pool.params["coef"] * dt.type(pS * A)).reshape(F, 1)
            pool_bias = (self.pool.params["b"] * dt.type(pS)).reshape(F, 1)
            pending = pA
        elif self.post is not None:  # after max pooling: A·g(S·(A1·m)), m the pooled value
            raise Unsupported("an activation after an activated max pooling")
        return (W2, bias, pool_scale, pool_bias), pending

    def run(self, h: np.ndarray, w: Any, bufs: Buffers, key: Any) -> np.ndarray:
        """``h``: (C, H, W, n), or for the first stage the NCHW chunk (n, C, H, W)."""
        n = h.shape[0] if self.first else h.shape[3]
        C, H, Wd = self.in_shape
        dt = w[0].dtype
        if self.copy_in:
            xp = bufs.get((key, "xp", n), (C, self.Hp, self.Wp, n), dt, self.fill)
            pt, _, pl, _ = self.pads
            inner = xp[:, pt : pt + H, pl : pl + Wd]
            src = h.transpose(1, 2, 3, 0) if self.first else h
            if self.scale is None:
                np.copyto(inner, src)
            else:
                np.multiply(src, dt.type(self.scale[0]), out=inner)
                inner += dt.type(self.scale[1])
        else:
            xp = h
        out = bufs.get((key, "out", n), (self.F, self.Ha, self.Wb, n), dt)
        cached = bufs.arrays.get((key, "views", n))
        if cached is None or cached[0] is not xp:
            kh, kw = self.conv.kernel_size
            if self.rows:
                views = RowPlan(xp, self.F, kh, kw, self.P, self.Ha, self.Wb, out, bufs,
                                (key, n))
            else:
                views = conv_pool_views(xp, self.F, kh, kw, self.conv.stride, self.P,
                                        self.Ha, self.Wb, bufs, (key, n))
            cached = bufs.arrays[(key, "views", n)] = (xp, views)
        kind = self.act[0] if self.act is not None else None
        post = self.post[0] if self.post is not None else None
        W2, bias, ps, pb = w
        if self.rows:
            conv_rows_pool(xp, W2, bias, self.pool_kind, kind, cached[1], ps, pb, post)
            return out
        conv_pool(xp, W2, bias, self.P, self.pool_kind, kind, out, cached[1], ps, pb, post)
        return out


class DenseStage:
    """``Dense`` (or a convolution covering its whole input) then an activation: one product
    ``(units, D) @ (D, n)``."""

    def __init__(self, layer: Any, act: Any, in_dim: int):
        self.layer, self.act = layer, act
        self.whole = type(layer) is Conv2D
        self.units = layer.out_channels if self.whole else layer.units
        self.in_dim = in_dim

    def weights(self, c_in: float, n_total: int) -> tuple[Any, float]:
        W = self.layer.params["W"]
        Wt = W.reshape(self.units, -1) if self.whole else W.T  # (units, D)
        b = self.layer.params.get("b")
        kind, A, S = self.act if self.act is not None else (None, 1.0, 1.0)
        c = S * c_in
        out_scale = None
        if c != 1.0:
            if Wt.size <= self.units * n_total:  # scale the smaller of the two
                Wt = (Wt * W.dtype.type(c)).astype(W.dtype)
            else:
                out_scale = W.dtype.type(c)
        bias = None
        if b is not None:
            bias = (b * W.dtype.type(S)).reshape(-1, 1) if S != 1.0 else b.reshape(-1, 1)
        return (Wt, bias, out_scale), A

    def run(self, h: np.ndarray, w: Any, bufs: Buffers, key: Any) -> np.ndarray:
        n = h.shape[-1]
        Wt, bias, out_scale = w
        out = bufs.get((key, "out", n), (self.units, n), Wt.dtype)
        np.matmul(Wt, h.reshape(self.in_dim, n), out=out)
        if out_scale is not None:
            out *= out_scale
        if bias is not None:
            out += bias
        if self.act is not None:
            apply_activation(self.act[0], out)
        return out


class RBFStage:
    """``RBFOutput``: squared distances to the centres (the pending scale applied first)."""

    def __init__(self, layer: RBFOutput):
        self.layer = layer

    def weights(self, c_in: float, n_total: int) -> tuple[Any, float]:
        return (self.layer.params["W"], c_in), 1.0

    def run(self, h: np.ndarray, w: Any, bufs: Buffers, key: Any) -> np.ndarray:
        centres, c = w
        U, D = centres.shape
        n = h.shape[-1]
        if c != 1.0:
            h = np.multiply(h, centres.dtype.type(c), out=bufs.get((key, "h", n), (D, n),
                                                                   centres.dtype))
        out = bufs.get((key, "out", n), (U, n), centres.dtype)
        return rbf_distances(h, centres, out, bufs.get((key, "diff", n), (U, D, n),
                                                       centres.dtype))


class FlattenStage:
    """``Flatten``: (C, H, W, n) memory is already the (C·H·W, n) matrix."""

    def __init__(self, dim: int):
        self.dim = dim

    def weights(self, c_in: float, n_total: int) -> tuple[Any, float]:
        return None, c_in

    def run(self, h: np.ndarray, w: Any, bufs: Buffers, key: Any) -> np.ndarray:
        return h.reshape(self.dim, h.shape[-1])


def _pool_ok(layer: Any) -> bool:
    """A pooling the conv stage fuses: ``Subsampling2D``, or a square ``MaxPool2D`` with
    stride equal to its window and no padding (its output size is checked by the stage)."""
    if type(layer) is Subsampling2D:
        return True
    if type(layer) is not MaxPool2D or layer.channels_last:
        return False
    p = layer.pool_size
    return p[0] == p[1] and tuple(layer.stride) == tuple(p) and not any(layer.pads)


def build_stages(model: Any) -> list[Any]:
    """The stages of a chain model, or :class:`Unsupported`."""
    graph = model.graph
    if graph is None or not graph.chain or model._list_in or model._list_out:
        raise Unsupported("not a chain of layers")
    layers = [st.layer for st in graph.steps]
    shape = tuple(graph.inputs[0].shape)
    if len(shape) != 3 or None in shape:
        raise Unsupported(f"input shape {shape}: not a (C, H, W) image of fixed size")
    stages: list[Any] = []
    i = 0

    def take(kind: Any) -> Any:
        nonlocal i
        if i < len(layers) and kind(layers[i]):
            i += 1
            return layers[i - 1]
        return None

    while i < len(layers):
        if take(lambda lay: type(lay) is Dropout) is not None:
            continue
        start = i
        rescale = take(lambda lay: type(lay) is Rescale)
        pad = take(lambda lay: type(lay) is Pad2D)
        conv = take(lambda lay: type(lay) is Conv2D and not lay.channels_last
                    and lay.groups == 1)
        if conv is not None:
            in_shape = shape
            whole = (pad is None and rescale is None and not any(conv._pads(shape[1:]))
                     and tuple(conv.kernel_size) == tuple(shape[1:]))
            bn = take(lambda lay: type(lay) is BatchNorm2D)
            act = _act(layers[i]) if i < len(layers) else None
            if act is not None:
                i += 1
            if whole and bn is None:
                stages.append(DenseStage(conv, act, int(np.prod(shape))))
                shape = (conv.out_channels, 1, 1)
                continue
            pool = take(_pool_ok)
            post = None
            if pool is not None and i < len(layers) and _act(layers[i]) is not None:
                post = _act(layers[i])
                i += 1
            stage = ConvStage(conv, in_shape, rescale, pad, bn, act, pool, post,
                              first=not stages)
            stages.append(stage)
            shape = stage.out_shape
            continue
        if i != start:
            raise Unsupported("Rescale/Pad2D not followed by a convolution")
        lay = layers[i]
        if type(lay) is Flatten:
            if not stages:
                raise Unsupported("Flatten first")
            stages.append(FlattenStage(int(np.prod(shape))))
            shape = (int(np.prod(shape)),)
            i += 1
        elif type(lay) is Dense and stages and len(shape) == 1:
            i += 1
            act = _act(layers[i]) if i < len(layers) else None
            if act is not None:
                i += 1
            stages.append(DenseStage(lay, act, shape[0]))
            shape = (lay.units,)
        elif type(lay) is RBFOutput and stages and len(shape) == 1:
            stages.append(RBFStage(lay))
            shape = (lay.units,)
            i += 1
        else:
            raise Unsupported(f"layer {type(lay).__name__} at position {i}")
    if not stages or not isinstance(stages[0], ConvStage):
        raise Unsupported("the first layer is not a convolution")
    return stages


# ------------------------------------------------------------------------------- threads
_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()
#: guards the growth of every plan's list of per-thread buffers
_BUFS_LOCK = threading.Lock()


def _forget_threads_in_child() -> None:
    """After ``fork`` (``fit(distribute="local:K")``): the child has none of the parent's
    pool threads, so a pool inherited from the parent would queue work that never runs."""
    global _POOL_LOCK, _BUFS_LOCK
    _POOL.clear()
    _POOL_LOCK, _BUFS_LOCK = threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads_in_child)


def _executor(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``workers`` threads (made on first use, grown on demand)."""
    with _POOL_LOCK:
        if not _POOL or _POOL[0]._max_workers < workers:
            if _POOL:
                _POOL[0].shutdown(wait=False)
            _POOL[:] = [ThreadPoolExecutor(workers, thread_name_prefix="numcnn-predict")]
        return _POOL[0]


class InferencePlan:
    """A chain model's fused stages and the per-thread scratch buffers to run them."""

    def __init__(self, model: Any):
        self.model = model
        self.graph = model.graph
        self.stages = build_stages(model)
        self.out_shape = tuple(model.graph.outputs[0].shape)
        self.dtype = model.dtype
        self._bufs: list[Buffers] = []

    def weights(self, n_total: int) -> list[Any]:
        """Every stage's arrays for this call (live parameters, folds recomputed)."""
        out, c = [], 1.0
        for st in self.stages:
            w, c = st.weights(c, n_total)
            out.append(w)
        if c != 1.0:
            raise Unsupported("a scaled output")
        return out

    def _buffers(self, k: int) -> Buffers:
        with _BUFS_LOCK:
            while len(self._bufs) <= k:
                self._bufs.append(Buffers())
            b = self._bufs[k]
        if len(b.arrays) > 64 * len(self.stages):  # many chunk sizes seen: start afresh
            b.arrays.clear()
        return b

    def run_chunk(self, x: np.ndarray, ws: list[Any], bufs: Buffers) -> np.ndarray:
        """One chunk (n, C, H, W) through every stage: the (D, n) or (C, H, W, n) output."""
        h = x
        for k, (st, w) in enumerate(zip(self.stages, ws)):
            h = st.run(h, w, bufs, k)
        return h

    def _run_chunks(self, x: np.ndarray, out: np.ndarray, bounds: list[tuple[int, int]],
                    ws: list[Any], worker: int) -> None:
        bufs = self._buffers(worker)
        for a, b in bounds:
            h = self.run_chunk(x[a:b], ws, bufs)
            np.copyto(out[a:b], h.T if h.ndim == 2 else h.transpose(3, 0, 1, 2))

    def predict(self, x: np.ndarray, batch_size: int, threads: int | None) -> np.ndarray:
        """Outputs (N, …) for ``x`` (N, C, H, W) of the model's dtype, by chunks of
        ``min(CHUNK, batch_size)`` images; with ``threads`` ≥ 2 the chunks are shared out
        in contiguous runs between that many threads (the caller's and a pool's). Every
        chunk is the same whatever the thread count, so the results are too."""
        N = len(x)
        out = np.empty((N,) + self.out_shape, self.dtype)
        if N == 0:
            return out
        ws = self.weights(N)
        chunk = max(1, min(CHUNK, batch_size))
        chunks = [(a, min(a + chunk, N)) for a in range(0, N, chunk)]
        T = min(int(threads or 1), len(chunks), max(1, N // MIN_PART))
        if T <= 1:
            self._run_chunks(x, out, chunks, ws, 0)
            return out
        per = -(-len(chunks) // T)
        parts = [chunks[k * per : (k + 1) * per] for k in range(T)]
        pool = _executor(T - 1)
        futures = [pool.submit(self._run_chunks, x, out, part, ws, k)
                   for k, part in enumerate(parts[1:], 1) if part]
        try:
            self._run_chunks(x, out, parts[0], ws, 0)
        finally:
            for f in futures:
                f.result()
        return out


def inference_plan(model: Any) -> InferencePlan | None:
    """The model's inference plan (made once per graph and cached on the model), or None
    when the model is not a chain the plan handles or its fusions are switched off."""
    if not getattr(model, "fuse", False) or model.graph is None:
        return None
    cached = model.__dict__.get("_inference_plan")
    if cached is not None and cached[0] is model.graph:
        return cached[1]
    try:
        plan: InferencePlan | None = InferencePlan(model)
    except Unsupported:
        plan = None
    model.__dict__["_inference_plan"] = (model.graph, plan)
    return plan
