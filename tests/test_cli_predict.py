"""``numcnn predict``: a photo through a zoo network with torchvision-named weights, top-5
ImageNet classes — against a PyTorch twin given the same weights and the same photo,
preprocessed here with Pillow and torch (torchvision's Resize(256), CenterCrop(224),
Normalize); through a saved numcnn model; and digit models (``numcnn predict model.npz
digit.png``): the JSON report against the printed one and torch's softmax, LeNet-5 (1998)'s
RBF penalties, the two command forms, and one-line errors. MNIST digits as pictures:
tests/test_cli_predict_digits.py; the preprocessing itself: tests/io/test_digit_images.py."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import numcnn
from numcnn import cli
from numcnn.models import imagenet_classes, torchvision_state_dict

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")


def photo(path, size=(300, 211)):
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[: size[1], : size[0]]
    img = np.stack([xx * 255 // size[0], yy * 255 // size[1], (xx + yy) % 256], -1)
    img = np.clip(img + rng.integers(-30, 30, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


def reference_input(path):
    """torchvision's ImageNet evaluation transform, written out with Pillow and torch."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    img = img.resize((256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256),
                     Image.BILINEAR)
    w, h = img.size
    top, left = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))
    img = img.crop((left, top, left + 224, top + 224))
    t = torch.tensor(np.asarray(img), dtype=torch.float64).permute(2, 0, 1) / 255
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64)[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64)[:, None, None]
    return ((t - mean) / std)[None]


def parse(out):
    rows = re.findall(r"^\s+\d+\. (.+?) \((\d+)\)\s+([\d.]+) %$", out, re.M)
    return [(name, int(k), float(p)) for name, k, p in rows]


def test_predict_resnet18_top5_matches_torch(tmp_path, capsys):
    model = numcnn.models.resnet18(seed=0)
    sd = torchvision_state_dict(model)
    np.savez(tmp_path / "resnet18.npz", **sd)
    image = photo(tmp_path / "photo.png")
    code = cli.main(["predict", "--model", "resnet18", "--weights",
                     str(tmp_path / "resnet18.npz"), str(image)])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = parse(out)
    assert len(rows) == 5
    from zoo_twins import BasicBlock, ResNet  # benchmarks/, on the path from conftest.py

    twin = ResNet(BasicBlock, (2, 2, 2, 2), 3, 1000).double().eval()
    twin.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in sd.items()})
    with torch.no_grad():
        probs = torch.softmax(twin(reference_input(image)), 1)[0].numpy()
    top = np.argsort(-probs)[:5]
    names = imagenet_classes()
    assert [k for _, k, _ in rows] == list(top)
    assert [n for n, _, _ in rows] == [names[k] for k in top]
    np.testing.assert_allclose([p for _, _, p in rows], 100 * probs[top], atol=0.006)


