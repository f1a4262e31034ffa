"""How well the face detection of `predict` works, measured: its detectors compared, FER2013's framing measured.

For benchmarks/predict_speed.py and notebook 07, not for `predict` itself; the photos and faces measured ship inside
installed packages (scikit-image, matplotlib), so nothing is downloaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from .config import IMAGE_SIZE
from .faces import Box, detect_faces, detect_faces_lbp


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
