"""Read a picture for a network: decoded by Pillow (imported only here, the ``image`` extra),
bounded, and either resized and cropped as torchvision's ImageNet evaluation does
(:func:`load_image`, :func:`imagenet_input`) or made an MNIST pattern for a digit model
(:func:`digit_input`, :func:`load_grey`).

Image files are untrusted input: the header is read first and an image of more than
:data:`MAX_PIXELS` pixels is refused before it is decoded (a small file can declare a huge
image, a decompression bomb); an empty image, an animated or multi-frame file, or a damaged
or truncated one is a ``ValueError`` naming it, in one line.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

#: the most pixels numcnn decodes from one image (Pillow's own bomb limit is 89 M, a warning)
MAX_PIXELS = 64 * 1024 * 1024

#: the most bytes of an encoded image passed in memory (:func:`load_grey` of ``bytes``)
MAX_IMAGE_BYTES = 64 * 1024 * 1024

#: :func:`load_grey` first shrinks a larger picture (by a whole factor, averaging blocks) so
#: that its longer side is at most this: a digit needs far fewer pixels, memory stays bounded
GREY_MAX_SIDE = 2048

#: torchvision's ImageNet normalisation (per channel, pixels in [0, 1])
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("reading images needs Pillow: pip install 'numcnn[image]' (or "
                          "pip install Pillow)") from None
    return Image


@contextlib.contextmanager
def _opened(source: Any) -> Iterator[Any]:
    """A Pillow image of a path or of a file's bytes, its header checked before decoding;
    errors while it is used (decoding) become one-line ``ValueError`` s naming it. An array
    (as :func:`numcnn.preprocessing.digits.image_levels` takes) becomes the 8-bit image a
    PNG of it would hold."""
    Image = _pil()
    if isinstance(source, np.ndarray):
        from ..preprocessing.digits import image_levels

        a = np.round(image_levels(source) * 255).astype(np.uint8)
        yield Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
        return
    name = _name(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) > MAX_IMAGE_BYTES:
            raise ValueError(f"{name}: {len(source):,} bytes, more than the "
                             f"{MAX_IMAGE_BYTES:,} numcnn reads")
        fp: Any = io.BytesIO(bytes(source))
        head = bytes(source[:24])
    else:
        fp = name
        if not os.path.isfile(name):
            from .paths import missing_file

            raise missing_file(name, "image file")
        with open(name, "rb") as f:
            head = f.read(24)
    if not head:
        raise ValueError(f"{name}: empty (0 bytes); expected an image")
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":  # Pillow: "unknown format"
        w, h = struct.unpack(">II", head[16:24])
        if w == 0 or h == 0:
            raise ValueError(f"{name}: an empty image ({w}×{h} pixels)")
        if w * h > MAX_PIXELS:  # before Pillow, whose own bomb error does not say the size
            raise ValueError(f"{name}: the image declares {w}×{h} pixels, more than the "
                             f"{MAX_PIXELS:,} numcnn decodes")
    try:
        with Image.open(fp) as img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ValueError(f"{name}: the image declares {w}×{h} pixels, more than the "
                                 f"{MAX_PIXELS:,} numcnn decodes")
            if w == 0 or h == 0:
                raise ValueError(f"{name}: an empty image ({w}×{h} pixels)")
            # a phone's JPEG (MPO) carries a preview as a second frame: its first is the photo
            if getattr(img, "is_animated", False) and img.format != "MPO":
                raise ValueError(f"{name}: an animated or multi-frame {img.format} image; "
                                 "numcnn reads one picture per file")
            yield img
    except ValueError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # Pillow's own check in open() (its warning is an exception where warnings are errors)
        raise ValueError(f"{name}: the image declares more pixels than the {MAX_PIXELS:,} "
                         f"numcnn decodes ({e})") from None
    except Image.UnidentifiedImageError:
        raise ValueError(f"{name}: not a readable image (not a format Pillow knows: PNG, "
                         "JPEG, GIF, BMP, TIFF, WebP…)") from None
    except (OSError, SyntaxError, EOFError) as e:
        raise ValueError(f"{name}: not a readable image ({e})") from None


def load_image(path: Any, mode: str = "RGB", resize: int | None = None,
               crop: int | tuple[int, int] | None = None) -> np.ndarray:
    """An image file as a uint8 array ``(C, H, W)``.

    Args:
        path: a PNG, JPEG, BMP, GIF, TIFF, WebP… file (one frame: animations are refused),
            its bytes, or an image array (taken as the 8-bit PNG of it).
        mode: ``"RGB"`` (3 channels) or ``"L"`` (grey, 1 channel).
        resize: scale so that the shorter side has this many pixels (bilinear with
            antialiasing, Pillow's, as torchvision's ``Resize`` on an image).
        crop: then cut the centre ``crop`` × ``crop`` (or ``(h, w)``), as ``CenterCrop``.

    Raises:
        FileNotFoundError: no such file. ValueError: not an image, damaged, empty, animated,
        or larger than :data:`MAX_PIXELS`.
    """
    Image = _pil()
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L'; received mode={mode!r}")
    with _opened(path) as img:
        img = img.convert(mode)
        if resize is not None:
            img = _resize_shorter(img, resize, Image)
        if crop is not None:
            img = _center_crop(img, crop)
        a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1))


def _resize_shorter(img: Any, size: int, Image: Any) -> Any:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"resize must be a positive int; received resize={size!r}")
    w, h = img.size
    if w <= h:
        new = (size, int(size * h / w))
    else:
        new = (int(size * w / h), size)
    return img.resize(new, Image.BILINEAR)


def _center_crop(img: Any, crop: Any) -> Any:
    ch, cw = (crop, crop) if isinstance(crop, int) else crop
    w, h = img.size
    if ch > h or cw > w:
        raise ValueError(f"crop {ch}×{cw} is larger than the image ({h}×{w})")
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return img.crop((left, top, left + cw, top + ch))


def imagenet_input(path: Any, size: int = 224, resize: int = 256,
                   mean: Any = IMAGENET_MEAN, std: Any = IMAGENET_STD,
                   dtype: Any = np.float32) -> np.ndarray:
    """A photo as torchvision's ImageNet networks take it: shorter side to ``resize``,
    centre ``size`` × ``size``, pixels in [0, 1], minus ``mean``, over ``std`` per
    channel; shape ``(1, 3, size, size)``."""
    x = load_image(path, "RGB", resize=resize, crop=size).astype(np.float64) / 255.0
    x = (x - np.asarray(mean)[:, None, None]) / np.asarray(std)[:, None, None]
    return x[None].astype(dtype)


def load_grey(source: Any, max_side: int = GREY_MAX_SIDE) -> np.ndarray:
    """A picture's grey levels in [0, 1], float64 ``(H, W)``, transparency on white.

    Args:
        source: a file path, the bytes of an image file (at most :data:`MAX_IMAGE_BYTES`),
            or an image array (taken as the 8-bit PNG of it).
        max_side: a picture with a longer side shrinks by the smallest whole factor that
            brings it to at most this, each output pixel the mean of its block.

    Colour becomes ITU-R 601-2 luma (Pillow's ``"L"``); 16-bit grey (``I;16``, ``I``) is
    divided by 65535 — not clipped to 255 as Pillow's ``convert("L")`` would; palette and
    alpha images are composited on white (see :func:`numcnn.preprocessing.digits.grey_levels`).

    Raises:
        FileNotFoundError: no such file. ValueError: as :func:`load_image`.
    """
    from ..preprocessing.digits import grey_levels

    with _opened(source) as img:
        if img.mode.startswith("I;16"):
            img = img.convert("I")
        if img.mode in ("I", "F"):
            pass
        elif "A" in img.mode or "a" in img.mode or "transparency" in img.info:
            img = img.convert("RGBA")
        elif img.mode != "L":
            img = img.convert("RGB")
        factor = math.ceil(max(img.size) / max_side)
        if factor > 1:
            img = img.reduce(factor)
        a = np.asarray(img)
    if a.dtype.kind == "i":  # 16-bit grey read as 32-bit integers
        return np.clip(a / 65535.0, 0.0, 1.0)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ValueError(f"{_name(source)}: a float image holding NaN or infinite values")
        return np.clip(a.astype(np.float64), 0.0, 1.0)
    return grey_levels(a)


def _name(source: Any) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "image data"
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    raise TypeError(f"expected an image: a file path, a file's bytes or an array; received "
                    f"{type(source).__name__}")


def digit_input(image: Any, pixel_scale: float = 1.0 / 255.0, invert: Any = "auto",
                size: int = 28, box: int = 20, center: str = "mass",
                ink_threshold: float = 0.1, dtype: Any = np.float32) -> np.ndarray:
    """A picture of one handwritten digit as an MNIST model's input, shape ``(1, size, size)``:
    grey, inverted when the background is light, cropped to the ink, fitted into 20×20
    keeping its aspect ratio, centred by its centre of mass in 28×28 (as MNIST was made; see
    :mod:`numcnn.preprocessing.digits`), then scaled as the model was trained.

    Args:
        image: a file path (PNG, JPEG…; read by :func:`load_grey`, Pillow), the bytes of
            such a file, or an array ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` as
            :func:`numcnn.preprocessing.digits.grey_levels` takes (uint8 0–255, uint16, or
            float in [0, 1]).
        pixel_scale: what the model's training multiplied MNIST's uint8 levels by (1/255 for
            ``numcnn train``'s modern models, 1 for LeNet-5 (1998), which scales inside).
        invert: ``"auto"`` (invert when the border is light), True or False.
        size, box: the field (28) and the box the ink is fitted into (20).
        center: ``"mass"`` (MNIST) or ``"box"``.
        ink_threshold: levels below this fraction of the ink's contrast are background.
        dtype: of the result.

    Returns:
        ``255·pixel_scale·x`` where ``x`` in [0, 1] is the pattern of
        :func:`numcnn.preprocessing.digits.mnist_digit`.

    Raises:
        ValueError: not an image, damaged, too large, or blank (no ink).

    >>> pad = np.full((60, 40), 255, np.uint8); pad[10:50, 18:22] = 0  # a black "1" on white
    >>> x = digit_input(pad)
    >>> x.shape, float(x.max()), float(x[0, :, :4].sum())  # ink bright, left columns empty
    ((1, 28, 28), 1.0, 0.0)
    """
    from ..preprocessing.digits import grey_levels, mnist_digit

    if isinstance(image, (str, bytes, bytearray, memoryview, os.PathLike)):
        grey = load_grey(image)
    else:
        grey = grey_levels(image)
    if isinstance(pixel_scale, bool) or not isinstance(pixel_scale, (int, float)) \
            or not math.isfinite(pixel_scale) or pixel_scale <= 0:
        raise ValueError(f"pixel_scale must be a positive number; received {pixel_scale!r}")
    x = mnist_digit(grey, invert=invert, size=size, box=box, center=center,
                    ink_threshold=ink_threshold)
    return (x * (255.0 * pixel_scale))[None].astype(dtype)


__all__ = ["GREY_MAX_SIDE", "IMAGENET_MEAN", "IMAGENET_STD", "MAX_IMAGE_BYTES", "MAX_PIXELS",
           "digit_input", "imagenet_input", "load_grey", "load_image"]
