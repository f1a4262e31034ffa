"""train_or_reuse reuses a run folder only when every training parameter and the data match."""

from __future__ import annotations

import inspect
import json

import pytest

from fer_utils import training
from fer_utils.run_settings import NOT_TRAINING_PARAMS, TRAIN_DEFAULTS, reuse_differences, training_params
from fer_utils.training import train_or_reuse

PUBLISHED_PARAMS = {"model": "se", "epochs": 100, "batch_size": 64, "learning_rate": 0.002, "seed": 0,
                    "protocol": "clean", "precision": "auto", "patience": 16, "schedule": "plateau"}
"""What reports/v1/se/run_info.json (the literal recipe) recorded: only train's own arguments, the model options left
at their defaults."""


@pytest.fixture
def finished_run(tmp_path, tiny_synthetic):
    """A fake finished run folder (no training): metrics.json and a run_info.json like the published one."""
    out = tmp_path / "se"
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5}))
    info = {"params": PUBLISHED_PARAMS, "precision": "mixed_bfloat16", "data_source": "x",
            "synthetic_data": tiny_synthetic.synthetic, "counts": tiny_synthetic.counts()}
    (out / "run_info.json").write_text(json.dumps(info))
    return out, info


@pytest.fixture
def no_training(monkeypatch):
    calls = []
    monkeypatch.setattr(training, "train", lambda *a, **kw: calls.append(kw) or {"trained": True})
    return calls


def test_train_defaults_are_those_of_trains_signature():
    # Breaks if a parameter of train() was added or its default changed without TRAIN_DEFAULTS: a run recorded
    # without that parameter would then compare as trained differently (or alike when it was not).
    signature = inspect.signature(training.train).parameters.items()
    defaults = {name: p.default for name, p in signature
                if p.default is not inspect.Parameter.empty and name not in NOT_TRAINING_PARAMS}
    assert TRAIN_DEFAULTS == defaults


def test_recorded_defaults_equal_spelled_out_defaults():
    assert training_params("se", **{k: v for k, v in PUBLISHED_PARAMS.items() if k != "model"}) == training_params(
        "se", filters=[32, 64, 128], dense_units=256, se_ratio=16, dense_dropout=0.5)


def test_same_parameters_and_data_are_reused(finished_run, tiny_synthetic, no_training):
    out, _ = finished_run
    assert train_or_reuse("se", tiny_synthetic, out, epochs=100, verbose=0) == {"test_accuracy": 0.5}
    assert no_training == []


@pytest.mark.parametrize("change", [{"seed": 1}, {"schedule": "cosine"}, {"flip": True}, {"batch_norm": True},
                                    {"dense_dropout": 0.0}, {"filters": (64, 128, 256)}, {"dense_units": 512},
                                    {"protocol": "paper"}, {"epochs": 40}, {"se_ratio": 8},
                                    {"precision": "float32"}])
def test_any_other_training_parameter_retrains(finished_run, tiny_synthetic, no_training, change):
    out, _ = finished_run
    assert train_or_reuse("se", tiny_synthetic, out, **{"epochs": 100, "verbose": 0, **change}) == {"trained": True}


def test_an_explicit_precision_equal_to_what_auto_chose_is_reused(finished_run, tiny_synthetic, no_training):
    out, _ = finished_run
    train_or_reuse("se", tiny_synthetic, out, precision="mixed_bfloat16")
    assert no_training == []


def test_a_run_of_the_other_model_is_not_reused(finished_run, tiny_synthetic, no_training):
    out, _ = finished_run
    assert train_or_reuse("baseline", tiny_synthetic, out) == {"trained": True}


def test_other_data_retrains(finished_run, tiny_synthetic, no_training):
    out, info = finished_run
    info["counts"]["train"]["angry"] += 1
    (out / "run_info.json").write_text(json.dumps(info))
    assert train_or_reuse("se", tiny_synthetic, out) == {"trained": True}


def test_without_retraining_the_differing_parameter_is_named(finished_run, tiny_synthetic, no_training):
    out, _ = finished_run
    with pytest.raises(ValueError, match=r"seed: the run has 0, asked for 1"):
        train_or_reuse("se", tiny_synthetic, out, seed=1, retrain=False)
    assert no_training == []


def test_differences_list_every_differing_parameter(finished_run, tiny_synthetic):
    _, info = finished_run
    names = [d.split(":")[0] for d in reuse_differences(info, tiny_synthetic, "se", seed=2, flip=True)]
    assert names == ["flip", "seed"]
