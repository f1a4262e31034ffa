"""fer_utils.cli: the command-line contract (run in-process through main())."""

from __future__ import annotations

import json
import re

import keras
import pytest
from conftest import expected_counts, zip_folder

from fer_utils.cli import main
from fer_utils.config import MODELS, PROFILES


def test_data_check_json_reports_source_counts_and_no_problems(fer_files, capsys):
    assert main(["data", "check", str(fer_files.zip), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["source"] == str(fer_files.zip)
    assert report["counts"] == expected_counts(fer_files.records)
    assert report["problems"] == []


def test_data_check_of_broken_zip_fails_and_lists_every_problem(fer_tree, tmp_path, capsys):
    (fer_tree / "train" / "angry" / "Training_99990.jpg").write_bytes(b"garbage")
    (fer_tree / "test" / "fear" / "Validation_99991.jpg").write_bytes(b"garbage")
    broken = zip_folder(fer_tree, tmp_path / "broken.zip")
    assert main(["data", "check", str(broken), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] is None
    assert len(report["problems"]) == 2
    assert any("train/angry/Training_99990.jpg" in p and "corrupt" in p for p in report["problems"])
    assert any("test/fear/Validation_99991.jpg" in p and "PublicTest_" in p for p in report["problems"])


def test_data_check_text_output_shows_the_count_table(fer_files, capsys):
    assert main(["data", "check", str(fer_files.csv)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^happy\s+4\s+2\s+2\s+4$", out, flags=re.MULTILINE)
    assert "0 problem(s)" in out


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, fer_files):
    """ONE `train` through the CLI on the fixture zip (baseline, 3 per class, 1 epoch, float32, flips, no dropout,
    batch norm, two augmentation groups named out of order, label smoothing)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    status = main(["train", "--model", "baseline", "--data", str(fer_files.zip), "--subset", "3", "--epochs", "1",
                   "--out", str(out), "--precision", "float32", "--flip", "--dense-dropout", "0",
                   "--batch-norm", "--augment", "degrade,photometric", "--label-smoothing", "0.1"])
    return status, out


@pytest.mark.slow
def test_train_command_writes_a_run_folder(cli_run):
    status, out = cli_run
    assert status == 0
    for name in ("model.keras", "history.csv", "metrics.json", "predictions.npz", "run_info.json"):
        assert (out / name).is_file(), name
    info = json.loads((out / "run_info.json").read_text())
    assert info["params"]["model"] == "baseline" and info["precision"] == "float32"
    assert info["counts"]["train"] == {c: 3 for c in info["counts"]["train"]}  # --subset 3 of 4 per class


@pytest.mark.slow
def test_train_command_passes_flip_dropout_and_batch_norm_to_the_model(cli_run):
    _, out = cli_run
    info = json.loads((out / "run_info.json").read_text())
    assert info["params"]["flip"] is True and info["params"]["dense_dropout"] == 0.0
    assert info["params"]["batch_norm"] is True
    layers = {layer.name for layer in keras.models.load_model(out / "model.keras").layers}
    assert "augment_flip" in layers and "dense_dropout" not in layers
    assert "block1_conv1_bn" in layers


@pytest.mark.slow
def test_train_command_passes_augmentations_in_their_canonical_order_and_label_smoothing(cli_run):
    _, out = cli_run
    params = json.loads((out / "run_info.json").read_text())["params"]
    assert params["augment"] == ["photometric", "degrade"] and params["label_smoothing"] == 0.1
    layers = {layer.name for layer in keras.models.load_model(out / "model.keras").layers}
    assert {"augment_gamma", "augment_degrade"} <= layers and "augment_erase" not in layers


def test_train_command_rejects_an_unknown_augmentation_in_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--model", "se", "--augment", "photometric,blur"])
    assert stop.value.code == 2
    assert "unknown augmentation blur" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_command_agrees_with_metrics_json(cli_run, fer_files, capsys):
    """The fixture has 2 test images per class, so --subset 3 at training time kept the whole test split."""
    _, out = cli_run
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.keras"), "--data", str(fer_files.zip), "--split", "test"]) == 0
    printed = re.search(r"^test: loss (\S+)  accuracy (\S+)  \(n=(\d+), float32\)$", capsys.readouterr().out,
                        re.MULTILINE)
    metrics = json.loads((out / "metrics.json").read_text())
    assert printed, "evaluate printed no 'test: loss ... accuracy ...' line"
    assert printed[2] == f"{metrics['test_accuracy']:.4f}"
    assert printed[1] == f"{metrics['test_loss']:.4f}"
    assert int(printed[3]) == metrics["splits"]["test"]["n"]


@pytest.mark.slow
def test_evaluate_command_with_tta_says_so(cli_run, fer_files, capsys):
    _, out = cli_run
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.keras"), "--data", str(fer_files.zip), "--split", "test", "--tta"]) == 0
    assert re.search(r"^test \(flip TTA\): loss \S+  accuracy \S+  \(n=\d+, float32\)$", capsys.readouterr().out,
                     re.MULTILINE)


def test_train_profile_gives_the_profiles_settings():
    from fer_utils.cli import parse_args
    from fer_utils.config import PAPER_CONFIG

    args = parse_args(["train", "--model", "se", "--profile", "paper"])
    assert args.epochs == PROFILES["paper"]["epochs"] and args.subset is None
    assert (args.filters, args.dense_units, args.dense_dropout, args.batch_norm) == (
        tuple(PAPER_CONFIG["filters"]), PAPER_CONFIG["dense_units"], PAPER_CONFIG["dense_dropout"],
        PAPER_CONFIG["batch_norm"])


def test_train_options_given_beside_a_profile_win_over_it():
    from fer_utils.cli import parse_args

    args = parse_args(["train", "--model", "se", "--profile", "quick", "--epochs", "3", "--no-flip",
                       "--dense-dropout", "0.25"])
    assert (args.epochs, args.flip, args.dense_dropout, args.schedule) == (3, False, 0.25, "cosine")


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_can_be_trained_by_the_train_command(profile):
    from fer_utils.cli import parse_args
    from fer_utils.run_settings import training_params

    args = parse_args(["train", "--model", "se", "--profile", profile])
    settings = {k: v for k, v in PROFILES[profile].items() if k != "per_class"}
    assert training_params("se", **{k: getattr(args, k) for k in settings}) == training_params("se", **settings)
    assert args.subset == PROFILES[profile]["per_class"]


@pytest.mark.parametrize("model", sorted(MODELS))
def test_train_command_defaults_are_train_and_the_model_builders_defaults(model):
    # One source of truth: `python -m fer_utils train` with no option trains what train() does with none.
    from fer_utils.cli import parse_args
    from fer_utils.run_settings import training_params

    from fer_utils.commands import _attention_options

    args = parse_args(["train", "--model", model])
    defaults = training_params(model)
    shared = {name for name in defaults if hasattr(args, name)} - {"attention", "se_ratio"}
    assert {"epochs", "protocol", "precision", "schedule", "dense_dropout", "filters", "dense_units", "flip",
            "batch_norm", "augment", "label_smoothing", "weight_decay", "seed"} <= shared
    assert {name: getattr(args, name) for name in shared} == {name: defaults[name] for name in shared}
    assert _attention_options(args) == {}  # no --attention, no --se-ratio: the model builder's own defaults


@pytest.mark.parametrize("argv, options", [(["--model", "baseline", "--attention", "eca"], {"attention": "eca"}),
                                           (["--model", "se", "--se-ratio", "8"], {"se_ratio": 8}),
                                           (["--model", "se", "--attention", "se_every", "--se-ratio", "4"],
                                            {"attention": "se_every", "se_ratio": 4})])
def test_train_passes_attention_and_its_ratio_to_the_model_builder(argv, options):
    from fer_utils.cli import parse_args
    from fer_utils.commands import _attention_options

    assert _attention_options(parse_args(["train", *argv])) == options


def test_train_refuses_a_reduction_ratio_for_the_baseline_in_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--model", "baseline", "--se-ratio", "8"])
    assert stop.value.code == 2
    assert "--se-ratio 8 needs --model se" in capsys.readouterr().err
