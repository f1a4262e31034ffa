"""Faces in an image: find them (OpenCV's Haar cascade), crop each as FER2013 was made, draw what the model said.

The steps of `python -m fer_utils predict` between reading a photo (fer_utils.media) and classifying its faces
(fer_utils.predict); fer_utils.face_studies compares these detectors and measures FER2013's framing with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .config import (CLASSES, DETECT_MAX_SIDE, FACE_MARGIN, HAAR_CASCADE, HAAR_MIN_NEIGHBORS, HAAR_SCALE_FACTOR,
                     IMAGE_SIZE, MIN_FACE)
from .media import InputError


@dataclass(frozen=True)
class Box:
    """A face's bounding box in pixels of the original (upright) image."""

    x: int
    y: int
    w: int
    h: int


# ---------------------------------------------------------------- finding faces

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


# ---------------------------------------------------------------- cropping and drawing

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
