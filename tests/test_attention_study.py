"""benchmarks/attention_study.sh, attention_rows.sh and attention_table.py: the attention study's runs and its table.

The script runs with a stand-in Python (as tests/test_robust_study.py does): nothing trains. The table is computed
from run folders and records made here, with accuracies chosen so that every number can be worked out by hand.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))
attention_table = importlib.import_module("attention_table")

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="the study scripts are bash")


def study_run(tmp_path: Path, *rows: str, seeds: str = "0 1", done: tuple[str, ...] = (),
              trained: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """attention_study.sh ROWS in a copy of benchmarks/, with a stand-in Python that logs every call, records the
    train command and writes the files a finished run folder holds (and those robustness.py and --compact write)."""
    copy = tmp_path / "repo" / "benchmarks"
    copy.mkdir(parents=True)
    for name in ("attention_study.sh", "attention_rows.sh"):
        shutil.copy2(BENCH / name, copy / name)
    calls = tmp_path / "calls"
    fake = tmp_path / "python"
    fake.write_text('#!/usr/bin/env bash\n'
                    f'echo "$@" >> "{calls}"\n'
                    'if [ "$1" = -c ]; then echo --filters 32,64,128 --dense-units 512 --dense-dropout 0.0 '
                    '--batch-norm; exit 0; fi\n'
                    'if [ "$1" = benchmarks/robustness.py ]; then touch "$2/robustness.csv"; exit 0; fi\n'
                    'if [ "$1" = benchmarks/attention_table.py ]; then mkdir -p "$4"; touch "$4/predicted.npz"; '
                    'exit 0; fi\n'
                    'out=${@: -1}; mkdir -p "$out"; echo "$@" > "$out/args"\n'
                    'for f in history.csv metrics.json run_info.json model.keras predictions.npz; do touch "$out/$f"; '
                    'done\n')
    fake.chmod(0o755)
    for name in done:
        (tmp_path / "results" / name).mkdir(parents=True)
        (tmp_path / "results" / name / "metrics.json").write_text("{}")
    for name in trained:
        (tmp_path / "runs" / name).mkdir(parents=True)
        for f in ("history.csv", "metrics.json", "run_info.json", "model.keras", "predictions.npz"):
            (tmp_path / "runs" / name / f).touch()
    env = {**os.environ, "PY": str(fake), "RUNS": str(tmp_path / "runs"), "DATA": "D",
           "RESULTS": str(tmp_path / "results"), "SEEDS": seeds}
    return subprocess.run(["bash", str(copy / "attention_study.sh"), *rows], env=env, capture_output=True, text=True)


def train_calls(tmp_path: Path) -> list[list[str]]:
    return [line.split() for line in (tmp_path / "calls").read_text().splitlines() if line.startswith("-m fer_utils")]


# ---- the script


@needs_bash
def test_a_row_trains_paper_config_with_its_options_and_the_study_schedule_and_keeps_no_weights(tmp_path):
    done = study_run(tmp_path, "cbam", seeds="0")
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "runs" / "cbam" / "args").read_text().split()
    assert args[:3] == ["-m", "fer_utils", "train"]
    assert "--batch-norm" in args and args[args.index("--dense-units") + 1] == "512"
    assert args[args.index("--model") + 1] == "baseline" and args[args.index("--attention") + 1] == "cbam"
    assert args[args.index("--epochs") + 1] == "15" and args[args.index("--schedule") + 1] == "cosine"
    assert "--flip" in args and args[args.index("--seed") + 1] == "0"
    kept = sorted(p.name for p in (tmp_path / "results" / "cbam").iterdir())
    assert kept == ["history.csv", "metrics.json", "predicted.npz", "robustness.csv", "run_info.json"]


@needs_bash
def test_every_rows_first_seed_runs_before_any_rows_second(tmp_path):
    done = study_run(tmp_path, "se", "eca")
    assert done.returncode == 0, done.stderr
    order = [(c[c.index("--out") + 1].rsplit("/", 1)[1], c[c.index("--seed") + 1]) for c in train_calls(tmp_path)]
    assert order == [("se", "0"), ("eca", "0"), ("se_s1", "1"), ("eca_s1", "1")]
    assert (tmp_path / "results" / "eca_s1" / "metrics.json").is_file()


@needs_bash
def test_an_unknown_row_is_refused_before_anything_trains(tmp_path):
    done = study_run(tmp_path, "se", "bam")
    assert done.returncode == 2 and "unknown row: bam" in done.stderr and "se_every" in done.stderr
    assert not (tmp_path / "runs").exists()


@needs_bash
def test_a_committed_run_is_skipped_and_a_trained_run_is_not_trained_again(tmp_path):
    done = study_run(tmp_path, "se", "spatial", seeds="0", done=("se",), trained=("spatial",))
    assert done.returncode == 0, done.stderr
    assert "se: done already" in done.stdout and "spatial: trained already" in done.stdout
    assert train_calls(tmp_path) == []
    assert (tmp_path / "results" / "spatial" / "metrics.json").is_file()  # measured and copied all the same


# ---- the rows


@needs_bash
def test_the_rows_file_reads_the_same_in_python_as_in_bash():
    script = (f'source "{BENCH / "attention_rows.sh"}"; echo "$REFERENCE"; '
              'for r in "${ORDER[@]}"; do echo "$r|${ROWS[$r]}"; done')
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    rows, reference = attention_table.study_rows()
    assert reference == out[0] == "se"
    assert rows == dict(line.split("|", 1) for line in out[1:])


def _row_model(options: str):
    """The model a row's options ask `train` for: build_model(--model, attention=--attention, se_ratio=--se-ratio)."""
    import argparse

    from fer_utils.config import PAPER_CONFIG
    from fer_utils.models import build_model

    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--attention", default=None)
    parser.add_argument("--se-ratio", type=int, default=None)
    a = parser.parse_args(options.split())
    return build_model(a.model, **({"attention": a.attention} if a.attention else {}),
                       **({"se_ratio": a.se_ratio} if a.se_ratio else {}), **PAPER_CONFIG)


