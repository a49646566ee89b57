"""Pictures of digits made MNIST patterns (numcnn.preprocessing.digits, numcnn.io.images):
against a naive reference written with loops and Pillow's own resampling, against the
published MNIST test digits (already made so: re-making them must change little), and on
hostile files, each refused with its own one-line error."""

from __future__ import annotations

import io
import math
import os
import statistics
import struct
import zlib

import numpy as np
import pytest

from numcnn.io.images import MAX_PIXELS, digit_input, load_grey
from numcnn.preprocessing.digits import (
    center_of_mass,
    grey_levels,
    ink_box,
    mnist_digit,
    resample,
)

Image = pytest.importorskip("PIL.Image")

MNIST_DIR = os.environ.get("NUMCNN_DATA_DIR")


# ------------------------------------------------------------------ a naive reference
def pillow_resize(x, shape):
    """Pillow's BILINEAR (anti-aliased triangle filter) resize of a float image."""
    img = Image.fromarray(np.asarray(x, np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.BILINEAR), np.float64)


def reference_digit(g, size=28, box=20, threshold=0.1):
    """MNIST's recipe written out pixel by pixel (lists and loops), resampled by Pillow."""
    H, W = g.shape
    ring = [(i, j) for i in range(H) for j in range(W) if i in (0, H - 1) or j in (0, W - 1)]
    flip = statistics.median(float(g[i, j]) for i, j in ring) > 0.5
    x = [[1.0 - float(g[i, j]) if flip else float(g[i, j]) for j in range(W)]
         for i in range(H)]
    bg = statistics.median(x[i][j] for i, j in ring)
    top_level = max(max(row) for row in x)
    for i in range(H):
        for j in range(W):
            v = min(max((x[i][j] - bg) / (top_level - bg), 0.0), 1.0)
            x[i][j] = v if v >= threshold else 0.0
    rows = [i for i in range(H) if any(x[i][j] > 0 for j in range(W))]
    cols = [j for j in range(W) if any(x[i][j] > 0 for i in range(H))]
    crop = np.array([[x[i][j] for j in range(cols[0], cols[-1] + 1)]
                     for i in range(rows[0], rows[-1] + 1)])
    h, w = crop.shape
    fh = max(1, math.floor(h * box / max(h, w) + 0.5))
    fw = max(1, math.floor(w * box / max(h, w) + 0.5))
    fit = np.clip(pillow_resize(crop, (fh, fw)), 0, 1)
    total = sy = sx = 0.0
    for i in range(fh):
        for j in range(fw):
            total += fit[i, j]
            sy += i * fit[i, j]
            sx += j * fit[i, j]
    oy = math.floor(size / 2 - sy / total + 0.5)
    ox = math.floor(size / 2 - sx / total + 0.5)
    oy, ox = min(max(oy, 0), size - fh), min(max(ox, 0), size - fw)
    out = np.zeros((size, size))
    for i in range(fh):
        for j in range(fw):
            out[oy + i, ox + j] = fit[i, j]
    return out


def random_blob(rng):
    """A random picture: a few ellipses and strokes of ink on light or dark paper."""
    H, W = rng.integers(10, 90, 2)
    yy, xx = np.mgrid[:H, :W]
    ink = np.zeros((H, W))
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0.15, 0.85) * H, rng.uniform(0.15, 0.85) * W
        ry, rx = rng.uniform(1.0, 0.4 * H), rng.uniform(1.0, 0.4 * W)
        ink = np.maximum(ink, np.clip(1.5 - ((yy - cy) / ry) ** 2 - ((xx - cx) / rx) ** 2,
                                      0, 1))
    paper, pen = (rng.uniform(0.6, 1.0), rng.uniform(0.0, 0.3)) if rng.random() < 0.5 \
        else (rng.uniform(0.0, 0.3), rng.uniform(0.7, 1.0))
    g = paper + (pen - paper) * ink + rng.normal(0, 0.01, (H, W))
    return np.clip(g, 0, 1)


