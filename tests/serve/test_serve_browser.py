"""The page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium) draws digits with real pointer events — mouse and
touch — on ``#pad`` of ``numcnn serve``'s page for a LeNet-5 trained briefly on MNIST, and
checks that ``#prediction`` shows the digit drawn, that every feature-map canvas shows
exactly the map the server sent (pixel for pixel) and that each layer's canvases are not
blank, and that ``#clear`` clears.

Skipped when Chromium or chromedriver is missing — except under CI (``CI`` set, as
``.ci/run`` runs), where that is a failure: CI installs them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from numcnn.serve.engine import Engine, decode

#: set by CI (.ci/run): there the browser test must run, never skip
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "serve_screenshot.py"
DIGIT_3 = ROOT / "docs" / "figures" / "digit_3.jpg"  # the README's blue 3 on cream paper


def _example():
    spec = importlib.util.spec_from_file_location("serve_screenshot", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shots = _example()


def _need(what: str) -> None:
    if IN_CI:
        pytest.fail(f"the browser test must run in CI: {what}")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser():
    try:
        import selenium  # noqa: F401
    except ImportError:
        _need("Selenium is not installed (pip install selenium)")
    if shots.browser_paths() is None:
        _need("chromium and chromedriver are not on the PATH (Debian: apt-get install "
              "chromium chromium-driver)")
    driver = shots.open_browser(1100, 900)
    yield driver
    driver.quit()


#: reads every feature-map canvas back: per canvas its layer, map, whether every pixel is
#: opaque, whether the grey levels equal the bytes the server sent for that map, and the
#: largest grey level
CHECK_CANVASES = """
const last = window.numcnn.last, out = [];
const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
for (const c of document.querySelectorAll('#layers canvas.fmap')) {
  const layer = last.layers.find((l) => l.name === c.dataset.layer);
  const m = Number(c.dataset.map), n = layer.w * layer.h, q = bytes(layer.data);
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let opaque = true, same = true, top = 0;
  for (let i = 0; i < n; i++) {
    opaque = opaque && px[4 * i + 3] === 255;
    same = same && px[4 * i] === q[m * n + i] && px[4 * i + 1] === px[4 * i];
    top = Math.max(top, px[4 * i]);
  }
  out.push([c.dataset.layer, m, c.width * c.height === n, opaque, same, top]);
}
return out;
"""


def test_drawn_digits_are_recognised_and_every_layer_is_drawn(browser, trained_lenet5_file,
                                                               running):
    engine = Engine.from_file(trained_lenet5_file)
    server = running(engine, rate=0)
    browser.get(server.url)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.ID, "model-name").text == trained_lenet5_file.name)
    updates = 0
    for digit, pointer in (("7", "mouse"), ("1", "touch"), ("4", "mouse")):
        browser.find_element(By.ID, "clear").click()
        assert browser.find_element(By.ID, "prediction").text == ""
        blank = browser.execute_script(
            "const c = document.getElementById('pad'); const d = c.getContext('2d')"
            ".getImageData(0, 0, c.width, c.height).data; return Math.max(...d.filter("
            "(v, i) => i % 4 === 0));")
        assert blank == 0, "Clear left ink on the pad"
        shots.draw(browser, shots.STROKES[digit], pointer=pointer)
        answer = shots.wait_for_update(browser, updates)
        updates = browser.execute_script("return window.numcnn.updates")
        assert browser.find_element(By.ID, "prediction").text == digit, \
            (digit, pointer, answer["probabilities"])
        # the server's answer is the model on the input it shows
        x = decode(answer["input"])[None].astype(np.float32)
        assert int(np.argmax(engine.model.predict(x)[0])) == int(digit)

        canvases = browser.execute_script(CHECK_CANVASES)
        layers = {lay["name"] for lay in engine.layers}
        assert {c[0] for c in canvases} == layers  # every layer has its canvases
        for name, m, sized, opaque, same, _ in canvases:
            assert sized and opaque and same, (name, m, sized, opaque, same)
        for name in layers:  # and none is blank: each layer shows some ink
            assert max(c[5] for c in canvases if c[0] == name) > 0, name


def test_an_uploaded_picture_is_recognised(browser, trained_lenet5_file, running, tmp_path):
    """The second tab: a large photo-like picture (2000×1500, dark ink on light paper,
    shrunk by the page to 1,024 pixels a side before sending) and the README's JPEG of a 3."""
    from PIL import Image, ImageDraw
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    big = Image.new("RGB", (2000, 1500), (235, 230, 215))
    ImageDraw.Draw(big).line([(700, 350), (1300, 350), (900, 1200)], fill=(20, 30, 90),
                             width=90, joint="curve")
    big.save(tmp_path / "seven.png")
    server = running(Engine.from_file(trained_lenet5_file), rate=0)
    browser.get(server.url)
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.ID, "model-name").text == trained_lenet5_file.name)
    browser.find_element(By.ID, "tab-upload").click()
    assert not browser.find_element(By.ID, "panel-upload").get_attribute("hidden")
    updates = 0
    for path, digit in ((tmp_path / "seven.png", "7"), (DIGIT_3, "3")):
        browser.find_element(By.ID, "file").send_keys(str(path))
        answer = shots.wait_for_update(browser, updates)
        updates = browser.execute_script("return window.numcnn.updates")
        assert browser.find_element(By.ID, "prediction").text == digit, \
            (path.name, answer["probabilities"])

