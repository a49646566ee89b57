"""``numcnn predict``: a photo through a zoo network with torchvision-named weights, top-5
ImageNet classes — against a PyTorch twin given the same weights and the same photo,
preprocessed here with Pillow and torch (torchvision's Resize(256), CenterCrop(224),
Normalize); and through a saved numcnn model."""

from __future__ import annotations

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
