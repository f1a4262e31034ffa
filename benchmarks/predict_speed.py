"""Speed of `python -m fer_utils predict`: faces per second for detection and for classification, and the detectors.

(1) The detectors compared on the photos that ship in packages (scikit-image's astronaut and cameraman, matplotlib's
    Grace Hopper) and on scikit-image's bundled LFW subset (100 faces, 100 background patches): boxes per photo,
    milliseconds per photo, faces found (fer_utils.face_studies.compare_detectors).
(2) Detection: photos/s and faces/s of the chosen detector on each sample photo and on a 1280x720 video frame.
(3) Classification: faces/s of the model on 48x48 crops, one at a time (as `predict` does per photo or frame) and
    in batches of 64.
(4) End to end: frames/s of `predict` on a 640x480 video (MJPG, written here) with one face per frame.
(5) With --data: FER2013's framing measured with the same detector (fer_utils.face_studies.fer_framing), the source of
    config.FACE_MARGIN.

    python benchmarks/predict_speed.py [--model reports/se/model.keras] [--repeat 20] [--data PATH]

Every rate is the median of --repeat timed runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fer_utils import face_studies, faces, predict
from fer_utils.config import FACE_MARGIN, HAAR_CASCADE
from fer_utils.evaluation import markdown_table


def median_seconds(fn, repeat: int) -> float:
    """Median wall time of `fn()` over `repeat` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def frame_1280x720(rgb: np.ndarray) -> np.ndarray:
    """A 1280x720 video frame with the photo in its middle, on gray."""
    frame = np.full((720, 1280, 3), 120, dtype=np.uint8)
    h, w = rgb.shape[:2]
    frame[(720 - h) // 2:(720 - h) // 2 + h, (1280 - w) // 2:(1280 - w) // 2 + w] = rgb
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a .keras model (default: the published SE-CNN)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--data", default=None, help="FER2013 (archive.zip...) to measure its framing (section 5)")
    parser.add_argument("--per-class", type=int, default=100, help="FER2013 training images per class for (5)")
    args = parser.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads); load average at start "
          f"{os.getloadavg()[0]:.1f} (other processes contend for the cores)")
    photos = {name: np.asarray(Image.open(path).convert("RGB")) for name, path in face_studies.sample_photos().items()}

    print("\n## (1) Detectors")
    table = face_studies.compare_detectors(photos, repeat=5)
    print("\n".join(markdown_table(table, {"ms per photo": ".0f"})))

    print(f"\n## (2) Detection ({HAAR_CASCADE})")
    print("| image | size | faces | ms | photos/s | faces/s |\n|---|---|---:|---:|---:|---:|")
    images = {**photos, "astronaut in a 1280x720 frame": frame_1280x720(photos["astronaut"])}
    for name, rgb in images.items():
        n = len(faces.detect_faces(rgb))
        seconds = median_seconds(lambda rgb=rgb: faces.detect_faces(rgb), args.repeat)
        print(f"| {name} | {rgb.shape[1]}x{rgb.shape[0]} | {n} | {1000 * seconds:.0f} | {1 / seconds:.1f} | "
              f"{n / seconds:.1f} |")

    print("\n## (3) Classification")
    model = predict.load_fer_model(args.model)
    print(f"model: {os.path.relpath(args.model or predict.published_model())} ({model.count_params():,} parameters)")
    crop = faces.crop_face(photos["astronaut"], faces.detect_faces(photos["astronaut"])[0], FACE_MARGIN)
    print("| batch | ms per call | faces/s |\n|---:|---:|---:|")
    for batch in (1, 64):
        crops = np.repeat(crop[None], batch, axis=0)
        seconds = median_seconds(lambda crops=crops: predict.classify(model, crops), args.repeat)
        print(f"| {batch} | {1000 * seconds:.1f} | {batch / seconds:.0f} |")
    seconds = median_seconds(lambda: faces.crop_face(photos["astronaut"], faces.Box(177, 66, 95, 95)), args.repeat)
    print(f"cropping (crop_face): {1000 * seconds:.2f} ms per face")

    print("\n## (4) End to end: a 640x480 video, one face per frame")
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp, "clip.avi")
        frame = np.full((480, 640, 3), 120, dtype=np.uint8)
        frame[:, 64:576] = photos["astronaut"][16:496]
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (640, 480))
        n_frames = 50
        for i in range(n_frames):
            writer.write(cv2.cvtColor(np.roll(frame, 2 * i, axis=1), cv2.COLOR_RGB2BGR))  # the face moves
        writer.release()
        for every in (1, 5):
            summary = predict.predict_paths([video], model, Path(tmp, "out"), every=every, log=io.StringIO())
            print(f"--every {every}: {summary.frames} of {n_frames} frames analysed, {summary.faces} faces, "
                  f"{summary.seconds:.2f} s: {summary.frames / summary.seconds:.1f} analysed frames/s, "
                  f"{n_frames / summary.seconds:.1f} video frames/s")

    if args.data:
        from fer_utils.data import load_data

        print("\n## (5) FER2013's framing, measured with the same detector")
        data = load_data(args.data, per_class=args.per_class, seed=0)
        x, _ = data.xy("train")
        framing = face_studies.fer_framing(x)
        print(f"{framing['n']} training images: a face found in {framing['found']:.0%}; median box side "
              f"{framing['width_ratio']:.3f} of the image, centre ({framing['centre_x']:.3f}, "
              f"{framing['centre_y']:.3f}); margin per side that reproduces it: {framing['margin']:.3f} "
              f"(config.FACE_MARGIN = {FACE_MARGIN})")


    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