@pytest.mark.parametrize("seed", range(12))
def test_mnist_digit_equals_the_loop_reference_on_random_blobs(seed):
    rng = np.random.default_rng(seed)
    for _ in range(4):
        g = random_blob(rng)
        np.testing.assert_allclose(mnist_digit(g), reference_digit(g), atol=2e-6)


def test_steps_against_loops_and_pillow():
    rng = np.random.default_rng(7)
    for h_in, w_in, h_out, w_out in [(57, 13, 20, 5), (7, 3, 20, 9), (40, 40, 20, 20),
                                     (1, 9, 1, 20), (300, 200, 20, 13)]:
        x = rng.random((h_in, w_in))
        np.testing.assert_allclose(resample(x, (h_out, w_out)),
                                   pillow_resize(x, (h_out, w_out)), atol=2e-6)
    x = np.zeros((30, 40))
    x[rng.integers(5, 25, 20), rng.integers(3, 37, 20)] = rng.random(20) + 0.1
    total = sum(x[i, j] for i in range(30) for j in range(40))
    cy = sum(i * x[i, j] for i in range(30) for j in range(40)) / total
    cx = sum(j * x[i, j] for i in range(30) for j in range(40)) / total
    np.testing.assert_allclose(center_of_mass(x), (cy, cx), rtol=1e-12)
    rows = [i for i in range(30) if any(x[i, j] > 0 for j in range(40))]
    cols = [j for j in range(40) if any(x[i, j] > 0 for i in range(30))]
    assert ink_box(x) == (rows[0], rows[-1], cols[0], cols[-1])


def test_grey_levels_match_pillow_for_colour_and_transparency():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    pil_l = np.asarray(Image.fromarray(rgb).convert("L"), np.float64) / 255
    np.testing.assert_allclose(grey_levels(rgb), pil_l, atol=0.5 / 255 + 1e-9)
    np.testing.assert_allclose(grey_levels(rgb.transpose(2, 0, 1)), grey_levels(rgb))
    rgba = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)
    white = Image.new("RGBA", (11, 9), (255, 255, 255, 255))
    on_white = Image.alpha_composite(white, Image.fromarray(rgba)).convert("L")
    np.testing.assert_allclose(grey_levels(rgba), np.asarray(on_white, np.float64) / 255,
                               atol=1.5 / 255)
    np.testing.assert_array_equal(grey_levels(rgb.astype(np.uint16) * 257), grey_levels(rgb))


def test_digit_input_scales_as_the_model_was_trained():
    g = random_blob(np.random.default_rng(3))
    x = mnist_digit(g)
    u8 = np.round(g * 255).astype(np.uint8)
    np.testing.assert_allclose(digit_input(g)[0], x.astype(np.float32), atol=1e-6)
    np.testing.assert_allclose(digit_input(g, pixel_scale=1.0)[0], 255 * x, rtol=1e-6,
                               atol=1e-4)
    assert digit_input(u8).dtype == np.float32 and digit_input(u8).shape == (1, 28, 28)
    np.testing.assert_allclose(digit_input(g, invert=True), digit_input(1 - g, invert=False))


# ------------------------------------------------------------------ files
def png_bytes(a, **save):
    b = io.BytesIO()
    Image.fromarray(a).save(b, "PNG", **save)
    return b.getvalue()


def a_digit():
    g = np.full((50, 40), 255, np.uint8)
    g[8:42, 17:24] = 30  # a dark "1" on white
    g[8:14, 11:24] = 30
    return g


