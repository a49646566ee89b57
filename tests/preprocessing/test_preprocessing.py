"""Preprocessing steps: statistics written out with NumPy, PCA/ZCA against a direct SVD,
bit planes against integer arithmetic, fit-on-train/apply-to-test, and the state round trip.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from numcnn import preprocessing as pp
from numcnn.preprocessing import (
    PCA,
    PREPROCESSORS,
    BitPlanes,
    MeanSubtraction,
    MinMaxScaler,
    Pad,
    PCAWhitening,
    Preprocessor,
    Standardize,
    ZCAWhitening,
)


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (40, 3, 5, 4)).astype(np.uint8)
    test = rng.integers(0, 256, (7, 3, 5, 4)).astype(np.uint8)
    return train, test


def _correlated(rng, n, d):
    A = rng.standard_normal((d, d)) * np.linspace(3, 0.2, d)
    return rng.standard_normal((n, d)) @ A + rng.standard_normal(d)


# ------------------------------------------------------------------ scaling steps


@pytest.mark.parametrize("per,axes", [("pixel", (0,)), ("channel", (0, 2, 3)),
                                      ("global", (0, 1, 2, 3))])
def test_mean_subtraction_fit_on_train_applied_to_test(images, per, axes):
    train, test = images
    step = MeanSubtraction(per).fit(train)
    mu = train.astype(np.float64).mean(axis=axes, keepdims=True)
    yt = step.transform(test)
    assert yt.dtype == np.float32 and yt.shape == test.shape
    np.testing.assert_allclose(yt, test - mu, rtol=1e-6, atol=1e-4)  # train's μ, not test's
    np.testing.assert_allclose(step.transform(train).mean(axis=axes), 0, atol=1e-4)
    back = step.inverse_transform(test.astype(np.float64) - mu)
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, test, atol=1e-9)


@pytest.mark.parametrize("per", ["pixel", "channel", "global"])
def test_standardize(images, per):
    train, test = images
    x = train.astype(np.float64)
    x[:, 0, 0, 0] = 7.0  # a constant feature: centred, not divided by 0
    step = Standardize(per).fit(x)
    y = step.transform(x)
    assert y.dtype == np.float64
    axes = {"pixel": (0,), "channel": (0, 2, 3), "global": None}[per]
    np.testing.assert_allclose(y.mean(axis=axes), 0, atol=1e-10)
    if per == "pixel":
        np.testing.assert_array_equal(y[:, 0, 0, 0], 0.0)
        sd = y.std(axis=0)
        np.testing.assert_allclose(sd[1:], 1.0, rtol=1e-10)
    else:
        np.testing.assert_allclose(y.std(axis=axes), 1.0, rtol=1e-10)
    t = test.astype(np.float64)
    expected = (t - x.mean(axis=axes or tuple(range(4)), keepdims=True)) / np.where(
        x.std(axis=axes or tuple(range(4)), keepdims=True) > 0,
        x.std(axis=axes or tuple(range(4)), keepdims=True), 1)
    np.testing.assert_allclose(step.transform(t), expected, rtol=1e-10)
    np.testing.assert_allclose(step.inverse_transform(step.transform(t)), t, atol=1e-10)


def test_min_max_scaler_and_lenet_range(images):
    train, test = images
    lo, hi = -0.1, 1.175
    step = MinMaxScaler((lo, hi)).fit(train)
    y = step.transform(train)
    assert y.dtype == np.float32
    assert y.min() == pytest.approx(lo) and y.max() == pytest.approx(hi)
    mn, mx = float(train.min()), float(train.max())
    np.testing.assert_allclose(step.transform(test), lo + (test - mn) * (hi - lo) / (mx - mn),
                               rtol=1e-6, atol=1e-6)
    # per pixel, with a test value outside the training range
    x = np.array([[0.0, 5.0], [2.0, 5.0]])
    s = MinMaxScaler(per="pixel").fit(x)
    np.testing.assert_allclose(s.transform(np.array([[4.0, 5.0]])), [[2.0, 0.0]])
    np.testing.assert_allclose(s.inverse_transform(s.transform(x)), x)


# ------------------------------------------------------------ PCA / whitening


def _svd_reference(X):
    """Direct SVD of the centred data: eigenvectors Vt (rows), eigenvalues S²/(N−1)."""
    N = X.shape[0]
    Xc = X - X.mean(axis=0)
    _, S, Vt = np.linalg.svd(Xc, full_matrices=True)
    lam = np.zeros(Vt.shape[0])
    lam[: S.size] = S**2 / (N - 1)
    return Xc, lam, Vt


def _align_signs(A, B):
    """Flip columns of A to match the signs of B (eigenvectors are defined up to sign)."""
    s = np.sign((A * B).sum(axis=0))
    s[s == 0] = 1
    return A * s


@pytest.mark.parametrize("k", [None, 3])
def test_pca_matches_direct_svd(k):
    rng = np.random.default_rng(1)
    X = _correlated(rng, 60, 6)
    Xtest = _correlated(rng, 9, 6)
    step = PCA(k).fit(X)
    Xc, lam, Vt = _svd_reference(X)
    kk = 6 if k is None else k
    Z = step.transform(X)
    assert Z.shape == (60, kk) and Z.dtype == np.float64
    ref = Xc @ Vt[:kk].T
    np.testing.assert_allclose(_align_signs(Z, ref), ref, atol=1e-10)
    np.testing.assert_allclose(step.explained_variance_, lam[:kk], rtol=1e-10)
    np.testing.assert_allclose(step.explained_variance_ratio_, lam[:kk] / lam.sum(),
                               rtol=1e-10)
    # test data: projected with the training mean and axes
    Zt = step.transform(Xtest)
    reft = (Xtest - X.mean(axis=0)) @ Vt[:kk].T
    np.testing.assert_allclose(_align_signs(Zt, reft), reft, atol=1e-10)
    # inverse: exact with all components, the projection onto the top-k subspace otherwise
    proj = (Xtest - X.mean(axis=0)) @ Vt[:kk].T @ Vt[:kk] + X.mean(axis=0)
    np.testing.assert_allclose(step.inverse_transform(Zt), proj, atol=1e-10)
    if k is None:
        np.testing.assert_allclose(step.inverse_transform(Zt), Xtest, atol=1e-10)


def test_pca_on_image_shaped_float32_data():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 1, 3, 3)).astype(np.float32)
    step = PCA(4).fit(X)
    Z = step.transform(X)
    assert Z.shape == (30, 4) and Z.dtype == np.float32
    back = step.inverse_transform(Z)
    assert back.shape == (30, 1, 3, 3) and back.dtype == np.float32


@pytest.mark.parametrize("k", [None, 4])
def test_pca_whitening_identity_covariance_and_svd(k):
    rng = np.random.default_rng(3)
    X = _correlated(rng, 200, 5)
    eps = 1e-9
    step = PCAWhitening(k, eps=eps).fit(X)
    Z = step.transform(X)
    kk = 5 if k is None else k
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(kk), atol=1e-6)
    Xc, lam, Vt = _svd_reference(X)
    ref = Xc @ Vt[:kk].T / np.sqrt(lam[:kk] + eps)
    np.testing.assert_allclose(_align_signs(Z, ref), ref, atol=1e-8)
    if k is None:
        np.testing.assert_allclose(step.inverse_transform(Z), X, atol=1e-8)


@pytest.mark.parametrize("n,d", [(300, 6), (5, 8)])  # N < D: rank-deficient covariance
def test_zca_matches_svd_and_whitens(n, d):
    rng = np.random.default_rng(4)
    X = _correlated(rng, n, d).reshape(n, 2, d // 2)
    eps = 1e-9 if n > d else 1e-3
    step = ZCAWhitening(eps).fit(X)
    Y = step.transform(X)
    assert Y.shape == X.shape
    Xc, lam, Vt = _svd_reference(X.reshape(n, d))
    Wz = Vt.T @ np.diag(1 / np.sqrt(lam + eps)) @ Vt  # sign-free: V diag Vᵀ
    np.testing.assert_allclose(Y.reshape(n, d), Xc @ Wz, atol=1e-8)
    cov = np.cov(Y.reshape(n, d), rowvar=False)
    np.testing.assert_allclose(cov, Vt.T @ np.diag(lam / (lam + eps)) @ Vt, atol=1e-8)
    if n > d:
        np.testing.assert_allclose(cov, np.eye(d), atol=1e-6)  # eps/λ_min ≪ 1 here
    np.testing.assert_allclose(step.inverse_transform(Y), X, atol=1e-8)


# ----------------------------------------------------------------------- bit planes


@pytest.mark.parametrize("bitorder", ["big", "little"])
@pytest.mark.parametrize("shape", [(3, 6, 4), (2, 3, 4, 6)])
def test_bit_planes_decompose_and_reassemble_exactly(shape, bitorder):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, shape).astype(np.uint8)
    x.flat[0], x.flat[1] = 0, 255
    step = BitPlanes(bitorder)
    P = step.fit_transform(x)
    x4 = x if x.ndim == 4 else x[:, None]
    N, C, H, W = x4.shape
    assert P.shape == (N, 8 * C, H, W) and P.dtype == np.float32
    for c in range(C):
        for kch in range(8):
            bit = 7 - kch if bitorder == "big" else kch
            np.testing.assert_array_equal(P[:, 8 * c + kch], (x4[:, c].astype(int) // 2**bit) % 2)
    back = step.inverse_transform(P)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, x4)
    np.testing.assert_array_equal(BitPlanes(bitorder, dtype="uint8").transform(x),
                                  P.astype(np.uint8))


def test_bit_plane_blocks_split_and_merge():
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, (2, 8, 12)).astype(np.uint8)
    P = BitPlanes().transform(x)
    B = BitPlanes.split_blocks(P, (4, 3))
    assert B.shape == (2, 8, 2, 4, 4, 3)
    np.testing.assert_array_equal(B[1, 5, 1, 2], P[1, 5, 4:8, 6:9])
    np.testing.assert_array_equal(BitPlanes.merge_blocks(B), P)
    np.testing.assert_array_equal(BitPlanes().inverse_transform(pp.from_blocks(
        pp.to_blocks(P, 2))), x[:, None])
    with pytest.raises(ValueError, match="pad them first"):
        pp.to_blocks(P, (3, 5))


def test_bit_planes_reject_bad_input():
    with pytest.raises(TypeError, match="integer"):
        BitPlanes().transform(np.zeros((1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="0, 255"):
        BitPlanes().transform(np.full((1, 2, 2), 300, np.int32))
    with pytest.raises(ValueError, match="only 0 and 1"):
        BitPlanes().inverse_transform(np.full((1, 8, 2, 2), 2.0))


# ---------------------------------------------------------------------------- padding


def test_pad_mnist_to_32_and_crop_back():
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, (3, 28, 28)).astype(np.float32)
    step = Pad(2, value=-0.1)
    y = step.transform(x)
    assert y.shape == (3, 32, 32) and y.dtype == np.float32
    np.testing.assert_array_equal(y[:, 2:30, 2:30], x)
    mask = np.ones((32, 32), bool)
    mask[2:30, 2:30] = False
    np.testing.assert_array_equal(y[:, mask], np.float32(-0.1))
    np.testing.assert_array_equal(step.inverse_transform(y), x)
    x4 = x[:, None]
    assert Pad(2).transform(x4).shape == (3, 1, 32, 32)
    u = (x * 255).astype(np.uint8)
    yu = Pad(2).transform(u)
    assert yu.dtype == np.uint8 and yu[:, 0].max() == 0
    with pytest.raises(ValueError, match="cannot be stored"):
        Pad(2, value=-0.1).transform(u)


def test_pad_to_size_and_asymmetric():
    x = np.ones((2, 1, 5, 4))
    step = Pad(size=(8, 8)).fit(x)
    y = step.transform(x)
    assert y.shape == (2, 1, 8, 8)
    assert step.pads_ == (1, 2, 2, 2)
    np.testing.assert_array_equal(y[0, 0, 1:6, 2:6], 1.0)
    assert y.sum() == x.sum()
    np.testing.assert_array_equal(step.inverse_transform(y), x)
    y2 = Pad((1, 0, 2, 3), value=5).transform(x)
    assert y2.shape == (2, 1, 6, 9) and y2[0, 0, 0, 0] == 5 and y2[0, 0, 1, 2] == 1


# ---------------------------------------------------------------- state round trip


def _data_for(name, rng):
    if name in ("bit_planes", "pad"):
        return (rng.integers(0, 256, (12, 1, 6, 6)).astype(np.uint8),
                rng.integers(0, 256, (4, 1, 6, 6)).astype(np.uint8))
    return (rng.standard_normal((40, 2, 3, 3)) * 2 + 1,
            rng.standard_normal((5, 2, 3, 3)) * 2 + 1)


# every registered name -> constructor kwargs used by the state round trip
CASES = {
    "mean_subtraction": {"per": "channel"},
    "standardize": {"per": "pixel"},
    "standardization": {},
    "min_max": {"feature_range": [-1, 1]},
    "min_max_scaler": {"per": "channel"},
    "pca": {"n_components": 5},
    "pca_whitening": {"n_components": 4, "eps": 1e-3},
    "zca_whitening": {"eps": 0.1},
    "bit_planes": {"bitorder": "little"},
    "pad": {"size": [9, 10], "value": 3},
}


def test_every_registered_preprocessor_has_a_case():
    missing = [n for n in PREPROCESSORS.names() if n not in CASES]
    assert not missing, f"preprocessors without a state round-trip case: {missing}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_round_trip_and_save_load(name, tmp_path):
    rng = np.random.default_rng(8)
    train, test = _data_for(name, rng)
    step = pp.get(name, **CASES[name])
    ref = step.fit(train).transform(test)
    state = step.get_state()
    meta = {k: v for k, v in state.items() if k != "arrays"}
    meta = json.loads(json.dumps(meta))  # the parameters are JSON-able
    assert all(isinstance(a, np.ndarray) for a in state["arrays"].values())
    clone = Preprocessor.from_state({**meta, "arrays": state["arrays"]})
    assert type(clone) is type(step)
    np.testing.assert_array_equal(clone.transform(test), ref)
    path = tmp_path / f"{name}.npz"
    pp.save_preprocessor(step, path)
    loaded = pp.load_preprocessor(path)
    np.testing.assert_array_equal(loaded.transform(test), ref)
    # fitting on other data afterwards does not change the restored clone
    step.fit(test if name not in ("pca", "pca_whitening") else train[::-1] * 3)
    np.testing.assert_array_equal(clone.transform(test), ref)


def test_errors_for_unfitted_and_mismatched_data():
    X = np.zeros((4, 3))
    with pytest.raises(RuntimeError, match="fitted"):
        MeanSubtraction().transform(X)
    step = MeanSubtraction().fit(X)
    with pytest.raises(ValueError, match="fitted on samples of shape"):
        step.transform(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="per="):
        MeanSubtraction("row")
    with pytest.raises(ValueError, match="3 dimensions"):
        MeanSubtraction("channel").fit(X)
    with pytest.raises(ValueError, match="NaN"):
        Standardize().fit(np.full((2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="exceeds"):
        PCA(4).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        PCA(0)
    with pytest.raises(ValueError, match="lo < hi"):
        MinMaxScaler((1, 1))
    with pytest.raises(ValueError, match="not 'PCA'"):
        PCA().set_state(MeanSubtraction().fit(X).get_state())
    with pytest.raises(ValueError, match="eps"):
        ZCAWhitening(0)


# ------------------------------------------------------------------------ real MNIST


@pytest.fixture(scope="module")
def mnist_slice():
    import os
    from pathlib import Path

    d = os.environ.get("NUMCNN_DATA_DIR")
    if not d or not (Path(d) / "train-images-idx3-ubyte.gz").is_file() and not (
            Path(d) / "train-images-idx3-ubyte").is_file():
        pytest.skip("MNIST not found: set NUMCNN_DATA_DIR to the directory of the IDX files")
    from numcnn.datasets.mnist import load_data

    (x_train, _), (x_test, _) = load_data(download=False)
    return x_train[:2000], x_test[:1000]


@pytest.mark.mnist
def test_mnist_lenet_input_pipeline_and_bit_planes(mnist_slice):
    x_train, x_test = mnist_slice
    pad, scale = Pad(2), MinMaxScaler((-0.1, 1.175))
    tr = scale.fit_transform(pad.transform(x_train))
    te = scale.transform(pad.transform(x_test))  # training min/max, unchanged
    assert tr.shape == (2000, 32, 32) and te.shape == (1000, 32, 32) and te.dtype == np.float32
    np.testing.assert_allclose([te.min(), te.max()], [-0.1, 1.175], rtol=1e-6)
    np.testing.assert_array_equal(te[:, :2], np.float32(-0.1))  # the padded border
    np.testing.assert_allclose(te[:, 2:30, 2:30], -0.1 + x_test * (1.275 / 255), atol=1e-6)
    bp = BitPlanes()
    np.testing.assert_array_equal(bp.inverse_transform(bp.transform(x_test))[:, 0], x_test)


@pytest.mark.mnist
def test_mnist_pca_whitening(mnist_slice):
    x_train, x_test = mnist_slice
    w = PCAWhitening(40, eps=1e-6).fit(x_train)
    z = w.transform(x_train)
    np.testing.assert_allclose(np.cov(z.astype(np.float64), rowvar=False), np.eye(40),
                               atol=1e-5)
    # the first 40 principal components hold most of MNIST's pixel variance (≈ 79 %)
    assert 0.7 < w.explained_variance_ratio_.sum() < 0.9
    zt = w.transform(x_test)  # unseen digits: roughly, not exactly, white
    assert zt.shape == (1000, 40) and zt.dtype == np.float32
    assert 0.5 < zt.var(axis=0).min() and zt.var(axis=0).max() < 1.5
