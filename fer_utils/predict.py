"""Predict the emotions of the faces in photos and videos: what `python -m fer_utils predict` runs.

A trained model is loaded and checked (load_fer_model); each face that fer_utils.faces finds and crops gets its 7
probabilities (classify); results go to a CSV (streamed), to the caller as rows and to annotated images (predict_paths).
"""

from __future__ import annotations

import csv
import os
import sys
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from .config import CLASSES, FACE_MARGIN, IMAGE_SIZE, PUBLISHED_MODEL, repo_path
from .faces import Box, annotate, crop_face, detect_faces
from .media import InputError, expand_inputs, is_video, load_photo, video_frames

ROW_FIELDS: tuple[str, ...] = ("file", "frame", "time_s", "face", "x", "y", "w", "h", "emotion", "confidence",
                               *CLASSES, "status")
"""Columns of predictions.csv: one row per face, or one per file (or video frame) with no face or an error."""
CSV_NAME = "predictions.csv"
OK, NO_FACE = "ok", "no face"


# ---------------------------------------------------------------- the model

def published_model() -> Path:
    """The committed SE-CNN (reports/se/model.keras), whatever the working directory.

    Returns:
        Its path in the clone this package is installed from.

    Raises:
        FileNotFoundError saying so when this install has no repository around it (`config.repo_path`).
    """
    return repo_path(PUBLISHED_MODEL)


def load_fer_model(path: str | os.PathLike | None = None, calibrated: bool = True, float32: bool = False):
    """Load a trained emotion model and check that it is one of this course's.

    Args:
        path: a .keras file; None: the published model (`config.PUBLISHED_MODEL`).
        calibrated: apply the temperature in calibration.json beside the file, when there is one
            (fer_utils.calibration: same predicted classes, honest confidences).
        float32: always a float32 copy, whatever the machine computes natively (`evaluate`: the published numbers
            are float32 evaluations, `evaluation.EVALUATION_PRECISION`, reproduced the same on every machine).
    Returns:
        The keras.Model (input (None, 48, 48, 1) uint8 pixels, output (None, 7) softmax in CLASSES order); a float32
        copy (`explain.float32_copy`) where the precision it was trained in is not native here
        (`hardware.computes_natively`: bf16 emulated on a CPU without AVX512-BF16 is slow).
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
    from .hardware import computes_natively

    if float32 or not computes_natively(model):  # e.g. a mixed_bfloat16 model on a CPU or GPU without native bf16
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


@dataclass
class _Output:
    """Where predict_paths's results go: the CSV (flushed after each photo or frame), the rows kept in the summary,
    the annotated photos, and one line per note or problem on the log."""

    writer: csv.DictWriter
    handle: IO[str]
    folder: Path
    summary: PredictSummary
    log: IO[str]
    on_row: Callable[[dict], None] | None = None
    used: set[str] = field(default_factory=set)

    def rows(self, rows: list[dict]) -> None:
        """Write `rows`, flush them, keep them, and hand each to on_row."""
        self.writer.writerows(rows)
        self.handle.flush()
        self.summary.rows.extend(rows)
        for row in rows:
            if self.on_row:
                self.on_row(row)

    def say(self, line: str, problem: bool = False) -> None:
        """One line on the log; a problem is also kept in the summary."""
        print(line, file=self.log)
        if problem:
            self.summary.problems.append(line)

    def annotated(self, stem: str, image: np.ndarray) -> None:
        """Save folder/<stem>_faces.png, with a counter when two inputs share a stem."""
        name, k = f"{stem}_faces.png", 1
        while name in self.used:
            k += 1
            name = f"{stem}_{k}_faces.png"
        self.used.add(name)
        Image.fromarray(image).save(self.folder / name)
        self.summary.annotated.append(self.folder / name)


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
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    files, problems = expand_inputs(inputs)
    summary = PredictSummary(files=len(files), csv=out / CSV_NAME)
    with open(summary.csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ROW_FIELDS)
        writer.writeheader()
        output = _Output(writer, handle, out, summary, log or sys.stderr, on_row)
        for problem in problems:  # a skipped file is said, not counted as a problem
            output.say(problem, problem=": skipped," not in problem)
        for path in files:
            try:
                if is_video(path):
                    _predict_video(path, model, every, margin, output)
                else:
                    _predict_photo(path, model, margin, output)
            except InputError as err:
                output.say(str(err), problem=True)
                output.rows([{**dict.fromkeys(ROW_FIELDS), "file": str(path),
                              "status": f"error: {str(err).removeprefix(f'{path}: ')}"}])
    summary.seconds = time.perf_counter() - start
    return summary


def _classified_faces(rgb: np.ndarray, model, margin: float) -> tuple[list[Box], np.ndarray]:
    """The faces of one photo or frame, and their probabilities."""
    boxes = detect_faces(rgb)
    return boxes, classify(model, [crop_face(rgb, b, margin) for b in boxes])


def _predict_photo(path: Path, model, margin: float, output: _Output) -> None:
    """Write one photo's rows and its annotated copy (see predict_paths)."""
    rgb, note = load_photo(path)
    if note:
        output.say(f"{path}: {note}")
    boxes, probs = _classified_faces(rgb, model, margin)
    output.summary.read += 1
    output.summary.faces += len(boxes)
    if not boxes:
        output.summary.no_face.append(str(path))
        output.say(f"{path}: no face found")
    output.annotated(path.stem, annotate(rgb, boxes, probs))
    output.rows(face_rows(str(path), None, None, boxes, probs))


def _predict_video(path: Path, model, every: int, margin: float, output: _Output) -> None:
    """Stream one video's rows (see predict_paths); say how it went in one line."""
    analysed = with_face = faces = 0
    started = time.perf_counter()
    for index, seconds, rgb in video_frames(path, every):
        boxes, probs = _classified_faces(rgb, model, margin)
        analysed += 1
        with_face += bool(boxes)
        faces += len(boxes)
        output.rows(face_rows(str(path), index, seconds, boxes, probs))
    summary = output.summary
    summary.read += 1
    summary.frames += analysed
    summary.faces += faces
    elapsed = time.perf_counter() - started
    if not with_face:
        summary.no_face.append(str(path))
    output.say(f"{path}: {analysed} frame(s) analysed (every {every}), {with_face} with a face, {faces} face(s), "
               f"{analysed / max(elapsed, 1e-9):.1f} frames/s" + ("; no face found" if not with_face else ""))