def test_file_formats_give_the_array_pattern(tmp_path):
    g = a_digit()
    expected = digit_input(g)
    (tmp_path / "d.png").write_bytes(png_bytes(g))
    np.testing.assert_array_equal(digit_input(tmp_path / "d.png"), expected)
    np.testing.assert_array_equal(digit_input(str(tmp_path / "d.png")), expected)
    # 16-bit grey: divided by 65535 (Pillow's convert("L") would clip it at 255)
    wide = png_bytes(g.astype(np.uint16) * 257)
    assert Image.open(io.BytesIO(wide)).mode.startswith("I")
    np.testing.assert_allclose(digit_input(wide), expected, atol=1e-6)
    # palette with a transparent background entry, and grey + alpha: on white
    ink = (g < 128).astype(np.uint8)
    pal = Image.fromarray(ink, mode="P")
    pal.putpalette([0, 0, 0, 30, 30, 30] + [0] * 762)
    b = io.BytesIO()
    pal.save(b, "PNG", transparency=0)
    np.testing.assert_allclose(digit_input(b.getvalue()), expected, atol=1e-6)
    la = np.stack([np.full_like(g, 30), np.where(g < 128, 255, 0).astype(np.uint8)], -1)
    np.testing.assert_allclose(digit_input(png_bytes(la)), expected, atol=1e-6)
    # RGBA, fully transparent background of any colour: composited on white
    rgba = np.zeros(g.shape + (4,), np.uint8)
    rgba[..., :3] = np.where(g[..., None] < 128, 30, 0)
    rgba[..., 3] = np.where(g < 128, 255, 0)
    np.testing.assert_allclose(digit_input(png_bytes(rgba)), expected, atol=1e-6)


def test_a_huge_picture_is_shrunk_before_the_pipeline():
    g = np.kron(a_digit(), np.ones((50, 60), np.uint8))  # 2500 × 2400
    grey = load_grey(png_bytes(g))
    assert max(grey.shape) <= 2048 and grey.shape == (1250, 1200)
    np.testing.assert_allclose(grey, np.kron(a_digit() / 255, np.ones((25, 30))))


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I",
                                                                     zlib.crc32(kind + data))


