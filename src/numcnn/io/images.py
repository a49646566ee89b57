"""Read a photo for a network: decoded by Pillow (imported only here, the ``image`` extra),
bounded, resized and cropped as torchvision's ImageNet evaluation does.

Image files are untrusted input: the header is read first and an image of more than
:data:`MAX_PIXELS` pixels is refused before it is decoded (a small file can declare a huge
image); a damaged file is a ``ValueError`` naming it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

#: the most pixels numcnn decodes from one image (Pillow's own bomb limit is 89 M, a warning)
MAX_PIXELS = 64 * 1024 * 1024

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


def load_image(path: str | os.PathLike, mode: str = "RGB", resize: int | None = None,
               crop: int | tuple[int, int] | None = None) -> np.ndarray:
    """An image file as a uint8 array ``(C, H, W)``.

    Args:
        path: a PNG, JPEG, BMP, GIF (first frame), TIFF, WebP… file.
        mode: ``"RGB"`` (3 channels) or ``"L"`` (grey, 1 channel).
        resize: scale so that the shorter side has this many pixels (bilinear with
            antialiasing, Pillow's, as torchvision's ``Resize`` on an image).
        crop: then cut the centre ``crop`` × ``crop`` (or ``(h, w)``), as ``CenterCrop``.

    Raises:
        FileNotFoundError: no such file. ValueError: not an image, damaged, or larger than
        :data:`MAX_PIXELS`.
    """
    Image = _pil()
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L'; received mode={mode!r}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no image file at {path}")
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ValueError(f"{path}: the image declares {w}×{h} pixels, more than the "
                                 f"{MAX_PIXELS:,} numcnn decodes")
            img = img.convert(mode)
            if resize is not None:
                img = _resize_shorter(img, resize, Image)
            if crop is not None:
                img = _center_crop(img, crop)
            a = np.asarray(img, dtype=np.uint8)
    except ValueError:
        raise
    except (OSError, SyntaxError, Image.DecompressionBombError, EOFError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None
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


def imagenet_input(path: str | os.PathLike, size: int = 224, resize: int = 256,
                   mean: Any = IMAGENET_MEAN, std: Any = IMAGENET_STD,
                   dtype: Any = np.float32) -> np.ndarray:
    """A photo as torchvision's ImageNet networks take it: shorter side to ``resize``,
    centre ``size`` × ``size``, pixels in [0, 1], minus ``mean``, over ``std`` per
    channel; shape ``(1, 3, size, size)``."""
    x = load_image(path, "RGB", resize=resize, crop=size).astype(np.float64) / 255.0
    x = (x - np.asarray(mean)[:, None, None]) / np.asarray(std)[:, None, None]
    return x[None].astype(dtype)


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "MAX_PIXELS", "imagenet_input", "load_image"]