def test_the_rows_are_the_issues_variants_on_the_chosen_configuration():
    rows, _ = attention_table.study_rows()
    assert len(rows) == 8

    def scales(row):
        return sorted(layer.name for layer in _row_model(rows[row]).layers if layer.name.endswith("_scale"))

    assert scales("baseline") == []
    assert scales("se") == [f"block{b}_se_scale" for b in (1, 2, 3)]
    assert _row_model(rows["se"]).count_params() == 2_654_101  # the published SE-CNN's count (reports/se)
    for row, r in (("se", 16), ("se_r8", 8), ("se_r4", 4)):
        assert _row_model(rows[row]).get_layer("block3_se_reduce").units == 128 // r
    assert len(scales("se_every")) == 6
    assert scales("eca") == [f"block{b}_eca_scale" for b in (1, 2, 3)]
    assert len(scales("cbam")) == 6 and _row_model(rows["cbam"]).get_layer("block3_cbam_channel_reduce").units == 8
    assert scales("spatial") == [f"block{b}_spatial_scale" for b in (1, 2, 3)]


def test_every_row_parses_as_train_options():
    from fer_utils.cli import build_parser

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    dests = {action.dest for action in train._actions}
    if not {"attention", "se_ratio"} <= dests:
        pytest.skip("`train` has no --attention/--se-ratio yet (the CLI plumbing the attention issue asks for)")
    rows, _ = attention_table.study_rows()
    for row, options in rows.items():
        args = parser.parse_args(["train", *options.split()])
        words = options.split()
        assert args.model == words[words.index("--model") + 1], row
        assert args.attention == (words[words.index("--attention") + 1] if "--attention" in words else None), row
        assert args.se_ratio == (int(words[words.index("--se-ratio") + 1]) if "--se-ratio" in words else None), row


# ---- the table


def rec(row: str, seed: int, private: float, right: np.ndarray | None = None, **kw) -> dict:
    accuracies = {"PublicTest": private + 0.01, "PrivateTest": private, "all test": private + 0.005}
    correct = None if right is None else {"val": right, "test": right}
    return attention_table.record(row, seed, kw.pop("attention", row), kw.pop("ratio", None), kw.pop("params", 1000),
                                  accuracies, correct=correct, images=None if right is None else "same", **kw)