def test_predict_with_a_saved_model_and_bad_input(tmp_path, capsys):
    from numcnn.layers import Dense, Flatten

    model = numcnn.Sequential([Flatten(), Dense(1000)], input_shape=(3, 16, 16), seed=0)
    numcnn.save_model(model, tmp_path / "m.npz", extra={"pixel_scale": 1 / 255})
    image = photo(tmp_path / "p.jpg")
    assert cli.main(["predict", "--model", str(tmp_path / "m.npz"), "--top", "3",
                     str(image)]) == 0
    rows = parse(capsys.readouterr().out)
    img = Image.open(image).convert("RGB")
    w, h = img.size
    img = img.resize((int(16 * w / h), 16), Image.BILINEAR)
    left = int(round((img.size[0] - 16) / 2.0))
    x = np.asarray(img.crop((left, 0, left + 16, 16)), np.float32).transpose(2, 0, 1)
    logits = model.predict((x * np.float32(1 / 255))[None])[0].astype(np.float64)
    assert [k for _, k, _ in rows] == list(np.argsort(-logits)[:3])
    (tmp_path / "bad.png").write_bytes(b"not an image")
    for argv, expected in [
        (["--model", "resnet18", str(tmp_path / "bad.png")], "not a readable image"),
        (["--model", "resnet18", str(tmp_path / "none.png")], "no image file at"),
        (["--model", "resnet18", "--weights", str(tmp_path / "m.npz"), str(image)],
         "numcnn model file"),
        (["--model", str(tmp_path / "m.npz"), "--weights", "w.npz", str(image)],
         "--weights is for zoo models"),
        (["--model", "nosuchnet", str(image)], "unknown model 'nosuchnet'"),
    ]:
        code = cli.main(["predict", *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert code != 0 and len(err) == 1 and expected in err[0], err


# ------------------------------------------------------------------ digit models
def digit_png(path, invert=False):
    g = np.zeros((40, 30), np.uint8)
    g[6:34, 13:18] = 255  # a "1"
    g[6:10, 8:18] = 255
    Image.fromarray(255 - g if invert else g).save(path)
    return path


def text_rows(out):
    """``(image, [(label, probability %, penalty or None), ...])`` of the printed report."""
    report = []
    for line in out.splitlines():
        if not line.startswith(" "):
            report.append((line.rstrip(":"), []))
            continue
        m = re.match(r"^\s+\d+\. (.+?)\s+([\d.]+) %(?:  \(penalty ([\d.]+)\))?$", line)
        report[-1][1].append((m.group(1), float(m.group(2)),
                              None if m.group(3) is None else float(m.group(3))))
    return report


def saved_digit_model(path, **extra):
    from numcnn.layers import Dense, Flatten

    model = numcnn.Sequential([Flatten(), Dense(10)], input_shape=(1, 28, 28), seed=1)
    numcnn.save_model(model, path, extra=extra)
    return model


def test_json_parses_and_matches_the_printed_probabilities(tmp_path, capsys):
    from numcnn.io.images import digit_input

    model = saved_digit_model(tmp_path / "d.npz", pixel_scale=1 / 255, dataset="mnist")
    images = [str(digit_png(tmp_path / "a.png")), str(digit_png(tmp_path / "b.png", True))]
    assert cli.main(["predict", str(tmp_path / "d.npz"), *images, "--top", "4"]) == 0
    printed = text_rows(capsys.readouterr().out)
    assert cli.main(["predict", str(tmp_path / "d.npz"), *images, "--top", "4",
                     "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == str(tmp_path / "d.npz")
    assert doc["preprocessing"]["kind"] == "mnist_digit"
    assert [p["image"] for p in doc["predictions"]] == [name for name, _ in printed] == images
    for p, (_, rows) in zip(doc["predictions"], printed):
        assert len(p["top"]) == len(rows) == 4
        assert [t["label"] for t in p["top"]] == [r[0] for r in rows]
        assert all(t["label"] == f"digit {t['class']}" for t in p["top"])
        np.testing.assert_allclose([100 * t["probability"] for t in p["top"]],
                                   [r[1] for r in rows], atol=0.005 + 1e-9)
        # the probabilities are torch's softmax of the model's logits, most probable first
        logits = model.predict(digit_input(p["image"])[None])[0].astype(np.float64)
        probs = torch.softmax(torch.tensor(logits), 0).numpy()
        top = np.argsort(-probs)[:4]
        assert [t["class"] for t in p["top"]] == list(top)
        np.testing.assert_allclose([t["probability"] for t in p["top"]], probs[top],
                                   rtol=1e-6)
    # a black "1" on white and a white one on black are the same MNIST pattern
    assert doc["predictions"][0]["top"] == doc["predictions"][1]["top"]


def test_lenet5_1998_prints_its_rbf_penalties(tmp_path, capsys):
    from numcnn.io.images import digit_input

    model = numcnn.models.get("lenet5-1998", seed=0)
    numcnn.save_model(model, tmp_path / "m98.npz",
                      extra={"pixel_scale": 1.0, "dataset": "mnist", "output": "rbf"})
    image = str(digit_png(tmp_path / "one.png", invert=True))
    assert cli.main(["predict", str(tmp_path / "m98.npz"), image, "--top", "10"]) == 0
    (_, rows), = text_rows(capsys.readouterr().out)
    # grey levels 0-255 into the model, which scales them itself (pixel_scale 1)
    y = model.predict(digit_input(image, pixel_scale=1.0)[None])[0].astype(np.float64)
    order = np.argsort(y)  # the smallest penalty wins
    assert [r[0] for r in rows] == [f"digit {k}" for k in order]
    np.testing.assert_allclose([r[2] for r in rows], y[order], atol=0.0005 + 1e-9)
    probs = torch.softmax(-torch.tensor(y), 0).numpy()
    np.testing.assert_allclose([r[1] for r in rows], 100 * probs[order], atol=0.005 + 1e-9)
    # saved with no metadata at all: its first layer, Rescale, says it takes 0-255 levels
    numcnn.save_model(model, tmp_path / "bare.npz")
    assert cli.main(["predict", str(tmp_path / "bare.npz"), image, "--top", "10"]) == 0
    (_, bare), = text_rows(capsys.readouterr().out)
    assert bare == rows


def test_the_model_first_form_and_the_model_option_agree(tmp_path, capsys):
    saved_digit_model(tmp_path / "d.npz", pixel_scale=1 / 255)
    image = str(digit_png(tmp_path / "a.png"))
    assert cli.main(["predict", str(tmp_path / "d.npz"), image]) == 0
    first = capsys.readouterr().out
    assert cli.main(["predict", "--model", str(tmp_path / "d.npz"), image]) == 0
    assert capsys.readouterr().out == first and len(text_rows(first)[0][1]) == 3
    # a 1×28×28 model saved without a preprocessing entry is a digit model (the default)
    saved_digit_model(tmp_path / "e.npz", pixel_scale=1 / 255, preprocessing={
        "kind": "mnist_digit", "pixel_scale": 1 / 255, "invert": "auto", "box": 20,
        "center": "mass"})
    assert cli.main(["predict", str(tmp_path / "e.npz"), image]) == 0
    assert capsys.readouterr().out.replace("e.npz", "d.npz") == first


def test_digit_predict_errors_are_one_line(tmp_path, capsys):
    good = saved_digit_model(tmp_path / "d.npz", pixel_scale=1 / 255)
    image = str(digit_png(tmp_path / "a.png"))
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(tmp_path / "blank.png")
    (tmp_path / "text.png").write_text("not a picture")
    frames = [Image.fromarray(np.eye(20, dtype=np.uint8) * 255), Image.new("L", (20, 20))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    numcnn.save_model(good, tmp_path / "bad.npz",
                      extra={"preprocessing": {"kind": "mnist_digit", "invert": "sometimes"}})
    numcnn.save_model(good, tmp_path / "bad2.npz", extra={"preprocessing": "photo"})
    for argv, expected in [
        ([str(tmp_path / "d.npz")], "predict needs a model and at least one image"),
        ([image, image], "predict's first argument is the model"),
        ([str(tmp_path / "d.npz"), str(tmp_path / "blank.png")],
         f"{tmp_path / 'blank.png'}: no ink: the image is blank"),
        ([str(tmp_path / "d.npz"), image, str(tmp_path / "text.png")],
         f"{tmp_path / 'text.png'}: not a readable image"),
        ([str(tmp_path / "d.npz"), str(tmp_path / "anim.gif")], "animated or multi-frame"),
        ([str(tmp_path / "bad.npz"), image],
         "damaged metadata: preprocessing: invert must be 'auto', true or false"),
        ([str(tmp_path / "bad2.npz"), image],
         "damaged metadata: preprocessing: expected a dict with a 'kind'"),
        ([str(tmp_path / "d.npz"), image, "--top", "0"], "--top must be a positive int"),
    ]:
        code = cli.main(["predict", *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert code != 0 and len(err) == 1 and expected in err[0], err
