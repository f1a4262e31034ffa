"""benchmarks/robust_study.sh and robust_rows.sh: the regularisation and augmentation study's rows and their runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the study scripts are bash")


def study_run(tmp_path: Path, *rows: str, precisions: str = "mixed_bfloat16 mixed_bfloat16",
              **env: str) -> subprocess.CompletedProcess:
    """robust_study.sh ROWS in a copy of benchmarks/, with a stand-in Python that records the train command and
    writes the files a finished run folder holds (and that benchmarks/robustness.py writes)."""
    copy = tmp_path / "repo" / "benchmarks"
    copy.mkdir(parents=True, exist_ok=True)
    for name in ("robust_study.sh", "robust_rows.sh"):
        shutil.copy2(BENCH / name, copy / name)
    fake = tmp_path / "python"
    fake.write_text('#!/usr/bin/env bash\n'
                    'if [ "$1" = -c ]; then case "$2" in *resolve_precision*) echo "$STANDIN_PRECISIONS";; '
                    '*) echo --filters 32,64,128 --dense-units 512 --dense-dropout 0.0 --batch-norm;; esac\n'
                    'exit 0; fi\n'
                    'if [ "$1" = benchmarks/robustness.py ]; then touch "$2/robustness.csv"; exit 0; fi\n'
                    'out=${@: -1}; mkdir -p "$out"; echo "$@" > "$out/args"\n'
                    'for f in history.csv metrics.json run_info.json model.keras; do touch "$out/$f"; done\n')
    fake.chmod(0o755)
    env = {**os.environ, "PY": str(fake), "RUNS": str(tmp_path / "runs"), "DATA": "D",
           "RESULTS": str(tmp_path / "results"), "STANDIN_PRECISIONS": precisions, **env}  # se_ref's, this machine's
    return subprocess.run(["bash", str(copy / "robust_study.sh"), *rows], env=env, capture_output=True, text=True)


def test_a_row_trains_paper_config_with_its_own_options_and_the_study_schedule(tmp_path):
    done = study_run(tmp_path, "se_photo")
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "runs" / "se_photo" / "args").read_text().split()
    assert args[:3] == ["-m", "fer_utils", "train"]
    assert "--batch-norm" in args and args[args.index("--dense-units") + 1] == "512"
    assert args[args.index("--augment") + 1] == "photometric"
    assert args[args.index("--epochs") + 1] == "30" and args[args.index("--schedule") + 1] == "cosine"
    kept = sorted(p.name for p in (tmp_path / "results" / "se_photo").iterdir())
    assert kept == ["history.csv", "metrics.json", "robustness.csv", "run_info.json"]  # no weights in git


def test_a_machine_that_trains_in_another_precision_than_se_ref_is_refused_unless_forced(tmp_path):
    # Breaks if a row could be trained in float32 (a CPU without bf16: ~3x slower, past a session) and compared with
    # rows trained in mixed_bfloat16.
    done = study_run(tmp_path, "se_photo", precisions="mixed_bfloat16 float32")
    assert done.returncode == 2 and not (tmp_path / "runs" / "se_photo").exists()
    assert "trains in float32, the study's reference row se_ref in mixed_bfloat16" in done.stderr
    assert study_run(tmp_path, "se_photo", precisions="mixed_bfloat16 float32", FORCE="1").returncode == 0


def test_an_unknown_row_is_refused_naming_the_rows(tmp_path):
    done = study_run(tmp_path, "se_blur")
    assert done.returncode == 2 and "unknown row: se_blur" in done.stderr and "se_ref" in done.stderr


def test_a_finished_row_is_not_trained_again(tmp_path):
    (tmp_path / "results" / "se_ref").mkdir(parents=True)
    (tmp_path / "results" / "se_ref" / "metrics.json").write_text(json.dumps({}))
    done = study_run(tmp_path, "se_ref")
    assert done.returncode == 0 and "done already" in done.stdout
    assert not (tmp_path / "runs" / "se_ref").exists()


def test_every_row_parses_as_train_options_and_all_combines_every_single_candidate():
    from robust_cost import row_options, study_rows

    rows = {row: row_options(options) for row, options in study_rows().items()}
    kind, everything = rows["se_all"]
    assert kind == "se" and everything["augment"] == ("geometric", "photometric", "degrade", "erase")
    reference = rows["se_ref"][1]
    for row, (kind, options) in rows.items():
        changed = {k for k in options if options[k] != reference[k]}
        if row.startswith("se_") and row not in ("se_ref", "se_all", "se_targets"):
            assert len(changed) == 1, (row, changed)  # one candidate at a time
            name = changed.pop()
            assert options[name] == everything[name] or set(options[name]) <= set(everything[name]), row
    targets = rows["se_targets"][1]
    assert targets["flip"] and targets["augment"] == ("photometric", "degrade")  # the groups aimed at the targets
    assert all(targets[k] == reference[k] for k in reference if k not in ("flip", "augment"))  # no regulariser


def test_the_robust_profile_is_paper_config_with_the_recipe_on_the_studys_schedule():
    # Breaks if the profile that reports/robust/ publishes trained on another schedule than the rows that chose its
    # recipe, or took in an option no study row tried on its own.
    from robust_cost import row_options, study_rows

    from fer_utils.cli import parse_args
    from fer_utils.config import PAPER_CONFIG, PROFILES, ROBUST_RECIPE

    schedule = subprocess.run(["bash", "-c", f'source "{BENCH / "robust_rows.sh"}"; echo $STUDY_SCHEDULE'],
                              capture_output=True, text=True, check=True).stdout.split()
    robust = parse_args(["train", "--model", "se", "--profile", "robust"])
    assert [robust.epochs, robust.schedule] == [int(schedule[1]), schedule[3]]
    assert {k: PROFILES["robust"][k] for k in PAPER_CONFIG} == PAPER_CONFIG
    rows = [row_options(options)[1] for options in study_rows().values()]
    reference = row_options("--model se")[1]
    for name, value in ROBUST_RECIPE.items():
        values = value if isinstance(value, tuple) else (value,)
        for one in values:  # each augmentation group (or option) was a row of its own
            alone = {name: (one,) if isinstance(value, tuple) else one}
            assert any(row == {**reference, **alone} for row in rows), (name, one)


def test_the_cost_scripts_recipe_row_is_what_the_robust_profile_trains():
    from robust_cost import recipe_options, row_options

    from fer_utils.cli import parse_args

    kind, options = row_options(recipe_options())
    a = parse_args(["train", "--model", "se", "--profile", "robust"])
    assert kind == "se" and options == dict(
        filters=a.filters, dense_units=a.dense_units, dense_dropout=a.dense_dropout, batch_norm=a.batch_norm,
        flip=a.flip, augment=a.augment,
        compile_kwargs=dict(label_smoothing=a.label_smoothing, weight_decay=a.weight_decay))