def test_paired_differences_are_per_seed_then_averaged_with_a_t_test_over_the_seeds():
    from scipy import stats

    records = [rec("se", 0, 0.650), rec("se", 1, 0.660), rec("se", 2, 0.640),
               rec("eca", 0, 0.655), rec("eca", 1, 0.670), rec("eca", 2, 0.645), rec("eca", 3, 0.9)]
    p = attention_table.paired(records, "eca", "se")
    assert p["seeds"] == [0, 1, 2]  # seed 3 has no SE partner
    np.testing.assert_allclose(p["deltas"], [0.5, 1.0, 0.5])
    assert p["mean"] == pytest.approx(2 / 3) and p["std"] == pytest.approx(np.std([0.5, 1.0, 0.5], ddof=1))
    t = (2 / 3) / (p["std"] / np.sqrt(3))
    assert p["p_seeds"] == pytest.approx(2 * stats.t.sf(t, 2))
    assert np.isnan(p["p_images"])  # no predicted classes: no image test
    one_seed = attention_table.paired(records[:1] + records[3:4], "eca", "se")
    assert one_seed["seeds"] == [0] and np.isnan(one_seed["std"]) and np.isnan(one_seed["p_seeds"])


def test_the_image_test_averages_each_images_difference_over_the_seeds():
    from scipy import stats

    n = 400
    se_right = np.zeros(n, dtype=bool)
    se_right[:200] = True
    row_right = [se_right.copy(), se_right.copy()]
    row_right[0][200:240] = True  # seed 0: 40 more images right
    row_right[1][200:220] = True  # seed 1: 20 more images right
    records = [rec("se", s, 0.5, se_right) for s in (0, 1)]
    records += [rec("cbam", s, row_right[s].mean(), row_right[s]) for s in (0, 1)]
    p = attention_table.paired(records, "cbam", "se")
    d = np.zeros(n)
    d[200:220], d[220:240] = 1.0, 0.5  # each image's difference averaged over the two seeds
    assert p["n_images"] == n and p["mean"] == pytest.approx(100 * d.mean())
    assert p["p_images"] == pytest.approx(2 * stats.norm.sf(d.mean() / (d.std(ddof=1) / np.sqrt(n))))
    assert p["p_images"] < 1e-6


def test_runs_on_other_images_are_not_compared_image_by_image():
    right = np.ones(10, dtype=bool)
    records = [rec("se", 0, 0.5, right), rec("eca", 0, 0.6, right)]
    records[1]["images"] = "another test set"
    assert np.isnan(attention_table.paired(records, "eca", "se")["p_images"])


@pytest.mark.parametrize("p_seeds, p_images, words", [
    (0.01, 0.001, "significant (seeds and images)"), (0.3, 0.001, "images only"),
    (np.nan, 0.001, "images only (one seed)"), (0.01, 0.4, "seeds only"), (0.3, 0.4, "within noise"),
    (np.nan, np.nan, "untested")])
def test_the_verdict_names_the_tests_a_difference_clears(p_seeds, p_images, words):
    assert attention_table.verdict(p_seeds, p_images) == words


def test_the_rows_table_has_one_line_per_row_in_order_with_means_and_the_reference_marked():
    records = [rec("eca", 0, 0.655), rec("se", 0, 0.650), rec("se", 1, 0.660), rec("eca", 1, 0.670),
               rec("baseline", 0, 0.640, attention="none")]
    table = attention_table.rows_table(records, "se", ["se", "baseline", "eca"])
    assert list(table.index) == ["se", "baseline", "eca"]
    assert table.loc["se", "verdict"] == "reference" and table.loc["se", "seeds"] == 2
    assert table.loc["eca", "PrivateTest"] == pytest.approx(0.6625)
    assert table.loc["eca", "Δ PrivateTest"] == pytest.approx(0.75)
    assert table.loc["baseline", "Δ PrivateTest"] == pytest.approx(-1.0) and table.loc["baseline", "paired seeds"] == 1
    text = attention_table.markdown(table)
    assert "| eca | eca | - | 2 | 1,000 |" in text and "| 66.25% |" in text and "| +0.75 |" in text


