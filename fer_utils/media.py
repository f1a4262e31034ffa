"""Photos and videos as pixels: read any photo upright as RGB, list a folder's photos and videos, decode frames.

What `python -m fer_utils predict` reads its inputs with (fer_utils.predict); a bad input raises InputError naming it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


class InputError(ValueError):
    """One input (or the model) cannot be used; the message names the file and the problem in one line."""


# ---------------------------------------------------------------- reading photos

def to_rgb(im: Image.Image) -> np.ndarray:
    """Any PIL image as (H, W, 3) uint8 RGB, upright (EXIF orientation applied).

    Grayscale is repeated over three channels; transparency is composed on white; 16- and 32-bit and float images
    are scaled to 8 bits (never clipped); CMYK, palette and other modes go through PIL's conversion.
    """
    im = ImageOps.exif_transpose(im) or im
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im).astype(np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else None
        if top is None:  # 32-bit int or float: 16-bit data when it fits, else its own range
            lo, hi = float(arr.min()), float(arr.max())
            if lo >= 0 and hi <= 255 and im.mode == "I":
                top = 255.0
            elif lo >= 0 and hi <= 65535 and im.mode == "I":
                top = 65535.0
            else:
                arr, top = arr - lo, max(hi - lo, 1e-12)
        gray = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def load_photo(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Read a photo as upright (H, W, 3) uint8 RGB.

    Args:
        path: an image file in any format PIL reads.
    Returns:
        The pixels, and a note for the user ('' or e.g. that only the first of several frames was used).
    Raises:
        InputError naming the file: not an image, unreadable or truncated, too large to decode.
    """
    try:
        with Image.open(path) as im:
            n_frames = getattr(im, "n_frames", 1)
            im.load()
            rgb = to_rgb(im)
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise InputError(f"{path}: unreadable or truncated image ({err})") from None
    note = f"{n_frames} frames, only the first is used" if n_frames > 1 else ""
    return rgb, note


# ---------------------------------------------------------------- folders and videos

def expand_inputs(inputs: Iterable[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """The files to process: each file as given, each folder's photos and videos (recursively, sorted).

    Args:
        inputs: files and folders.
    Returns:
        The files, and one problem line per input that yields nothing (missing path, folder without photos or
        videos); files in folders with other suffixes are listed as skipped problems too, never dropped silently.
    """
    files: list[Path] = []
    problems: list[str] = []
    suffixes = PHOTO_SUFFIXES + VIDEO_SUFFIXES
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            found = [p for p in inside if p.suffix.lower() in suffixes]
            problems += [f"{p}: skipped, not a photo or video suffix ({', '.join(suffixes)})"
                         for p in inside if p.suffix.lower() not in suffixes]
            if not found:
                problems.append(f"{path}: folder holds no photo or video ({', '.join(suffixes)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files, problems


def is_video(path: Path) -> bool:
    """Whether `path` is read as a video (by its suffix, or when PIL cannot identify it as an image)."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return True
    if path.suffix.lower() in PHOTO_SUFFIXES:
        return False
    try:
        with Image.open(path):
            return False
    except (UnidentifiedImageError, OSError):
        return True


def video_frames(path: str | os.PathLike, every: int = 1) -> Iterator[tuple[int, float, np.ndarray]]:
    """Every `every`-th frame of a video, decoded one at a time (the others are skipped without decoding).

    Args:
        path: a video file OpenCV reads (its wheel bundles FFmpeg).
        every: keep frames 0, every, 2*every, ...
    Returns:
        An iterator of (frame index, time in seconds, (H, W, 3) uint8 RGB).
    Raises:
        InputError naming the file when it is not a video or no frame can be decoded.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise InputError(f"{path}: not a photo or a video that can be read")
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        index = 0
        while True:
            if index % every:
                if not capture.grab():
                    break
            else:
                ok, frame = capture.read()
                if not ok:
                    break
                seconds = index / fps if fps > 0 else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
                yield index, round(seconds, 3), cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
        if index == 0:
            raise InputError(f"{path}: not a photo or a video that can be read (no frame could be decoded)")
    finally:
        capture.release()
