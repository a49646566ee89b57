"""``numcnn predict model.npz digit.png ...`` on MNIST test digits saved as pictures: a
modern LeNet-5 trained here for one epoch (``numcnn train``'s run, which stores the
preprocessing with the model) gives their labels back — as MNIST has them, inverted (black
ink on white), and pasted off-centre on a larger canvas three times larger, also as a
colour JPEG of blue ink on cream paper; and the README's two drawn digits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from numcnn import cli

Image = pytest.importorskip("PIL.Image")

MNIST_DIR = os.environ.get("NUMCNN_DATA_DIR")
pytestmark = [
    pytest.mark.mnist,
    pytest.mark.skipif(not (MNIST_DIR and os.path.isdir(MNIST_DIR)),
                       reason="set NUMCNN_DATA_DIR to the folder with the MNIST files"),
]

N = 200


def off_centre(digit, corner, ink=(255, 255, 255), paper=(0, 0, 0)):
    """The digit's ink box, three times larger (Pillow's bicubic), in a corner of a
    100 × 80 canvas of ``paper``, the ink coloured ``ink``."""
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    box = Image.fromarray(digit[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1])
    box = np.asarray(box.resize((3 * box.width, 3 * box.height), Image.BICUBIC),
                     np.float64)[..., None] / 255
    canvas = np.empty((100, 80, 3))
    canvas[:] = paper
    h, w = box.shape[:2]
    top, left = [(2, 3), (2, 78 - w), (98 - h, 3), (98 - h, 78 - w)][corner]
    canvas[top: top + h, left: left + w] = (1 - box) * np.array(paper) + box * np.array(ink)
    return canvas.round().astype(np.uint8)


def predicted(capsys, model, paths):
    code = cli.main(["predict", str(model), *map(str, paths), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert [p["image"] for p in doc["predictions"]] == list(map(str, paths))
    return np.array([p["top"][0]["class"] for p in doc["predictions"]])


@pytest.mark.slow
def test_mnist_test_digits_as_pictures_come_back_with_their_labels(tmp_path, capsys):
    from numcnn.datasets import load
    from numcnn.io.saving import load_model
    from numcnn.training.runs import RunSpec, run

    model = tmp_path / "lenet5.npz"
    result = run(RunSpec(model="lenet5", epochs=1, validation_size=0, seed=0, verbose=0,
                         data_dir=MNIST_DIR, output=str(model)), say=lambda text: None)
    assert result.test["accuracy"] >= 0.97
    assert load_model(model, compile=False).saved_extra["preprocessing"] == {
        "kind": "mnist_digit", "pixel_scale": 1 / 255, "invert": "auto"}
    _, (x, y) = load("mnist", data_dir=MNIST_DIR)
    x, y = x[:N], y[:N]
    variants = {
        "as in MNIST": lambda d, i: d,
        "inverted": lambda d, i: 255 - d,
        "off-centre ×3 on 100×80": lambda d, i: off_centre(d, i % 4)[..., 0],
        "blue ink on cream, JPEG": lambda d, i: off_centre(d, i % 4, ink=(20, 30, 120),
                                                           paper=(245, 238, 220)),
    }
    for v, (what, make) in enumerate(variants.items()):
        paths = []
        for i, d in enumerate(x):
            path = tmp_path / f"{v}_{i}.{'jpg' if 'JPEG' in what else 'png'}"
            Image.fromarray(make(d, i)).save(path, quality=90)
            paths.append(path)
        accuracy = (predicted(capsys, model, paths) == y).mean()
        assert accuracy >= 0.98, (what, accuracy)
    # the README's example: a 7 drawn black on white, a 3 in blue on cream paper (JPEG)
    figures = Path(__file__).resolve().parents[1] / "docs" / "figures"
    drawn = [figures / "digit_7.png", figures / "digit_3.jpg"]
    assert list(predicted(capsys, model, drawn)) == [7, 3]
