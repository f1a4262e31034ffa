"""fer_utils.data: reading FER2013 from a zip, a folder tree or fer2013.csv, and rejecting bad data."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import (CSV_CODE, KAGGLE_CLASSES, PREFIX, csv_row, expected_counts, image_bytes, write_csv,
                      zip_folder)
from PIL import Image

from fer_utils.data import DataError, load_data, read_fer2013, resolve_data_path

SPLITS_ALL = ("train", "val", "test", "test_all")


def load_form(fer_files, form: str, **kwargs):
    return read_fer2013(getattr(fer_files, form), **kwargs)


def row_of(data, file_id: str) -> int:
    (idx,) = np.flatnonzero(data.file_ids == file_id)
    return int(idx)


# --- the three forms -------------------------------------------------------------------------------


def test_zip_and_folder_give_identical_data(fer_files):
    from_zip, from_folder = read_fer2013(fer_files.zip), read_fer2013(fer_files.folder)
    np.testing.assert_array_equal(from_zip.images, from_folder.images)
    np.testing.assert_array_equal(from_zip.labels, from_folder.labels)
    np.testing.assert_array_equal(from_zip.splits, from_folder.splits)
    np.testing.assert_array_equal(from_zip.file_ids, from_folder.file_ids)


def test_zip_with_one_wrapper_folder_reads_like_a_plain_zip(fer_files, tmp_path):
    wrapped = read_fer2013(zip_folder(fer_files.folder, tmp_path / "wrapped.zip", wrapper="fer2013/"))
    plain = read_fer2013(fer_files.zip)
    np.testing.assert_array_equal(wrapped.images, plain.images)
    np.testing.assert_array_equal(wrapped.file_ids, plain.file_ids)


def test_file_ids_are_the_paths_in_the_kaggle_layout(fer_files):
    data = read_fer2013(fer_files.folder)
    assert sorted(data.file_ids) == sorted(r.rel for r in fer_files.records)


def test_images_are_the_decoded_grayscale_jpegs(fer_files):
    data = read_fer2013(fer_files.folder)
    assert data.images.dtype == np.uint8 and data.images.shape == (len(fer_files.records), 48, 48, 1)
    for r in fer_files.records:
        with Image.open(fer_files.folder / r.rel) as im:
            np.testing.assert_array_equal(data.images[row_of(data, r.rel), ..., 0], np.asarray(im))


def test_class_folder_gives_the_label(fer_files):
    data = read_fer2013(fer_files.zip)
    for r in fer_files.records:
        assert data.labels[row_of(data, r.rel)] == KAGGLE_CLASSES.index(r.cls), r.rel


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_file_name_prefix_gives_the_split(fer_files, split):
    """Training_ (in train/) -> train, PublicTest_ -> val, PrivateTest_ -> test."""
    data = read_fer2013(fer_files.zip)
    names = np.array([f.rsplit("/", 1)[1] for f in data.file_ids])
    with_prefix = np.char.startswith(names, PREFIX[split])
    assert with_prefix.any()
    np.testing.assert_array_equal(data.mask(split), with_prefix)


def test_test_all_is_val_plus_test(fer_files):
    data = read_fer2013(fer_files.folder)
    np.testing.assert_array_equal(data.mask("test_all"), data.mask("val") | data.mask("test"))
    assert len(data.xy("test_all")[1]) == len(data.xy("val")[1]) + len(data.xy("test")[1])
    counts = data.counts()
    assert all(counts["test_all"][c] == counts["val"][c] + counts["test"][c] for c in KAGGLE_CLASSES)


def test_unknown_split_name_is_rejected(fer_files):
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        read_fer2013(fer_files.zip).mask("validation")


@pytest.mark.parametrize("form", ["folder", "zip", "csv"])
def test_counts_are_images_per_split_and_class(fer_files, form):
    assert load_form(fer_files, form).counts() == expected_counts(fer_files.records)


def test_same_file_name_in_two_class_folders_keeps_both_images(fer_tree, fer_files):
    happy = next(r for r in fer_files.records if r.split == "train" and r.cls == "happy")
    other = next(r for r in fer_files.records if r.split == "train" and r.cls == "angry")
    (fer_tree / "train" / "sad" / happy.name).write_bytes(image_bytes(other.image))
    data = read_fer2013(fer_tree)
    as_happy, as_sad = row_of(data, f"train/happy/{happy.name}"), row_of(data, f"train/sad/{happy.name}")
    assert len(data.labels) == len(fer_files.records) + 1
    assert (KAGGLE_CLASSES[data.labels[as_happy]], KAGGLE_CLASSES[data.labels[as_sad]]) == ("happy", "sad")
    assert not np.array_equal(data.images[as_happy], data.images[as_sad])


# --- fer2013.csv -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code, cls", sorted((code, cls) for cls, code in CSV_CODE.items()),
                         ids=lambda v: str(v))
def test_csv_emotion_code_maps_to_class(tmp_path, fer_files, code, cls):
    row = csv_row(fer_files.records[0]) | {"emotion": code}
    data = read_fer2013(write_csv(tmp_path / "fer2013.csv", [row]))
    assert KAGGLE_CLASSES[data.labels[0]] == cls


def test_csv_rows_keep_their_pixels_usage_and_class(fer_files):
    data = read_fer2013(fer_files.csv)
    loaded = sorted((s, KAGGLE_CLASSES[y], x.tobytes()) for s, y, x in zip(data.splits, data.labels, data.images))
    written = sorted((r.split, r.cls, r.image.tobytes()) for r in fer_files.records)
    assert loaded == written


def test_folder_holding_only_fer2013_csv_reads_the_csv(fer_files, tmp_path):
    shutil.copy(fer_files.csv, tmp_path / "fer2013.csv")
    from_folder, from_file = read_fer2013(tmp_path), read_fer2013(fer_files.csv)
    np.testing.assert_array_equal(from_folder.images, from_file.images)
    np.testing.assert_array_equal(from_folder.labels, from_file.labels)


# --- per_class subsampling -------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["folder", "csv"])
def test_per_class_keeps_at_most_n_per_class_in_each_split(fer_files, form):
    full = load_form(fer_files, form).counts()
    sub = load_form(fer_files, form, per_class=3).counts()
    for split in SPLITS_ALL[:3]:
        assert sub[split] == {c: min(3, full[split][c]) for c in KAGGLE_CLASSES}


def test_per_class_images_stay_with_their_file_ids(fer_files):
    full = read_fer2013(fer_files.zip)
    sub = read_fer2013(fer_files.zip, per_class=1, seed=3)
    for image, label, file_id in zip(sub.images, sub.labels, sub.file_ids):
        i = row_of(full, file_id)
        np.testing.assert_array_equal(image, full.images[i])
        assert label == full.labels[i]


def test_per_class_is_deterministic_for_a_seed(fer_files):
    first = read_fer2013(fer_files.folder, per_class=2, seed=7)
    again = read_fer2013(fer_files.folder, per_class=2, seed=7)
    np.testing.assert_array_equal(first.file_ids, again.file_ids)


def test_per_class_differs_for_another_seed(fer_files):
    a = read_fer2013(fer_files.folder, per_class=2, seed=0)
    b = read_fer2013(fer_files.folder, per_class=2, seed=1)
    assert set(a.file_ids) != set(b.file_ids)


def test_per_class_below_one_is_rejected(fer_files):
    with pytest.raises(ValueError, match="per_class must be >= 1"):
        read_fer2013(fer_files.zip, per_class=0)


# --- where the data comes from ---------------------------------------------------------------------


def test_explicit_path_beats_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("FER2013_PATH", str(tmp_path / "env.zip"))
    assert resolve_data_path(tmp_path / "explicit.zip") == tmp_path / "explicit.zip"


def test_environment_variable_beats_repo_data_folder(no_data_anywhere, monkeypatch, tmp_path):
    (no_data_anywhere / "archive.zip").write_bytes(b"")
    monkeypatch.setenv("FER2013_PATH", str(tmp_path / "env.zip"))
    assert resolve_data_path() == tmp_path / "env.zip"


@pytest.mark.parametrize("found", ["archive.zip", "fer2013.csv", "train/"])
def test_repo_data_folder_is_used_when_nothing_else_is_given(no_data_anywhere, found):
    target = no_data_anywhere / found
    if found.endswith("/"):
        target.mkdir()
        expected = no_data_anywhere
    else:
        target.write_bytes(b"")
        expected = target
    assert resolve_data_path() == expected


def test_no_path_anywhere_resolves_to_none(no_data_anywhere):
    assert resolve_data_path() is None


def test_load_data_reads_the_environment_variable_path(no_data_anywhere, monkeypatch, fer_files):
    monkeypatch.setenv("FER2013_PATH", str(fer_files.zip))
    data = load_data()
    assert not data.synthetic and data.source == str(fer_files.zip)


def test_no_data_found_warns_loudly_and_falls_back_to_synthetic(no_data_anywhere, capsys):
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        data = load_data(per_class=2)
    assert data.synthetic
    assert "SYNTHETIC" in capsys.readouterr().err
    counts = data.counts()
    assert all(counts[split][c] == 2 for split in ("train", "val", "test") for c in KAGGLE_CLASSES)


def test_no_data_found_without_fallback_raises(no_data_anywhere):
    with pytest.raises(DataError, match="FER2013_PATH unset"):
        load_data(synthetic_fallback=False)


# --- bad inputs: every problem is a DataError naming its file --------------------------------------


def _write(root, rel, raw):
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(raw)
    return rel


def _first_jpeg(root):
    return min((root / "train" / "happy").iterdir())


def corrupt_jpeg(root):
    raw = b"\xff\xd8\xff\xe0 this is not a JPEG"
    return _write(root, "train/happy/Training_99990.jpg", raw), "unreadable or corrupt"


def truncated_jpeg(root):
    raw = _first_jpeg(root).read_bytes()
    return _write(root, "train/happy/Training_99991.jpg", raw[: len(raw) // 2]), "unreadable or corrupt"


def rgb_image(root):
    image = np.zeros((48, 48), np.uint8)
    return _write(root, "test/fear/PublicTest_99992.jpg", image_bytes(image, mode="RGB")), "mode RGB"


def image_64x64(root):
    image = np.zeros((64, 64), np.uint8)
    return _write(root, "test/sad/PrivateTest_99993.jpg", image_bytes(image)), "64x64, expected 48x48"


def unprefixed_test_file(root):
    raw = _first_jpeg(root).read_bytes()
    return _write(root, "test/sad/Validation_99994.jpg", raw), "neither PublicTest_ nor PrivateTest_"


def unknown_class_folder(root):
    raw = _first_jpeg(root).read_bytes()
    return _write(root, "train/contempt/Training_99995.jpg", raw), "unknown class folder 'contempt'"


def missing_class_folder(root):
    shutil.rmtree(root / "test" / "disgust")
    return "test/disgust", "missing class folder"


def no_test_folder(root):
    shutil.rmtree(root / "test")
    return "test/", "no test/ folder"


def no_train_folder(root):
    shutil.rmtree(root / "train")
    return "train/", "no train/ folder"


BAD_TREES = [corrupt_jpeg, truncated_jpeg, rgb_image, image_64x64, unprefixed_test_file, unknown_class_folder,
             missing_class_folder, no_test_folder, no_train_folder]


@pytest.mark.parametrize("form", ["folder", "zip"])
@pytest.mark.parametrize("spoil", BAD_TREES, ids=lambda f: f.__name__)
def test_bad_image_tree_raises_data_error_naming_file_and_problem(fer_tree, tmp_path, form, spoil):
    offending, problem = spoil(fer_tree)
    path = fer_tree if form == "folder" else zip_folder(fer_tree, tmp_path / "broken.zip")
    with pytest.raises(DataError) as raised:
        read_fer2013(path)
    (only,) = raised.value.problems  # exactly this one problem, nothing spurious
    assert str(path) in only and offending in only and problem in only
    assert only in str(raised.value)


@pytest.mark.parametrize("content, problem", [
    (None, "path does not exist"),
    ("hello", "not a zip archive, a folder with train/ and test/, or a .csv file"),
], ids=["missing", "not-a-data-file"])
def test_unusable_path_raises_data_error_naming_it(tmp_path, content, problem):
    path = tmp_path / "fer2013.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as raised:
        load_data(path)
    assert raised.value.problems == [f"{path}: {problem}"]


def test_data_error_lists_every_bad_file(fer_tree):
    corrupt, _ = corrupt_jpeg(fer_tree)
    rgb, _ = rgb_image(fer_tree)
    with pytest.raises(DataError) as raised:
        read_fer2013(fer_tree)
    assert len(raised.value.problems) == 2
    assert corrupt in str(raised.value) and rgb in str(raised.value)


def test_data_error_lists_layout_and_image_problems_together(fer_tree):
    """A misplaced file does not hide a corrupt one: one pass reports both."""
    corrupt, _ = corrupt_jpeg(fer_tree)
    unprefixed, _ = unprefixed_test_file(fer_tree)
    with pytest.raises(DataError) as raised:
        read_fer2013(fer_tree)
    problems = "\n".join(raised.value.problems)
    assert corrupt in problems and unprefixed in problems


BAD_CSVS = {  # id: (column spoilt in the second data row, i.e. line 3 (None: the Usage column left out), its value,
    # the whole problem reported after the file's path)
    "missing-column": (None, None, "missing column(s) Usage; found ['emotion', 'pixels']"),
    "emotion-word": ("emotion", "happy", "row 3: emotion 'happy' is not an integer"),
    "emotion-empty": ("emotion", "", "row 3: emotion '' is not an integer"),
    "emotion-float": ("emotion", "3.0", "row 3: emotion '3.0' is not an integer"),
    "label-7": ("emotion", 7, "row 3: emotion 7 outside 0..6"),
    "unknown-usage": ("Usage", "Validation",
                      "row 3: unknown Usage 'Validation' (expected Training, PublicTest, PrivateTest)"),
    "pixel-word": ("pixels", "12 x 7", "row 3: pixels are not all integers"),
    "pixel-float": ("pixels", " ".join(["1.5"] * 2304), "row 3: pixels are not all integers"),
    "pixel-256": ("pixels", " ".join(["256"] + ["0"] * 2303), "row 3: pixel values outside 0..255"),
    "pixel-negative": ("pixels", " ".join(["0"] * 2303 + ["-1"]), "row 3: pixel values outside 0..255"),
    "2300-pixels": ("pixels", " ".join(["0"] * 2300), "row 3: 2300 pixel values, expected 2304"),
    "no-pixels": ("pixels", "", "row 3: 0 pixel values, expected 2304"),
}


@pytest.mark.parametrize("field, value, problem", list(BAD_CSVS.values()), ids=list(BAD_CSVS))
def test_bad_csv_raises_data_error_naming_file_row_and_problem(tmp_path, fer_files, field, value, problem):
    # Breaks if int()/np.array() errors escaped as a bare ValueError, if 256 wrapped round to 0 in the uint8 cast,
    # or if the problem lost its file or row.
    rows = [csv_row(r) for r in fer_files.records[:3]]
    columns = ("emotion", "pixels") if field is None else ("emotion", "pixels", "Usage")
    if field is not None:
        rows[1][field] = value
    path = write_csv(tmp_path / "fer2013.csv", rows, columns)
    with pytest.raises(DataError) as raised:
        read_fer2013(path)
    assert raised.value.problems == [f"{path}: {problem}"]


def test_a_csv_with_only_its_header_has_no_rows(tmp_path):
    # Breaks if an empty table came back as an empty FerData (np.stack of nothing raises a bare ValueError).
    path = write_csv(tmp_path / "fer2013.csv", [])
    with pytest.raises(DataError) as raised:
        read_fer2013(path)
    assert raised.value.problems == [f"{path}: no rows"]


def test_an_empty_csv_file_is_missing_every_column(tmp_path):
    path = tmp_path / "fer2013.csv"
    path.write_text("")
    with pytest.raises(DataError) as raised:
        read_fer2013(path)
    assert raised.value.problems == [f"{path}: missing column(s) emotion, pixels, Usage; found None"]


def test_csv_data_error_lists_every_bad_row(tmp_path, fer_files):
    rows = [csv_row(r) for r in fer_files.records[:4]]
    rows[0]["emotion"], rows[3]["Usage"] = 9, "Validation"
    with pytest.raises(DataError) as raised:
        read_fer2013(write_csv(tmp_path / "fer2013.csv", rows))
    assert [p.split(": ")[1] for p in raised.value.problems] == ["row 2", "row 5"]


def test_csv_pixels_are_parsed_together_not_row_by_row(tmp_path):
    # The real fer2013.csv has 35,887 rows of 2,304 numbers: parsed one row at a time (np.array(row.split()) per
    # row) it took half a minute. Breaks if reading a csv costs more than that row-by-row parse alone (reading the
    # file included), on the same rows, measured here.
    import time

    rng = np.random.default_rng(0)
    texts = [" ".join(map(str, rng.integers(0, 256, 48 * 48))) for _ in range(1000)]
    rows = [{"emotion": 3, "pixels": text, "Usage": "Training"} for text in texts]
    path = write_csv(tmp_path / "fer2013.csv", rows)
    start = time.perf_counter()
    row_by_row = [np.array(text.split(), dtype=np.int64) for text in texts]
    row_by_row_seconds = time.perf_counter() - start
    start = time.perf_counter()
    data = read_fer2013(path)
    read_seconds = time.perf_counter() - start
    assert np.array_equal(np.sort(data.images.reshape(1000, -1), axis=0), np.sort(np.stack(row_by_row), axis=0))
    assert read_seconds < row_by_row_seconds, (read_seconds, row_by_row_seconds)
