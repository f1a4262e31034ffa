"""Faces in real photos and videos: find them, crop them as FER2013 was made, predict their emotions.

What `python -m fer_utils predict` runs: OpenCV's bundled Haar cascade finds the faces, each becomes a 48x48
grayscale crop, a trained model gives its 7 probabilities; results go to a CSV (streamed), JSON and annotated images.
"""

from __future__ import annotations

import csv
import os
import sys
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import (CLASSES, DETECT_MAX_SIDE, FACE_MARGIN, HAAR_CASCADE, HAAR_MIN_NEIGHBORS, HAAR_SCALE_FACTOR,
                     IMAGE_SIZE, MIN_FACE, PUBLISHED_MODEL, repo_path)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
ROW_FIELDS: tuple[str, ...] = ("file", "frame", "time_s", "face", "x", "y", "w", "h", "emotion", "confidence",
                               *CLASSES, "status")
"""Columns of predictions.csv: one row per face, or one per file (or video frame) with no face or an error."""
CSV_NAME = "predictions.csv"
OK, NO_FACE = "ok", "no face"


class InputError(ValueError):
    """One input (or the model) cannot be used; the message names the file and the problem in one line."""


@dataclass(frozen=True)
class Box:
    """A face's bounding box in pixels of the original (upright) image."""

    x: int
    y: int
    w: int
    h: int


# ---------------------------------------------------------------- reading photos

def published_model() -> Path:
    """The committed SE-CNN (reports/se/model.keras), whatever the working directory.

    Returns:
        Its path in the clone this package is installed from.

    Raises:
        FileNotFoundError saying so when this install has no repository around it (`config.repo_path`).
    """
    return repo_path(PUBLISHED_MODEL)


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


# ---------------------------------------------------------------- finding and cropping faces

@lru_cache(maxsize=4)
def face_detector(cascade: str = HAAR_CASCADE) -> cv2.CascadeClassifier:
    """One of OpenCV's Haar cascades, from the copies bundled in the opencv-python(-headless) 4.x wheels."""
    path = Path(cv2.data.haarcascades) / cascade
    detector = cv2.CascadeClassifier(str(path))
    if detector.empty():
        raise InputError(f"{path}: OpenCV's Haar cascade is missing (OpenCV 4.x wheels bundle it; 5.x do not)")
    return detector


