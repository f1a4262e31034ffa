"""A deterministic synthetic stand-in for FER2013: 48x48 grayscale cartoon faces.

The 7 expressions differ in brows, eyes and mouth; pose, scale, lighting and noise vary at
random. It returns the same FerData structure as the real loader, so everything runs offline.
"""

from __future__ import annotations

import numpy as np

from .config import CLASSES, IMAGE_SIZE, PREFIX_TO_SPLIT, SPLITS
from .dataset import FerData

# Real FER2013 class counts (train, and the 7,178-image test folder); the synthetic set keeps
# their proportions so that the imbalance (few "disgust" faces) is there to be seen.
FER_TRAIN_COUNTS = (3995, 436, 4097, 7215, 4965, 4830, 3171)
FER_TEST_COUNTS = (958, 111, 1024, 1774, 1233, 1247, 831)

# Mean face parameters per expression:
# brow height shift (+ = lower), brow tilt (+ = inner ends down, a frown), eye opening,
# mouth curvature (+ = corners up), mouth opening, mouth half-width, mouth asymmetry.
EXPRESSIONS = {
    "angry":    (0.07, 0.28, 0.05, -0.04, 0.00, 0.27, 0.00),
    "disgust":  (0.05, 0.14, 0.04, -0.07, 0.03, 0.24, 0.12),
    "fear":     (-0.08, -0.20, 0.11, -0.03, 0.06, 0.30, 0.00),
    "happy":    (0.00, 0.00, 0.06, 0.15, 0.04, 0.35, 0.00),
    "neutral":  (0.00, 0.00, 0.08, 0.00, 0.00, 0.27, 0.00),
    "sad":      (-0.02, -0.26, 0.06, -0.12, 0.00, 0.27, 0.00),
    "surprise": (-0.15, 0.00, 0.12, 0.00, 0.16, 0.17, 0.00),
}
JITTER = np.array((0.035, 0.09, 0.018, 0.045, 0.025, 0.04, 0.04))


def make_synthetic_fer(scale: float = 0.1, seed: int = 0) -> FerData:
    """Synthetic FER-like data: class counts = real FER2013 counts x `scale` (val, test = half the test folder each)."""
    rng = np.random.default_rng(seed)
    images, labels, splits, ids = [], [], [], []
    for split in SPLITS:
        prefix = next(p for p, s in PREFIX_TO_SPLIT.items() if s == split)
        top = "train" if split == "train" else "test"
        counts = FER_TRAIN_COUNTS if split == "train" else tuple(c / 2 for c in FER_TEST_COUNTS)
        for label, cls in enumerate(CLASSES):
            for i in range(max(2, round(counts[label] * scale))):
                images.append(render_face(cls, rng))
                labels.append(label)
                splits.append(split)
                ids.append(f"{top}/{cls}/{prefix}{len(ids):06d}.png")
    return FerData(np.stack(images)[..., None], np.array(labels, dtype=np.int64), np.array(ids),
                   np.array(splits), source=f"synthetic(scale={scale}, seed={seed})", synthetic=True)


def render_face(expression: str, rng: np.random.Generator) -> np.ndarray:
    """Draw one 48x48 uint8 face with the given expression and a random pose, light and noise."""
    brow_y, brow_tilt, eye_open, curve, mouth_open, mouth_w, asym = (
        np.array(EXPRESSIONS[expression]) + JITTER * rng.standard_normal(7))
    # Pose: pixel grid -> face coordinates (u right, v down, face roughly in [-1, 1]).
    angle = rng.normal(0, 0.15)
    size = rng.uniform(0.75, 1.0) * IMAGE_SIZE / 2
    cx, cy = IMAGE_SIZE / 2 + rng.normal(0, 2.5, size=2)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE] + 0.5
    x, y = (xx - cx) / size, (yy - cy) / size
    u = np.cos(angle) * x + np.sin(angle) * y
    v = -np.sin(angle) * x + np.cos(angle) * y

    skin = rng.uniform(0.55, 0.85)
    img = np.full((IMAGE_SIZE, IMAGE_SIZE), rng.uniform(0.05, 0.5))
    img[(u / 0.78) ** 2 + (v / 0.98) ** 2 < 1] = skin
    dark = skin * rng.uniform(0.15, 0.4)
    au = np.abs(u)
    # Eyes: ellipses whose height is the eye opening.
    img[((au - 0.33) / 0.14) ** 2 + ((v + 0.18) / max(eye_open, 0.015)) ** 2 < 1] = dark
    # Brows: bars above the eyes; tilt lowers (frown) or raises (worry) their inner ends.
    brow_v = -0.42 + brow_y + brow_tilt * (0.5 - au) * 0.6
    img[(au > 0.12) & (au < 0.52) & (np.abs(v - brow_v) < 0.045)] = dark
    # Mouth: a parabola (corners up for a smile) and, where open, the dark gap beneath it.
    mouth_v = 0.48 - curve * ((u / max(mouth_w, 0.1)) ** 2 - 0.5) + asym * u
    in_mouth = np.abs(u) < mouth_w
    img[in_mouth & (v > mouth_v - 0.035) & (v < mouth_v + 0.035 + max(mouth_open, 0))] = dark
    if expression == "disgust":  # nose wrinkles
        img[(np.abs(u) < 0.12) & (np.abs(np.sin(v * 40)) < 0.3) & (v > 0.05) & (v < 0.25)] = dark
    # Lighting gradient, contrast and sensor noise.
    light = 1 + rng.normal(0, 0.15) * x + rng.normal(0, 0.15) * y
    img = img * light * rng.uniform(0.7, 1.2) + rng.normal(0, 0.05, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)