def png_declaring(w, h):
    """A valid PNG header declaring ``w × h`` grey pixels, with a few bytes of data."""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def hostile_files():
    g = a_digit()
    whole = png_bytes(g)
    jpeg = io.BytesIO()
    Image.fromarray(g).save(jpeg, "JPEG")
    frames = [Image.fromarray(g), Image.fromarray(255 - g)]
    gif, apng = io.BytesIO(), io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    frames[0].save(apng, "PNG", save_all=True, append_images=frames[1:])
    return [
        ("text", b"hello, I am not a picture\n", "not a readable image (not a format"),
        ("empty file", b"", "empty (0 bytes); expected an image"),
        ("truncated PNG", whole[: len(whole) // 2], "not a readable image"),
        ("truncated JPEG", jpeg.getvalue()[:300], "not a readable image"),
        ("bomb 100000²", png_declaring(100_000, 100_000),
         "declares 100000×100000 pixels, more than the"),
        ("bomb 9000²", png_declaring(9000, 9000), "declares 9000×9000 pixels, more than"),
        ("zero width", png_declaring(0, 10), "an empty image (0×10 pixels)"),
        ("blank", png_bytes(np.full((30, 30), 250, np.uint8)), "no ink: the image is blank"),
        ("animated GIF", gif.getvalue(), "an animated or multi-frame GIF image"),
        ("animated PNG", apng.getvalue(), "an animated or multi-frame PNG image"),
    ]


@pytest.mark.parametrize("what, data, message", hostile_files(), ids=lambda v: str(v)[:16])
def test_hostile_files_are_refused_with_their_error(tmp_path, what, data, message):
    path = tmp_path / "picture.png"
    path.write_bytes(data)
    for source, name in ((path, str(path)), (data, "image data")):
        with pytest.raises(ValueError) as e:
            digit_input(source)
        text = str(e.value)
        assert message in text and "\n" not in text, (what, text)
        if "no ink" not in message:
            assert text.startswith(f"{name}: "), text


def test_bad_arrays_are_refused():
    for a, message in [
        (np.zeros((0, 5), np.uint8), "the image is empty"),
        (np.zeros((6, 4, 5)), "C = 1, 2, 3 or 4 channels"),
        (np.full((5, 5), 1.5), "float images must hold levels in [0, 1]"),
        (np.full((5, 5), np.nan), "NaN or infinite"),
        (np.full((5, 5), 300), "integer images must hold levels 0–255"),
        (np.zeros((28, 28)), "no ink: the image is blank"),
        (np.zeros((2, 2, 2, 2)), "expected an image (H, W)"),
        (np.array([["a"]]), "expected an image array of numbers"),
    ]:
        with pytest.raises((ValueError, TypeError)) as e:
            digit_input(a)
        assert message in str(e.value), str(e.value)
    assert MAX_PIXELS == 64 * 1024 * 1024


# ------------------------------------------------------------------ the published digits
@pytest.mark.mnist
@pytest.mark.skipif(not (MNIST_DIR and os.path.isdir(MNIST_DIR)),
                    reason="set NUMCNN_DATA_DIR to the folder with the MNIST files")
def test_remaking_the_mnist_test_digits_changes_them_little():
    from numcnn.datasets import load

    _, (x, _) = load("mnist", data_dir=MNIST_DIR)
    x = x[:500]
    remade = np.stack([digit_input(d, pixel_scale=1.0)[0] for d in x])
    diff = np.abs(remade - x).mean(axis=(1, 2))  # grey levels, 0–255
    assert np.median(diff) < 0.5 and np.percentile(diff, 95) < 2.0, np.percentile(diff, 95)
    # centres of mass land where MNIST's are: (14, 14) to the nearest pixel
    coms = np.array([center_of_mass(r.astype(np.float64)) for r in remade])
    assert np.abs(coms - 14).max() <= 0.5 + 1e-9


# ------------------------------------------------------------------ models' inputs
def test_model_input_takes_an_array_as_its_png_for_every_kind(tmp_path):
    import numcnn
    from numcnn.io.inputs import model_input
    from numcnn.layers import Dense, Flatten

    rng = np.random.default_rng(5)
    photo = rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "p.png")
    rgb = numcnn.Sequential([Flatten(), Dense(3)], input_shape=(3, 32, 32), seed=0)
    grey = numcnn.Sequential([Flatten(), Dense(3)], input_shape=(1, 28, 28), seed=0)
    for model, spec in [(rgb, {"kind": "resize", "pixel_scale": 1 / 255}),
                        (rgb, {"kind": "imagenet"}),
                        (grey, {"kind": "resize", "pixel_scale": 1 / 255}),
                        (grey, {"kind": "mnist_digit"})]:
        from_file = model_input(model, tmp_path / "p.png", spec)
        assert from_file.shape == (1,) + model.input_shape and from_file.dtype == np.float32
        np.testing.assert_array_equal(model_input(model, photo, spec), from_file)
        np.testing.assert_allclose(model_input(model, photo / 255.0, spec), from_file,
                                   atol=1e-6)
    # "resize": torchvision's Resize + CenterCrop written out with Pillow
    img = Image.fromarray(photo).resize((41, 32), Image.BILINEAR).crop((4, 0, 36, 32))
    expected = np.asarray(img, np.float64).transpose(2, 0, 1) / 255
    np.testing.assert_allclose(model_input(rgb, photo, {"kind": "resize"})[0], expected,
                               atol=1e-6)


def test_outputs_read_as_logits_probabilities_or_penalties():
    import numcnn
    from numcnn.io.inputs import classify
    from numcnn.layers import Dense, Flatten, Softmax

    torch = pytest.importorskip("torch")
    picture = np.zeros((28, 28), np.uint8)
    picture[5:23, 12:16] = 255
    for last, reading in [([], "logits"), ([Softmax()], "probabilities")]:
        model = numcnn.Sequential([Flatten(), Dense(10), *last], input_shape=(1, 28, 28),
                                  seed=2)
        result = classify(model, picture, top=10)
        assert result["output"] == reading
        out = torch.tensor(model.predict(digit_input(picture)[None])[0], dtype=torch.float64)
        probs = (torch.softmax(out, 0) if reading == "logits" else out).numpy()
        assert [r["class"] for r in result["top"]] == list(np.argsort(-probs, kind="stable"))
        np.testing.assert_allclose([r["probability"] for r in result["top"]],
                                   np.sort(probs)[::-1], rtol=1e-6)
