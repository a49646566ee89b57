"""Draw a digit on ``numcnn serve``'s page in headless Chromium and save a screenshot — the
README's picture of the page, and the drawing helpers of the browser test
(tests/serve/test_serve_browser.py).

The strokes are sent as real pointer events (WebDriver actions: pointer down, moves, up)
on the ``#pad`` canvas, by mouse or by touch, so the page's Pointer Events code runs as it
does for a person. Needs Selenium (pip) and Debian's ``chromium`` and ``chromium-driver``.

Usage::

    numcnn train --model lenet5-1998 --output lenet5_1998.npz
    python examples/serve_screenshot.py lenet5_1998.npz --digit 7 \\
        --output docs/figures/serve_page.png
"""

from __future__ import annotations

import argparse
import io
import shutil
import threading
import time

import numpy as np

#: digits as strokes: polylines in the pad's unit square (x right, y down)
STROKES = {
    "1": [[(0.52, 0.18), (0.50, 0.82)]],
    "7": [[(0.28, 0.22), (0.72, 0.22), (0.46, 0.80)]],
    "4": [[(0.55, 0.18), (0.28, 0.58), (0.75, 0.58)], [(0.60, 0.38), (0.60, 0.84)]],
}

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = ("chromedriver",)


def browser_paths() -> tuple[str, str] | None:
    """``(chromium, chromedriver)`` found on the PATH, or None."""
    browser = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver = next((p for p in map(shutil.which, CHROMEDRIVER) if p), None)
    return (browser, driver) if browser and driver else None


def open_browser(width: int = 1200, height: int = 900) -> object:
    """Headless Chromium driven by the system chromedriver (Selenium never downloads
    one: both paths are given)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = browser_paths()
    if paths is None:
        raise RuntimeError("needs chromium and chromedriver on the PATH (Debian: apt-get "
                           "install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars",
                "--force-device-scale-factor=1"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(paths[1]), options=options)


def draw(driver: object, strokes: list, pointer: str = "mouse", steps: int = 12) -> None:
    """Draw ``strokes`` on ``#pad`` with real pointer events: for each polyline, pointer
    down at its start, ``steps`` moves along each segment, pointer up."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    from selenium.webdriver.common.by import By

    pad = driver.find_element(By.ID, "pad")
    left, top, w, h = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, "
        "r.height];", pad)
    kind = interaction.POINTER_TOUCH if pointer == "touch" else interaction.POINTER_MOUSE
    device = PointerInput(kind, pointer)
    actions = ActionBuilder(driver, mouse=device, duration=15)
    at = [lambda p: (round(left + p[0] * w), round(top + p[1] * h))]
    for line in strokes:
        actions.pointer_action.move_to_location(*at[0](line[0]))
        actions.pointer_action.pointer_down()
        for a, b in zip(line[:-1], line[1:]):
            for t in np.linspace(0, 1, steps + 1)[1:]:
                actions.pointer_action.move_to_location(
                    *at[0]((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))))
        actions.pointer_action.pointer_up()
    actions.perform()


def wait_for_update(driver: object, after: int, timeout: float = 30.0) -> dict:
    """Wait until the page has drawn an answer after ``after`` answers and no request is
    pending (the last stroke's answer); return that answer (``window.numcnn.last``)."""
    end = time.monotonic() + timeout
    last, settled = None, 0
    while time.monotonic() < end:
        n = driver.execute_script("return window.numcnn ? window.numcnn.updates : 0")
        if n > after and n == last:
            settled += 1
            if settled >= 3:  # no new answer for 3 polls (0.3 s): the last one is drawn
                return driver.execute_script("return window.numcnn.last")
        else:
            settled = 0
        last = n
        time.sleep(0.1)
    raise TimeoutError(f"the page drew no answer within {timeout} s")


def screenshot_png(driver: object, path: str, colours: int = 128) -> int:
    """Save the viewport as a palette PNG (small: the page is flat colours and greys);
    returns its size in bytes."""
    from PIL import Image

    from numcnn.io.paths import atomic_write

    img = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    img = img.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    atomic_write(path, lambda f: f.write(buf.getvalue()), "the screenshot")
    return len(buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    from numcnn.serve.command import make_server
    from numcnn.serve.engine import Engine

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a model file saved by numcnn train --output")
    p.add_argument("--digit", default="7", choices=sorted(STROKES))
    p.add_argument("--output", default="serve_page.png")
    p.add_argument("--width", type=int, default=1200)
    p.add_argument("--height", type=int, default=860)
    args = p.parse_args(argv)
    engine = Engine.from_file(args.model)
    server = make_server(engine, "127.0.0.1", 0, rate=0)
    threading.Thread(target=server.run, daemon=True).start()
    driver = open_browser(args.width, args.height)
    try:
        driver.get(server.url)
        wait_model = time.monotonic() + 30
        while not driver.execute_script("return document.getElementById('model-name')"
                                        ".textContent") and time.monotonic() < wait_model:
            time.sleep(0.1)
        draw(driver, STROKES[args.digit])
        answer = wait_for_update(driver, 0)
        size = screenshot_png(driver, args.output)
    finally:
        driver.quit()
    print(f"drew a {args.digit}: the page says {answer['prediction']} "
          f"({100 * answer['probabilities'][answer['prediction']]:.1f} %); "
          f"wrote {args.output} ({size / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