def write_run(folder: Path, model: str, seed: int, attention: str | None, val: float, test: float,
              se_ratio: int | None = None) -> None:
    """A finished run folder as attention_study.sh commits it."""
    folder.mkdir(parents=True)
    params = {"model": model, "seed": seed, "epochs": 15, "attention": attention,
              **({"se_ratio": se_ratio} if se_ratio else {})}
    (folder / "run_info.json").write_text(json.dumps({"params": params, "parameters": 1234}))
    (folder / "metrics.json").write_text(json.dumps({"val_accuracy": val, "test_accuracy": test,
                                                     "test_all_accuracy": (val + test) / 2}))
    pd.DataFrame({"epoch": [0, 1, 2], "epoch_seconds": [100.0, 90.0, 95.0]}).to_csv(folder / "history.csv")
    pd.DataFrame({"perturbation": ["noise", "jpeg", "noise"], "strength": [10, 10, 10], "points_lost": [2.0, 6.0, 9.0],
                  "split": ["val", "val", "test"]}).to_csv(folder / "robustness.csv", index=False)
    labels = np.array([0, 1, 2, 3] * 2, dtype=np.uint8)
    probs = np.eye(7)[[0, 1, 2, 0, 0, 1, 2, 0]]  # right on 3 of 4 images in each split
    np.savez(folder / "predictions.npz", probs=probs, labels=labels, splits=np.array(["val"] * 4 + ["test"] * 4),
             file_ids=np.array([f"img{i}" for i in range(8)]))
    attention_table.compact_predictions(folder, folder)
    (folder / "predictions.npz").unlink()  # the study commits predicted.npz only


def test_a_committed_run_folder_becomes_a_record(tmp_path):
    write_run(tmp_path / "se_r8_s1", "se", 1, None, 0.66, 0.67, se_ratio=8)
    write_run(tmp_path / "cbam", "baseline", 0, "cbam", 0.65, 0.66)
    records = {r["row"]: r for r in attention_table.read_runs(tmp_path)}
    se8, cbam = records["se_r8"], records["cbam"]
    assert se8["seed"] == 1 and se8["attention"] == "se" and se8["r"] == 8
    assert cbam["seed"] == 0 and cbam["attention"] == "cbam" and cbam["r"] == 16  # CBAM's r defaults to SE_RATIO
    assert se8["PublicTest"] == 0.66 and se8["PrivateTest"] == 0.67 and se8["all test"] == pytest.approx(0.665)
    assert se8["s/epoch"] == 95.0 and se8["parameters"] == 1234
    assert se8["mean points lost"] == 4.0 and se8["worst points lost"] == 6.0  # PublicTest rows only
    assert se8["correct"]["test"].tolist() == [True, True, True, False] and se8["images"] == cbam["images"]


def test_compact_predictions_keep_the_predicted_class_in_a_few_kilobytes(tmp_path):
    n = 7178
    rng = np.random.default_rng(0)
    probs = rng.random((n, 7)).astype(np.float32)
    np.savez(tmp_path / "predictions.npz", probs=probs, labels=rng.integers(0, 7, n),
             splits=np.array(["val", "test"]).repeat(n // 2), file_ids=np.array([f"test/x/{i}.jpg" for i in range(n)]))
    out = attention_table.compact_predictions(tmp_path, tmp_path / "kept")
    assert out.stat().st_size < 30_000
    with np.load(out) as p:
        assert np.array_equal(p["predicted"], probs.argmax(1))


def test_the_table_script_writes_the_results_readme(tmp_path, capsys):
    write_run(tmp_path / "se", "se", 0, None, 0.66, 0.67)
    write_run(tmp_path / "eca", "baseline", 0, "eca", 0.65, 0.66)
    assert attention_table.main(["--results", str(tmp_path)]) == 0
    readme = (tmp_path / "README.md").read_text()
    assert "| se | se | 16 | 1 |" in readme and "| eca | eca |" in readme and "Not run yet:" in readme
    assert attention_table.main(["--results", str(tmp_path / "empty")]) == 1
