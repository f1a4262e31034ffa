"""`python -m fer_utils predict` (fer_utils.media, faces, predict): faces in real photos and videos, every bad input.

The real face is scikit-image's bundled astronaut photo (Eileen Collins, 512x512); its face box, found by OpenCV's
Haar cascade, is near x=177, y=66, 95x95. Models are tiny and untrained (plumbing only), except in the one slow test.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fer_utils import faces, media, predict
from fer_utils.cli import main

skimage_data = pytest.importorskip("skimage.data")
CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")  # written out, not imported
ASTRONAUT_BOX = (177, 66, 95, 95)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """A tiny untrained model of the course's architecture, saved once."""
    from fer_utils.models import build_cnn

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_cnn(filters=(4, 8, 16), dense_units=8).save(path)
    return path


@pytest.fixture(scope="module")
def model(model_path):
    return predict.load_fer_model(model_path)


def save(array: np.ndarray, path: Path, mode: str | None = None, **kwargs) -> Path:
    """Write a uint8 array as an image file, converted to `mode` first."""
    im = Image.fromarray(array)
    (im.convert(mode) if mode else im).save(path, **kwargs)
    return path


def read_rows(out: Path) -> list[dict]:
    with open(out / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def near(box, expected, tol: float = 0.1) -> bool:
    """Each coordinate within `tol` of the expected face size."""
    return all(abs(int(a) - b) <= tol * expected[2] for a, b in zip(box, expected))


# ------------------------------------------------------------------ the happy path

def test_sample_photo_face_is_found_and_csv_and_annotated_image_are_written(astronaut, model_path, tmp_path):
    photo = save(astronaut, tmp_path / "astronaut.png")
    assert main(["predict", str(photo), "--model", str(model_path), "--out", str(tmp_path / "out")]) == 0
    (row,) = read_rows(tmp_path / "out")
    assert row["status"] == "ok" and row["file"] == str(photo)
    assert near((row["x"], row["y"], row["w"], row["h"]), ASTRONAUT_BOX)
    assert abs(sum(float(row[c]) for c in CLASSES) - 1) < 1e-3
    assert row["emotion"] == max(CLASSES, key=lambda c: float(row[c]))
    annotated = Image.open(tmp_path / "out" / "astronaut_faces.png")
    assert annotated.size == (512, 512)
    assert not np.array_equal(np.asarray(annotated.convert("RGB")), astronaut)  # something was drawn


def test_json_prints_each_face_with_its_seven_probabilities(astronaut, model_path, tmp_path, capsys):
    photo = save(astronaut, tmp_path / "astronaut.png")
    assert main(["predict", str(photo), "--model", str(model_path), "--out", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["frame"] is None
    assert sorted(c for c in CLASSES if isinstance(rows[0][c], float)) == sorted(CLASSES)


def test_crop_is_48x48_grayscale_and_margin_widens_it():
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    image[50:150, 50:150] = 255  # the "face" is the white square
    box = faces.Box(50, 50, 100, 100)
    tight, wide = faces.crop_face(image, box, margin=0.0), faces.crop_face(image, box, margin=0.5)
    assert tight.shape == (48, 48) and tight.dtype == np.uint8
    assert tight.min() == 255
    assert wide[24, 24] == 255 and wide[0, 0] == 0 and wide[47, 47] == 0


def test_crop_beyond_the_image_edge_repeats_the_edge_pixels():
    image = np.full((100, 100), 50, dtype=np.uint8)
    image[:, :10] = 200  # the left edge column is bright
    crop = faces.crop_face(image, faces.Box(0, 30, 40, 40), margin=0.5)
    assert crop.shape == (48, 48)
    assert crop[24, 0] == 200  # replicated edge, not black padding


def test_several_faces_are_all_reported_left_to_right(astronaut, model, tmp_path):
    photo = save(np.hstack([astronaut, astronaut]), tmp_path / "two.png")
    summary = predict.predict_paths([photo], model, tmp_path / "out", log=io.StringIO())
    boxes = [(r["x"], r["y"], r["w"], r["h"]) for r in summary.rows]
    assert [r["face"] for r in summary.rows] == [0, 1]
    assert near(boxes[0], ASTRONAUT_BOX) and near(boxes[1], (ASTRONAUT_BOX[0] + 512, *ASTRONAUT_BOX[1:]))


def test_video_rows_carry_frame_and_time_and_skip_frames(astronaut, model, tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (512, 512))
    for _ in range(5):
        writer.write(cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    writer.release()
    summary = predict.predict_paths([video], model, tmp_path / "out", every=2, log=io.StringIO())
    rows = read_rows(tmp_path / "out")
    assert [(r["frame"], r["time_s"]) for r in rows] == [("0", "0.0"), ("2", "0.2"), ("4", "0.4")]
    assert all(r["status"] == "ok" for r in rows) and summary.frames == 3


# ------------------------------------------------------------------ bad photos and files

def test_text_file_named_jpg_is_named_in_one_line_and_exits_1(model_path, tmp_path, capsys):
    fake = tmp_path / "holiday.jpg"
    fake.write_text("not a picture")
    assert main(["predict", str(fake), "--model", str(model_path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"{fake}: not an image file" in err and "Traceback" not in err
    (row,) = read_rows(tmp_path / "out")
    assert row["status"].startswith("error: not an image file")


def test_truncated_jpeg_is_reported_and_the_next_photo_still_processed(astronaut, model, tmp_path):
    good = save(astronaut, tmp_path / "b_good.jpg")
    data = good.read_bytes()
    bad = tmp_path / "a_truncated.jpg"
    bad.write_bytes(data[: len(data) // 2])
    log = io.StringIO()
    summary = predict.predict_paths([tmp_path], model, tmp_path / "out", log=log)
    assert f"{bad}: unreadable or truncated image" in log.getvalue()
    assert [r["status"] for r in summary.rows] == [f"error: {summary.problems[0].split(': ', 1)[1]}", "ok"]
    assert summary.exit_status == 1


def test_unreadable_video_is_reported(model, tmp_path):
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video")
    log = io.StringIO()
    summary = predict.predict_paths([fake], model, tmp_path / "out", log=log)
    assert f"{fake}: not a photo or a video" in log.getvalue()
    assert summary.rows[0]["status"].startswith("error:")


def test_photo_without_a_face_gets_a_row_and_a_line_and_exits_1(model_path, tmp_path, capsys):
    blank = save(np.full((300, 400, 3), 128, dtype=np.uint8), tmp_path / "wall.png")
    assert main(["predict", str(blank), "--model", str(model_path), "--out", str(tmp_path / "out")]) == 1
    assert f"{blank}: no face found" in capsys.readouterr().err
    (row,) = read_rows(tmp_path / "out")
    assert row["status"] == "no face" and row["file"] == str(blank)
    assert (tmp_path / "out" / "wall_faces.png").is_file()


def test_photo_without_a_face_beside_one_with_a_face_exits_0(astronaut, model, tmp_path):
    blank = save(np.full((300, 400, 3), 128, dtype=np.uint8), tmp_path / "a_wall.png")
    face = save(astronaut, tmp_path / "b_astronaut.png")
    summary = predict.predict_paths([blank, face], model, tmp_path / "out", log=io.StringIO())
    assert [r["status"] for r in summary.rows] == ["no face", "ok"]
    assert summary.no_face == [str(blank)] and summary.exit_status == 0


def test_large_photo_is_downscaled_for_detection_and_boxes_are_in_original_pixels(astronaut, monkeypatch):
    big = cv2.resize(astronaut, (3072, 3072), interpolation=cv2.INTER_LINEAR)  # 6x
    seen = []
    real = faces.face_detector()

    class Spy:
        def detectMultiScale(self, gray, **kwargs):  # noqa: N802 (OpenCV's name)
            seen.append(gray.shape)
            return real.detectMultiScale(gray, **kwargs)

    monkeypatch.setattr(faces, "face_detector", lambda cascade: Spy())
    (box,) = faces.detect_faces(big)
    assert max(seen[0]) == faces.DETECT_MAX_SIDE
    assert near((box.x, box.y, box.w, box.h), tuple(6 * v for v in ASTRONAUT_BOX))


def test_grayscale_photo_face_is_found(astronaut, tmp_path):
    rgb, _ = media.load_photo(save(astronaut, tmp_path / "gray.png", mode="L"))
    assert rgb.shape == (512, 512, 3)
    assert [near(tuple(vars(b).values()), ASTRONAUT_BOX) for b in faces.detect_faces(rgb)] == [True]


def test_rgba_photo_is_composed_on_white_and_face_found(astronaut, tmp_path):
    rgba = np.dstack([astronaut, np.full((512, 512), 255, dtype=np.uint8)])
    rgba[:10, :10, 3] = 0  # a transparent corner (its stored colour is the photo's)
    rgb, _ = media.load_photo(save(rgba, tmp_path / "rgba.png"))
    assert (rgb[:10, :10] == 255).all()
    assert len(faces.detect_faces(rgb)) == 1


def test_16_bit_photo_is_scaled_to_8_bits_not_clipped(astronaut, tmp_path):
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    path = tmp_path / "deep.png"
    Image.fromarray((gray.astype(np.uint16) * 257)).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb, _ = media.load_photo(path)
    assert np.abs(rgb[..., 0].astype(int) - gray).max() <= 1
    assert len(faces.detect_faces(rgb)) == 1


def test_cmyk_jpeg_face_is_found(astronaut, tmp_path):
    path = save(astronaut, tmp_path / "print.jpg", mode="CMYK", quality=95)
    assert Image.open(path).mode == "CMYK"
    rgb, _ = media.load_photo(path)
    assert np.abs(rgb.astype(int) - astronaut).mean() < 10  # colours survive the round trip
    assert len(faces.detect_faces(rgb)) == 1


def test_exif_rotated_photo_is_made_upright_before_detection(astronaut, tmp_path):
    upright = astronaut[:400]  # 512 wide, 400 high, so a wrong orientation shows in the shape
    stored = np.ascontiguousarray(np.rot90(upright))  # what a camera held sideways writes
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    rgb, _ = media.load_photo(path)
    assert rgb.shape == (400, 512, 3)
    (box,) = faces.detect_faces(rgb)
    assert near((box.x, box.y, box.w, box.h), ASTRONAUT_BOX)


def test_animated_gif_uses_the_first_frame_and_says_so(astronaut, tmp_path):
    frames = [Image.fromarray(astronaut), Image.fromarray(astronaut[:, ::-1])]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    rgb, note = media.load_photo(path)
    assert rgb.shape == (512, 512, 3) and note == "2 frames, only the first is used"


# ------------------------------------------------------------------ inputs and models

def test_empty_folder_is_named_and_exits_1_before_loading_a_model(tmp_path, capsys):
    empty = tmp_path / "photos"
    empty.mkdir()
    assert main(["predict", str(empty), "--model", str(tmp_path / "never_loaded.keras")]) == 1
    err = capsys.readouterr().err
    assert f"{empty}: folder holds no photo or video" in err and "never_loaded" not in err


def test_missing_input_is_named_and_the_others_still_processed(astronaut, model, tmp_path):
    face = save(astronaut, tmp_path / "astronaut.png")
    log = io.StringIO()
    summary = predict.predict_paths([tmp_path / "nope.jpg", face], model, tmp_path / "out", log=log)
    assert f"{tmp_path / 'nope.jpg'}: no such file or folder" in log.getvalue()
    assert summary.faces == 1 and summary.exit_status == 1


def test_folder_files_with_other_suffixes_are_listed_as_skipped(astronaut, model, tmp_path):
    folder = tmp_path / "album"
    folder.mkdir()
    save(astronaut, folder / "astronaut.png")
    (folder / "notes.txt").write_text("hello")
    log = io.StringIO()
    summary = predict.predict_paths([folder], model, tmp_path / "out", log=log)
    assert f"{folder / 'notes.txt'}: skipped" in log.getvalue()
    assert summary.faces == 1 and summary.exit_status == 0


def test_model_that_is_not_ours_is_rejected_with_its_shapes(tmp_path, astronaut, capsys):
    import keras

    inputs = keras.Input((32, 32, 3))
    other = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    other.save(tmp_path / "cifar.keras")
    photo = save(astronaut, tmp_path / "astronaut.png")
    assert main(["predict", str(photo), "--model", str(tmp_path / "cifar.keras"), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "not one of this course's emotion models" in err and "(None, 32, 32, 3)" in err and "(None, 10)" in err


def test_model_file_that_is_not_a_keras_file_is_rejected(tmp_path):
    fake = tmp_path / "model.keras"
    fake.write_text("weights")
    with pytest.raises(media.InputError, match=r"model\.keras: not a Keras model file"):
        predict.load_fer_model(fake)


def test_every_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["predict", str(tmp_path), "--every", "0"])
    assert "--every" in capsys.readouterr().err


@pytest.mark.slow
def test_published_se_model_sees_the_smiling_astronaut_as_happy(astronaut):
    model = predict.load_fer_model()  # reports/se/model.keras
    (box,) = faces.detect_faces(astronaut)
    probs = predict.classify(model, [faces.crop_face(astronaut, box)])
    assert CLASSES[int(probs[0].argmax())] == "happy"


def test_notebook_07_uses_fer2013_only_for_numbers():
    """Its executed copy is published in reports/: FER2013 may be measured there (framing), never shown."""
    import re

    notebook = Path(__file__).resolve().parent.parent / "notebooks" / "07_try_it_yourself.ipynb"
    source = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]
                       if c["cell_type"] == "code")
    assert sorted(set(re.findall(r"\bdata\.\w+", source))) == ["data.synthetic", "data.xy"]
    assert source.count("data.xy(") == 1 and 'face_studies.fer_framing(data.xy("train")[0])' in source


def test_the_default_model_carries_its_published_temperature():
    """predict's default model ends in the temperature of the calibration.json beside it; its classes are the raw
    model's (temperature scaling only softens confidences)."""
    from fer_utils.calibration import apply_temperature, load_temperature

    path = predict.published_model()
    temperature = load_temperature(path)
    assert temperature is not None and temperature > 1, "the published model has no calibration.json (`calibrate`)"
    model, raw = predict.load_fer_model(), predict.load_fer_model(calibrated=False)
    assert model.layers[-1].name == "temperature" and raw.layers[-1].name != "temperature"
    assert model.layers[-1].temperature == pytest.approx(json.loads(path.with_name("calibration.json").read_text())[
        "temperature"])
    crops = np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    calibrated, plain = predict.classify(model, crops), predict.classify(raw, crops)
    np.testing.assert_allclose(calibrated, apply_temperature(plain, temperature), atol=1e-4)


def test_a_broken_calibration_file_is_named_in_one_line(tmp_path):
    import shutil

    shutil.copy(predict.published_model(), tmp_path / "model.keras")
    (tmp_path / "calibration.json").write_text("{not json")
    with pytest.raises(media.InputError, match="calibration.json"):
        predict.load_fer_model(tmp_path / "model.keras")