def _detection_image(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Grayscale, downscaled to `max_side` at most; and the scale applied."""
    gray = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = min(1.0, max_side / max(gray.shape))
    if scale < 1.0:
        gray = cv2.resize(gray, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)),
                          interpolation=cv2.INTER_AREA)
    return gray, scale


def detect_faces(rgb: np.ndarray, max_side: int = DETECT_MAX_SIDE, min_face: int = MIN_FACE,
                 cascade: str = HAAR_CASCADE) -> list[Box]:
    """Find frontal faces with OpenCV's Haar cascade.

    Args:
        rgb: (H, W, 3) uint8 RGB or (H, W) uint8 grayscale.
        max_side: a larger image is downscaled to this longest side for detection (speed); boxes come back in
            the original image's pixels.
        min_face: smallest face searched for, in pixels of the (downscaled) detection image.
        cascade: file name of a cascade in cv2.data.haarcascades.
    Returns:
        The boxes, left to right.
    """
    gray, scale = _detection_image(rgb, max_side)
    found = face_detector(cascade).detectMultiScale(gray, scaleFactor=HAAR_SCALE_FACTOR,
                                                    minNeighbors=HAAR_MIN_NEIGHBORS, minSize=(min_face, min_face))
    boxes = [Box(*(round(int(v) / scale) for v in b)) for b in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: (b.x, b.y))


def detect_faces_lbp(rgb: np.ndarray, max_side: int = DETECT_MAX_SIDE, min_face: int = MIN_FACE) -> list[Box]:
    """Find frontal faces with scikit-image's bundled LBP cascade (the detector `predict` was compared with).

    Args and Returns: as detect_faces.
    """
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    gray, scale = _detection_image(rgb, max_side)
    found = Cascade(lbp_frontal_face_cascade_filename()).detect_multi_scale(
        img=gray, scale_factor=HAAR_SCALE_FACTOR, step_ratio=1, min_size=(min_face, min_face),
        max_size=gray.shape[:2])
    boxes = [Box(*(round(int(v) / scale) for v in (d["c"], d["r"], d["width"], d["height"]))) for d in found]
    return sorted(boxes, key=lambda b: (b.x, b.y))


DETECTORS: dict[str, Callable[[np.ndarray], list[Box]]] = {
    "OpenCV Haar alt2 (used)": detect_faces,
    "OpenCV Haar default": lambda rgb: detect_faces(rgb, cascade="haarcascade_frontalface_default.xml"),
    "scikit-image LBP": detect_faces_lbp,
}
"""The detectors compared in benchmarks/README.md and notebook 07 (compare_detectors)."""


def sample_photos() -> dict[str, Path]:
    """Photos of people that ship inside installed packages (no download): name -> file.

    scikit-image's astronaut (Eileen Collins, smiling, frontal) and cameraman (a face half hidden by a camera), and
    matplotlib's Grace Hopper (frontal, in uniform).
    """
    import matplotlib
    from skimage.data import data_dir

    return {"astronaut": Path(data_dir, "astronaut.png"),
            "grace_hopper": Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"),
            "cameraman": Path(data_dir, "camera.png")}


def lfw_faces(size: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's bundled LFW subset: 100 real faces and 100 background patches (25x25), upscaled to `size`.

    Returns:
        (faces, non_faces), each (100, size, size) uint8.
    """
    from skimage.data import lfw_subset

    images = np.stack([cv2.resize(np.rint(im * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
                       for im in lfw_subset()])
    return images[:100], images[100:]


def compare_detectors(photos: dict[str, np.ndarray], detectors: dict | None = None, repeat: int = 3):
    """Each detector's face count per photo, milliseconds per photo, and recall on the LFW subset.

    Args:
        photos: name -> (H, W, 3) uint8.
        detectors: name -> function(rgb) -> boxes (default DETECTORS).
        repeat: timing runs per photo (the fastest is kept).
    Returns:
        A pandas DataFrame, one row per detector.
    """
    import pandas as pd

    lfw, background = lfw_faces()
    rows = []
    for name, detect in (detectors or DETECTORS).items():
        row: dict = {"detector": name}
        total = 0.0
        for photo, rgb in photos.items():
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                boxes = detect(rgb)
                times.append(time.perf_counter() - start)
            row[f"boxes: {photo}"] = len(boxes)
            total += min(times)
        row["ms per photo"] = 1000 * total / len(photos)
        row["LFW faces found (of 100)"] = sum(bool(detect(im)) for im in lfw)
        row["LFW backgrounds with a box (of 100)"] = sum(bool(detect(im)) for im in background)
        rows.append(row)
    return pd.DataFrame(rows).set_index("detector")


def fer_framing(images: np.ndarray, size: int = 192) -> dict[str, float]:
    """How FER2013 frames a face, measured with our detector: run it on FER2013's own (upscaled) images.

    Args:
        images: (N, 48, 48) or (N, 48, 48, 1) uint8.
        size: upscaled side for detection (the cascade needs more than 48 pixels).
    Returns:
        n, found (fraction with a face), width_ratio (median box side / image side), centre_x and centre_y (median
        box centre / side), and margin: the crop margin per side that reproduces that framing.
    """
    ratios, cx, cy = [], [], []
    for im in np.asarray(images).reshape(-1, IMAGE_SIZE, IMAGE_SIZE):
        boxes = detect_faces(cv2.resize(im, (size, size), interpolation=cv2.INTER_CUBIC), min_face=size // 4)
        if boxes:
            b = max(boxes, key=lambda b: b.w * b.h)
            ratios.append(b.w / size)
            cx.append((b.x + b.w / 2) / size)
            cy.append((b.y + b.h / 2) / size)
    n = len(np.asarray(images))
    if not ratios:
        return {"n": n, "found": 0.0, "width_ratio": float("nan"), "centre_x": float("nan"),
                "centre_y": float("nan"), "margin": float("nan")}
    ratio = float(np.median(ratios))
    return {"n": n, "found": len(ratios) / max(n, 1), "width_ratio": ratio, "centre_x": float(np.median(cx)),
            "centre_y": float(np.median(cy)), "margin": (1 / ratio - 1) / 2}


def crop_face(rgb: np.ndarray, box: Box, margin: float = FACE_MARGIN) -> np.ndarray:
    """The face as FER2013 stores it: a square crop around the box, 8-bit grayscale, 48x48.

    FER2013's faces were found automatically, centred, converted to grayscale and scaled to 48x48 (Goodfellow et
    al., 2013). Grayscale here is ITU-R BT.601 luma (as PIL's 'L' and OpenCV), the crop is widened by `margin` of
    the box on each side (the edge pixels are repeated where it leaves the image) and shrunk with area averaging.

    Args:
        rgb: (H, W, 3) uint8 RGB or (H, W) uint8 grayscale.
        box: the face, from detect_faces.
        margin: fraction of the box's side added on each side (0.1: FER2013's framing, see config.FACE_MARGIN).
    Returns:
        (48, 48) uint8.
    """
    gray = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    side = max(1, round(max(box.w, box.h) * (1 + 2 * margin)))
    x0 = round(box.x + box.w / 2 - side / 2)
    y0 = round(box.y + box.h / 2 - side / 2)
    pad = max(0, -x0, -y0, x0 + side - gray.shape[1], y0 + side - gray.shape[0])
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = gray[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
    interpolation = cv2.INTER_AREA if side >= IMAGE_SIZE else cv2.INTER_CUBIC
    return cv2.resize(crop, (IMAGE_SIZE, IMAGE_SIZE), interpolation=interpolation)


# ---------------------------------------------------------------- the model

def load_fer_model(path: str | os.PathLike | None = None, calibrated: bool = True):
    """Load a trained emotion model and check that it is one of this course's.

    Args:
        path: a .keras file; None: the published model (`config.PUBLISHED_MODEL`).
        calibrated: apply the temperature in calibration.json beside the file, when there is one
            (fer_utils.calibration: same predicted classes, honest confidences).
    Returns:
        The keras.Model (input (None, 48, 48, 1) uint8 pixels, output (None, 7) softmax in CLASSES order); a float32
        copy (`explain.float32_copy`) where the precision it was trained in is not native here
        (`training.computes_natively`: bf16 emulated on a CPU without AVX512-BF16 is slow).
    Raises:
        InputError naming the file: missing, not a Keras model, not shaped like ours, or a broken calibration.json.
    """
    path = Path(path) if path is not None else published_model()
    if not path.is_file():
        raise InputError(f"{path}: model file does not exist")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not a Keras model file (a .keras model is a zip archive; this is not one)")
    import keras
    from . import augment  # noqa: F401  (registers the augmentation layers a model may hold)

    try:
        model = keras.models.load_model(path)
    except Exception as err:  # Keras raises ValueError, OSError, TypeError... depending on how the file is wrong
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise InputError(f"{path}: not a Keras model file this Keras can load ({type(err).__name__}: "
                         f"{first[:200]})") from None
    expected_in, expected_out = (None, IMAGE_SIZE, IMAGE_SIZE, 1), (None, len(CLASSES))
    got_in, got_out = getattr(model, "input_shape", None), getattr(model, "output_shape", None)
    if tuple(got_in or ()) != expected_in or tuple(got_out or ()) != expected_out:
        raise InputError(f"{path}: not one of this course's emotion models: input {got_in}, output {got_out}; "
                         f"expected input {expected_in} (48x48 grayscale) and output {expected_out} "
                         f"(the 7 emotions {', '.join(CLASSES)})")
    from .training import computes_natively

    if not computes_natively(model):  # e.g. a mixed_bfloat16 model on a CPU or GPU without native bf16
        from .explain import float32_copy

        model = float32_copy(model)
    from .calibration import load_temperature, with_temperature

    try:
        temperature = load_temperature(path) if calibrated else None
    except ValueError as err:
        raise InputError(str(err)) from None
    return with_temperature(model, temperature) if temperature else model


def classify(model, crops: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Emotion probabilities of 48x48 crops.

    Args:
        model: from load_fer_model.
        crops: (N, 48, 48) or (N, 48, 48, 1) uint8.
    Returns:
        (N, 7) float32, columns in CLASSES order.
    """
    x = np.asarray(crops, dtype=np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
    if len(x) == 0:
        return np.zeros((0, len(CLASSES)), dtype=np.float32)
    # predict_on_batch runs the compiled predict step: ~8x faster than model(x) for a face or two per call.
    out = [np.asarray(model.predict_on_batch(x[i:i + 256]), dtype=np.float32) for i in range(0, len(x), 256)]
    return np.concatenate(out)


# ---------------------------------------------------------------- drawing

def annotate(rgb: np.ndarray, boxes: list[Box], probs: np.ndarray) -> np.ndarray:
    """A copy of the photo with each face's box, top emotion and a small bar chart of its 7 probabilities.

    Args:
        rgb: (H, W, 3) uint8.
        boxes: the faces.
        probs: (len(boxes), 7).
    Returns:
        (H, W, 3) uint8.
    """
    out = np.ascontiguousarray(rgb.copy())
    height, width = out.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    if not boxes:
        size = max(0.5, width / 800)
        (tw, th), base = cv2.getTextSize("no face found", font, size, 2)
        cv2.rectangle(out, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
        cv2.putText(out, "no face found", (4, th + 4), font, size, (255, 80, 80), 2, cv2.LINE_AA)
    for box, p in zip(boxes, probs):
        thick = max(1, round(max(box.w, 60) / 60))
        top = int(np.argmax(p))
        cv2.rectangle(out, (box.x, box.y), (box.x + box.w, box.y + box.h), (255, 200, 0), thick)
        # The bar panel: one row per emotion, beside the box (right if it fits, else left), clamped inside the image.
        right, left = width - (box.x + box.w + thick), box.x - thick
        panel_w = min(max(60, round(box.w * 0.8)), max(right, left, 60))
        row = max(9, round(panel_w / 8))
        scale = row / 26
        if panel_w <= right:
            px, py = box.x + box.w + thick, box.y
        elif panel_w <= left:
            px, py = box.x - panel_w - thick, box.y
        else:  # no room beside the box: below it
            px, py = box.x, box.y + box.h + thick
        px = min(max(0, px), max(0, width - panel_w))
        py = min(max(0, py), max(0, height - row * len(CLASSES)))
        overlay = out.copy()
        cv2.rectangle(overlay, (px, py), (px + panel_w, py + row * len(CLASSES)), (0, 0, 0), -1)
        out = cv2.addWeighted(overlay, 0.55, out, 0.45, 0)
        label_w = round(panel_w * 0.38)
        for k, name in enumerate(CLASSES):
            y = py + k * row
            colour = (255, 200, 0) if k == top else (235, 235, 235)
            cv2.putText(out, name[:3], (px + 2, y + row - 3), font, scale, colour, 1, cv2.LINE_AA)
            bar = round((panel_w - label_w - 4) * float(p[k]))
            cv2.rectangle(out, (px + label_w, y + 2), (px + label_w + max(bar, 1), y + row - 2), colour, -1)
        text = f"{CLASSES[top]} {p[top]:.0%}"
        size = max(0.4, box.w / 250)
        (tw, th), base = cv2.getTextSize(text, font, size, thick)
        ty = box.y - 4 if box.y - th - base - 4 >= 0 else min(height - base, box.y + box.h + th + 4)
        cv2.rectangle(out, (box.x, ty - th - 2), (box.x + tw + 4, ty + base), (0, 0, 0), -1)
        cv2.putText(out, text, (box.x + 2, ty), font, size, (255, 200, 0), thick, cv2.LINE_AA)
    return out


# ---------------------------------------------------------------- inputs

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


# ---------------------------------------------------------------- the whole job

def face_rows(file: str, frame: int | None, seconds: float | None, boxes: list[Box],
              probs: np.ndarray) -> list[dict]:
    """Output rows for one photo or video frame: one per face, or a single 'no face' row."""
    where = {"file": file, "frame": frame, "time_s": seconds}
    if not boxes:
        return [{**dict.fromkeys(ROW_FIELDS), **where, "status": NO_FACE}]
    rows = []
    for i, (box, p) in enumerate(zip(boxes, probs)):
        top = int(np.argmax(p))
        rows.append({**where, "face": i, "x": box.x, "y": box.y, "w": box.w, "h": box.h, "emotion": CLASSES[top],
                     "confidence": round(float(p[top]), 4),
                     **{c: round(float(v), 4) for c, v in zip(CLASSES, p)}, "status": OK})
    return rows


@dataclass
class PredictSummary:
    """What predict_paths did: counts, the problems (one line each) and the files it wrote."""

    files: int = 0
    read: int = 0
    frames: int = 0
    faces: int = 0
    no_face: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    csv: Path | None = None
    annotated: list[Path] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_status(self) -> int:
        """0 when every input was read and a face was found somewhere; 1 otherwise."""
        return 0 if self.faces > 0 and not self.problems else 1


def _unique(out: Path, stem: str, used: set[str]) -> Path:
    """out/<stem>_faces.png, with a counter when two inputs share a stem."""
    name, k = f"{stem}_faces.png", 1
    while name in used:
        k += 1
        name = f"{stem}_{k}_faces.png"
    used.add(name)
    return out / name


def predict_paths(inputs: Iterable[str | os.PathLike], model, out: str | os.PathLike, every: int = 1,
                  margin: float = FACE_MARGIN, log: IO[str] | None = None,
                  on_row: Callable[[dict], None] | None = None) -> PredictSummary:
    """Find and classify every face in photos, folders of photos and videos.

    Writes out/predictions.csv (ROW_FIELDS; streamed, flushed after each photo or frame) and, per photo,
    out/<name>_faces.png (annotated). A photo or frame with no face gets a 'no face' row, a file that cannot be
    read an 'error: ...' row; both are also reported on `log`. Processing goes on over the other inputs.

    Args:
        inputs: photos, videos and folders of them.
        model: from load_fer_model.
        out: output folder (created).
        every: in videos, analyse every N-th frame.
        margin: crop margin (see crop_face).
        log: where one-line problems and per-video notes go (default stderr).
        on_row: called with each row as it is written (e.g. to print it).
    Returns:
        A PredictSummary (its `rows` hold every row written).
    """
    log = log or sys.stderr
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    files, problems = expand_inputs(inputs)
    summary = PredictSummary(files=len(files), csv=out / CSV_NAME)
    for problem in problems:
        print(problem, file=log)
        if ": skipped," not in problem:
            summary.problems.append(problem)
    used: set[str] = set()
    with open(summary.csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ROW_FIELDS)
        writer.writeheader()

        def emit(rows: list[dict]) -> None:
            writer.writerows(rows)
            handle.flush()
            summary.rows.extend(rows)
            for row in rows:
                if on_row:
                    on_row(row)

        for path in files:
            try:
                if is_video(path):
                    _predict_video(path, model, every, margin, summary, emit, log)
                else:
                    rgb, note = load_photo(path)
                    if note:
                        print(f"{path}: {note}", file=log)
                    boxes = detect_faces(rgb)
                    probs = classify(model, [crop_face(rgb, b, margin) for b in boxes])
                    summary.read += 1
                    summary.faces += len(boxes)
                    if not boxes:
                        summary.no_face.append(str(path))
                        print(f"{path}: no face found", file=log)
                    target = _unique(out, path.stem, used)
                    Image.fromarray(annotate(rgb, boxes, probs)).save(target)
                    summary.annotated.append(target)
                    emit(face_rows(str(path), None, None, boxes, probs))
            except InputError as err:
                print(str(err), file=log)
                summary.problems.append(str(err))
                emit([{**dict.fromkeys(ROW_FIELDS), "file": str(path),
                       "status": f"error: {str(err).removeprefix(f'{path}: ')}"}])
    summary.seconds = time.perf_counter() - start
    return summary


def _predict_video(path: Path, model, every: int, margin: float, summary: PredictSummary,
                   emit: Callable[[list[dict]], None], log: IO[str]) -> None:
    """Stream one video's rows (see predict_paths); print a one-line note on it."""
    analysed = with_face = faces = 0
    started = time.perf_counter()
    for index, seconds, rgb in video_frames(path, every):
        boxes = detect_faces(rgb)
        probs = classify(model, [crop_face(rgb, b, margin) for b in boxes])
        analysed += 1
        with_face += bool(boxes)
        faces += len(boxes)
        emit(face_rows(str(path), index, seconds, boxes, probs))
    summary.read += 1
    summary.frames += analysed
    summary.faces += faces
    elapsed = time.perf_counter() - started
    if not with_face:
        summary.no_face.append(str(path))
    print(f"{path}: {analysed} frame(s) analysed (every {every}), {with_face} with a face, {faces} face(s), "
          f"{analysed / max(elapsed, 1e-9):.1f} frames/s" + ("; no face found" if not with_face else ""), file=log)
