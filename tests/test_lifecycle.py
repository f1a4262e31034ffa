"""The training lifecycle behind every published number: early stopping and the checkpoint it keeps, the learning
rate schedules, resumption of a killed run, and bf16 training.

Every test trains a tiny model (filters 4, 8, 16; dense 8) on a few dozen synthetic faces for a few epochs, so it
is marked slow. Where validation accuracy must follow a known course, a callback placed before EarlyStopping,
ModelCheckpoint and ReduceLROnPlateau overwrites the epoch's `val_accuracy` with a scripted value (they all read it
from the same logs); the per-epoch accuracies and losses on PublicTest that `TestSplitsLog` logs stay real, and they
are what the saved checkpoint is checked against. Resumption after a kill is also covered by tests/test_crash_safety.py
(a run stopped before each chosen step of its writes by fault injection, and a resumed model as good as an
uninterrupted one, within 0.15 on PrivateTest); the resume tests here use the suite's one real SIGKILL (POSIX only)
and add what that file does not check: the optimizer state and learning rate carried over, and
`epochs_before_resume`. Each test names the broken implementation it catches.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pandas as pd
import pytest

from conftest import sigint_after_epoch
from fer_utils import cli, plots, training
from fer_utils.callbacks import TrainingInterrupted
from fer_utils.config import REDUCE_LR_FACTOR, REDUCE_LR_MIN, REDUCE_LR_PATIENCE
from fer_utils.evaluation import loss_and_accuracy, predict_proba
from fer_utils.hardware import resolve_precision
from fer_utils.runfolder import BACKUP, HISTORY, METADATA, WEIGHTS, check_backup
from fer_utils.training import train

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
TINY = dict(precision="float32", verbose=0, filters=(4, 8, 16), dense_units=8)


class ScriptedValAccuracy(keras.callbacks.Callback):
    """Sets each epoch's `val_accuracy` to a scripted value, for the callbacks after it to read."""

    def __init__(self, values):
        super().__init__()
        self.values = list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs["val_accuracy"] = self.values[epoch]


def with_callbacks(monkeypatch, before=(), after=()):
    """Make `train` run `before` ahead of the paper's callbacks (EarlyStopping, checkpoint, ...) and `after` them."""
    real = training.paper_callbacks
    monkeypatch.setattr(training, "paper_callbacks", lambda *a, **k: [*before, *real(*a, **k), *after])


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


# --- early stopping and the checkpoint it keeps -----------------------------------------------------------------

PEAK, PATIENCE = 3, 3
SCRIPT = [0.30, 0.50, 0.70, 0.60, 0.65, 0.70, 0.90, 0.95]
"""Validation accuracy per epoch: the best at epoch 3 (1-based); epochs 4-6 do not beat it (epoch 6 only ties it),
so training must stop after epoch 6; epochs 7 and 8, which would beat it, must never run."""


@pytest.fixture(scope="module")
def early_stopped(tmp_path_factory, tiny_synthetic):
    out = tmp_path_factory.mktemp("early_stopped")
    with pytest.MonkeyPatch.context() as mp:
        with_callbacks(mp, before=[ScriptedValAccuracy(SCRIPT)])
        train("baseline", tiny_synthetic, out, epochs=len(SCRIPT), patience=PATIENCE, **TINY)
    return out


def test_training_stops_after_patience_epochs_without_improvement(early_stopped):
    # Breaks if `patience` did not reach EarlyStopping (the default 16: all 8 epochs run), if a tie counted as an
    # improvement (it would run on to epoch 7) or if training stopped at the peak itself.
    history = pd.read_csv(early_stopped / HISTORY)
    assert history["epoch"].tolist() == list(range(PEAK + PATIENCE))
    assert history["val_accuracy"].tolist() == SCRIPT[:PEAK + PATIENCE]
    assert read_json(early_stopped / "run_info.json")["epochs_run"] == PEAK + PATIENCE


def test_best_epoch_is_the_epoch_of_the_best_validation_accuracy(early_stopped):
    # Breaks on a 0-based best_epoch, on the last epoch taken as the best, or on the later tie (epoch 6) winning.
    assert read_json(early_stopped / "metrics.json")["best_epoch"] == PEAK
    assert read_json(early_stopped / "run_info.json")["best_epoch"] == PEAK


def test_model_keras_holds_the_best_epochs_weights(early_stopped, tiny_synthetic):
    # model.keras re-evaluated on PublicTest gives exactly what TestSplitsLog measured at the end of epoch 3, with
    # the weights of that moment, and not what any later epoch measured. Breaks if the checkpoint saved every epoch
    # (save_best_only lost: epoch 6's weights), saved on a tie, or monitored another quantity (val_loss).
    history = pd.read_csv(early_stopped / HISTORY)
    x, y = tiny_synthetic.xy("val")
    scores = loss_and_accuracy(predict_proba(keras.models.load_model(early_stopped / "model.keras"), x), y)
    assert scores["loss"] == pytest.approx(history["public_test_loss"][PEAK - 1], rel=1e-6)
    assert scores["accuracy"] == history["public_test_accuracy"][PEAK - 1]
    later = history["public_test_loss"][PEAK:]
    assert all(abs(scores["loss"] - v) > 1e-5 for v in later)  # the weights did change after the peak


def test_metrics_json_describes_the_kept_checkpoint_not_the_last_epoch(early_stopped, tiny_synthetic):
    history = pd.read_csv(early_stopped / HISTORY)
    metrics = read_json(early_stopped / "metrics.json")
    assert metrics["val_loss"] == pytest.approx(history["public_test_loss"][PEAK - 1], rel=1e-6)
    assert metrics["test_loss"] == pytest.approx(history["private_test_loss"][PEAK - 1], rel=1e-6)


# --- ReduceLROnPlateau ------------------------------------------------------------------------------------------

PLATEAU_LR = 3 * REDUCE_LR_MIN
"""Starting rate: two drops by 0.5 would take it to 0.75 x the floor, so the second one must stop at the floor."""
PLATEAU_EPOCHS = 3 * REDUCE_LR_PATIENCE + 3


def expected_plateau_rates(epochs: int, lr: float) -> list[float]:
    """The rate used in each epoch when validation accuracy never improves after the first epoch.

    Keras' ReduceLROnPlateau takes epoch 1 as the best so far, then counts the epochs without improvement; at
    `patience` of them it multiplies the rate by `factor` (never below `min_lr`) and counts again from zero. So the
    rate drops at the end of epochs P + 1, 2P + 1, 3P + 1... (1-based), and epoch e (0-based) runs at
    lr * factor ** ((e - 1) // P), floored.
    """
    return [max(lr * REDUCE_LR_FACTOR ** ((e - 1) // REDUCE_LR_PATIENCE if e else 0), REDUCE_LR_MIN)
            for e in range(epochs)]


@pytest.fixture(scope="module")
def plateau_run(tmp_path_factory, tiny_synthetic):
    out = tmp_path_factory.mktemp("plateau")
    with pytest.MonkeyPatch.context() as mp:
        with_callbacks(mp, before=[ScriptedValAccuracy([0.5] * PLATEAU_EPOCHS)])
        train("se", tiny_synthetic, out, epochs=PLATEAU_EPOCHS, learning_rate=PLATEAU_LR, patience=100, **TINY)
    return pd.read_csv(out / HISTORY)


def test_the_rate_drops_by_the_factor_after_patience_flat_epochs_and_stops_at_the_floor(plateau_run):
    # Breaks if the factor, patience or floor were not the configured ones, or the rate could fall below the floor
    # (min_lr lost: 0.75e-5 in the third plateau).
    rates = plateau_run["learning_rate"].to_numpy()
    np.testing.assert_allclose(rates, expected_plateau_rates(PLATEAU_EPOCHS, PLATEAU_LR), rtol=1e-6)
    assert rates.min() == pytest.approx(REDUCE_LR_MIN, rel=1e-6)


def test_history_records_the_rate_used_during_each_epoch_and_plots_read_it_so(plateau_run):
    # The first drop happens at the end of epoch P + 1 (1-based): that epoch still ran at the old rate, so
    # history.csv shows the new rate first in epoch P + 2's row, and the curves draw the drop between the two.
    # Breaks if the rate were logged after ReduceLROnPlateau had lowered it (epoch P + 1's row would show the new
    # rate: a drop one epoch early), or if learning_rate_drops read the rows the other way.
    rates = plateau_run["learning_rate"].to_numpy()
    p = REDUCE_LR_PATIENCE
    assert rates[p] == pytest.approx(PLATEAU_LR) and rates[p + 1] == pytest.approx(PLATEAU_LR * REDUCE_LR_FACTOR)
    assert plots.learning_rate_drops(plateau_run) == [p + 1, 2 * p + 1]  # 1-based epochs at whose end it fell


# --- cosine schedule -----------------------------------------------------------------------------------------------


def cosine_rate(step: int, peak: float, steps_per_epoch: int, epochs: int) -> float:
    """The quick profile's schedule, as documented: linear warm-up from 0 over the first epoch, then cosine decay
    from `peak` to 0, reached when the last epoch ends (step epochs * steps_per_epoch), and 0 after."""
    warmup, end = steps_per_epoch, epochs * steps_per_epoch
    if step < warmup:
        return peak * step / warmup
    if step >= end:
        return 0.0
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (end - warmup)))


@pytest.mark.parametrize("steps_per_epoch, epochs", [(449, 40), (7, 3), (1, 5)])
def test_cosine_schedule_warms_up_then_decays_to_zero_at_the_last_step_per_step(steps_per_epoch, epochs):
    # (449, 40) is the quick profile on FER2013 (28,709 images in batches of 64). Breaks if the warm-up were left
    # out or lasted another length, or the decay ended early (the last epochs at rate 0) or late (cut short).
    schedule = training.learning_rate_schedule("cosine", 0.002, steps_per_epoch, epochs)
    end = steps_per_epoch * epochs
    last_epoch = end - steps_per_epoch
    steps = sorted({*range(0, end + 3, max(1, end // 500)), steps_per_epoch - 1, steps_per_epoch, last_epoch, end})
    got = [float(keras.ops.convert_to_numpy(schedule(s))) for s in steps]
    np.testing.assert_allclose(got, [cosine_rate(s, 0.002, steps_per_epoch, epochs) for s in steps],
                               rtol=1e-5, atol=1e-9)
    assert got[steps.index(steps_per_epoch)] == pytest.approx(0.002)  # the peak, once the first epoch is over
    assert got[steps.index(end)] == pytest.approx(0.0, abs=1e-9)  # the end value, once the last step is done
    assert got[steps.index(last_epoch)] > 0  # and not before: the last epoch still learns


def test_cosine_training_steps_at_the_scheduled_rate_every_step(tmp_path, tiny_synthetic):
    # The rate each optimizer step of a real `train` used, read before the step: the schedule is built with the
    # right steps per epoch (28 images, batches of 8: 4) and epochs. Breaks if train passed the image count or
    # the epoch count where steps were meant, or the input pipeline ran more or fewer steps than an epoch holds.
    class StepRates(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rates: list[float] = []

        def on_train_batch_begin(self, batch, logs=None):
            self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    probe = StepRates()
    epochs, batch = 3, 8
    steps = -(-int(tiny_synthetic.mask("train").sum()) // batch)
    with pytest.MonkeyPatch.context() as mp:
        with_callbacks(mp, after=[probe])
        train("baseline", tiny_synthetic, tmp_path, epochs=epochs, batch_size=batch, schedule="cosine", **TINY)
    expected = [cosine_rate(s, 0.002, steps, epochs) for s in range(steps * epochs)]
    np.testing.assert_allclose(probe.rates, expected, rtol=1e-5, atol=1e-9)
    # history.csv: the rate reached at the end of each epoch (the next step's), so 0 in the last row.
    history = pd.read_csv(tmp_path / HISTORY)
    np.testing.assert_allclose(history["learning_rate"],
                               [cosine_rate((e + 1) * steps, 0.002, steps, epochs) for e in range(epochs)],
                               rtol=1e-5, atol=1e-9)


# --- bf16 -----------------------------------------------------------------------------------------------------------

NATIVE_BF16 = resolve_precision("auto") == "mixed_bfloat16"


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory, tiny_synthetic):
    out = tmp_path_factory.mktemp("bf16")
    train("se", tiny_synthetic, out, epochs=1, **{**TINY, "precision": "mixed_bfloat16"})
    return out


@pytest.mark.skipif(not NATIVE_BF16, reason="no native bf16 here (no AVX512-BF16 or AMX-BF16 CPU, no GPU of "
                    "compute capability 8.0 or more): "
                    "mixed_bfloat16 would only be emulated; `auto` picks mixed_float16 or float32 there")
def test_a_bf16_run_saves_a_model_that_loads_in_safe_mode_with_a_float32_softmax(bf16_run, tiny_synthetic):
    # Breaks if the output layer lost dtype="float32" (bf16 probabilities: rows that do not sum to 1 within 1e-5),
    # if the run did not train in bf16 at all, or if the policy leaked out of train into later code.
    assert read_json(bf16_run / "run_info.json")["precision"] == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"
    model = keras.models.load_model(bf16_run / "model.keras", safe_mode=True)
    conv = model.get_layer("block1_conv1")
    assert conv.dtype_policy.name == "mixed_bfloat16" and conv.compute_dtype == "bfloat16"
    assert conv.kernel.dtype == "float32"  # mixed precision keeps the weights in float32
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    x, y = tiny_synthetic.xy("test")
    probs = model.predict(x, verbose=0)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Re-evaluated here, on the machine and in the process that trained it: exactly the reported numbers.
    assert loss_and_accuracy(probs, y)["accuracy"] == read_json(bf16_run / "metrics.json")["test_accuracy"]


# --- resume: a real process killed after its first epochs, started again with the same command -----------------------

RESUME_EPOCHS, RESUME_SUBSET = 8, 10
RESUME_ARGS = ["train", "--model", "se", "--data", "synthetic", "--subset", str(RESUME_SUBSET), "--epochs",
               str(RESUME_EPOCHS), "--precision", "float32", "--filters", "4,8,16", "--dense-units", "8",
               "--schedule", "cosine"]


def _backup_epoch(out: Path) -> int:
    try:
        return int(json.loads((out / BACKUP / METADATA).read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def _restorable_backup(out: Path) -> Path:
    """The backup a rerun restores (as runfolder.resume_state chooses it): backup/, else backup.old/."""
    for candidate in (out / BACKUP, out / f"{BACKUP}.old"):
        if candidate.is_dir() and check_backup(candidate) is None:
            return candidate
    raise AssertionError(f"no usable backup in {out}: {sorted(p.name for p in out.iterdir())}")


class RestoredState(keras.callbacks.Callback):
    """Placed after the backup callback: the optimizer's variables and the weights once the backup is restored."""

    def __init__(self):
        super().__init__()
        self.optimizer: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []

    def on_train_begin(self, logs=None):
        self.optimizer = [keras.ops.convert_to_numpy(v) for v in self.model.optimizer.variables]
        self.weights = self.model.get_weights()


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """A CLI `train` killed with SIGKILL once its backup holds 2 epochs or more, then the same command again.

    The one real kill of the suite: it may land anywhere, inside a write too, where the fault injection of
    tests/test_crash_safety.py stops only between writes."""
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("no SIGKILL on this platform (Windows): the resume after a kill is tests/test_crash_safety.py's "
                    "fault injection alone here")
    out = tmp_path_factory.mktemp("killed") / "run"
    env = dict(os.environ, FER_UTILS_PAUSE_IN_WRITES="0.05", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, "-m", "fer_utils", *RESUME_ARGS, "--out", str(out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while _backup_epoch(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    first_output = proc.communicate()[0]
    assert not (out / "metrics.json").exists(), "the run finished before it could be killed:\n" + first_output
    assert proc.returncode == -signal.SIGKILL, "the run ended by itself:\n" + first_output
    backup = _restorable_backup(out)
    killed_at = int(read_json(backup / METADATA)["epoch"])
    assert 2 <= killed_at < RESUME_EPOCHS, first_output
    with h5py.File(backup / WEIGHTS, "r") as f:  # what the backup holds, read here, not through Keras
        saved = f["optimizer"]["vars"]
        saved_optimizer = [np.asarray(saved[str(i)]) for i in range(len(saved))]
    steps = -(-7 * RESUME_SUBSET // 64)
    schedule = training.learning_rate_schedule("cosine", 0.002, steps, RESUME_EPOCHS)
    reference = training.compiled_model("se", schedule, filters=TINY["filters"], dense_units=TINY["dense_units"])
    reference.optimizer.build(reference.trainable_variables)
    reference.load_weights(backup / WEIGHTS)
    saved_weights = reference.get_weights()

    probe = RestoredState()
    with pytest.MonkeyPatch.context() as mp:
        with_callbacks(mp, after=[probe])
        status = cli.main([*RESUME_ARGS, "--out", str(out)])
    assert status == 0
    return dict(out=out, killed_at=killed_at, saved_optimizer=saved_optimizer, saved_weights=saved_weights,
                probe=probe)


def test_a_killed_run_resumes_with_one_history_row_per_epoch(killed_and_resumed):
    # Breaks if the rerun started afresh, or kept the killed process's rows and appended the re-run epochs again.
    out = killed_and_resumed["out"]
    assert pd.read_csv(out / HISTORY)["epoch"].tolist() == list(range(RESUME_EPOCHS))
    assert read_json(out / "run_info.json")["epochs_run"] == RESUME_EPOCHS


def test_a_resumed_run_records_epochs_before_resume_and_removes_its_backup(killed_and_resumed):
    # Breaks if run_info.json said 0 (as for a fresh run), or the finished folder kept backup/ (a later rerun of the
    # command would then "resume" a finished run).
    out = killed_and_resumed["out"]
    assert read_json(out / "run_info.json")["epochs_before_resume"] == killed_and_resumed["killed_at"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(BACKUP)]


def test_a_resumed_run_restores_the_optimizer_state_and_weights_of_the_backup(killed_and_resumed):
    # Adam's step count and its first and second moments, exactly as the killed process left them. Breaks if the
    # weights were restored without the optimizer (fresh zeros: the first resumed steps would be full-size Adam
    # steps, and with a schedule the rate would restart from its warm-up).
    probe, saved = killed_and_resumed["probe"], killed_and_resumed["saved_optimizer"]
    assert len(probe.optimizer) == len(saved) > 2
    for restored, kept in zip(probe.optimizer, saved):
        np.testing.assert_array_equal(restored, kept)
    steps_per_epoch = -(-7 * RESUME_SUBSET // 64)
    assert int(probe.optimizer[0]) == killed_and_resumed["killed_at"] * steps_per_epoch  # Adam's iteration count
    moments = probe.optimizer[1:]  # no learning-rate variable: the cosine rate is computed from the step count
    assert np.mean([np.any(v) for v in moments]) > 0.5  # moments that have seen gradients (a dead unit has none)
    for restored, kept in zip(probe.weights, killed_and_resumed["saved_weights"]):
        np.testing.assert_array_equal(restored, kept)


def test_a_resumed_run_continues_the_learning_rate_schedule_where_it_stopped(killed_and_resumed):
    # Every row, before and after the kill, shows the cosine schedule at that epoch's end. Breaks if the step
    # count restarted at the resume (the rows after it would repeat the warm-up and the decay from the top).
    out = killed_and_resumed["out"]
    info = read_json(out / "run_info.json")
    steps = -(-sum(info["counts"]["train"].values()) // info["params"]["batch_size"])
    history = pd.read_csv(out / HISTORY)
    expected = [cosine_rate((e + 1) * steps, 0.002, steps, RESUME_EPOCHS) for e in range(RESUME_EPOCHS)]
    np.testing.assert_allclose(history["learning_rate"], expected, rtol=1e-5, atol=1e-9)


# --- resume: a rate lowered by ReduceLROnPlateau, and the plateau's count ---------------------------------------------

PLATEAU_RESUME_AT, PLATEAU_RESUME_EPOCHS = REDUCE_LR_PATIENCE + 2, 2 * REDUCE_LR_PATIENCE + 4



@pytest.fixture(scope="module")
def plateau_resumed(tmp_path_factory, tiny_synthetic):
    """A flat plateau run (as above) stopped by Ctrl-C after the first drop, then run again to the end."""
    out = tmp_path_factory.mktemp("plateau_resumed")
    flat = ScriptedValAccuracy([0.5] * PLATEAU_RESUME_EPOCHS)
    kwargs = dict(epochs=PLATEAU_RESUME_EPOCHS, learning_rate=PLATEAU_LR, patience=100, **TINY)
    with pytest.MonkeyPatch.context() as mp:
        with_callbacks(mp, before=[flat], after=[sigint_after_epoch(PLATEAU_RESUME_AT)])
        with pytest.raises(TrainingInterrupted):
            train("se", tiny_synthetic, out, **kwargs)
    with pytest.MonkeyPatch.context() as mp:
        with_callbacks(mp, before=[flat])
        train("se", tiny_synthetic, out, **kwargs)
    assert read_json(out / "run_info.json")["epochs_before_resume"] == PLATEAU_RESUME_AT
    return pd.read_csv(out / HISTORY)


def test_a_rate_lowered_before_the_interruption_is_kept_after_it(plateau_resumed):
    # Breaks if the resumed optimizer came back at the configured rate instead of the lowered one.
    rates = plateau_resumed["learning_rate"].to_numpy()
    resumed = PLATEAU_RESUME_AT
    assert rates[resumed - 1] == pytest.approx(PLATEAU_LR * REDUCE_LR_FACTOR, rel=1e-6)
    np.testing.assert_allclose(rates[:resumed + 2],
                               expected_plateau_rates(PLATEAU_RESUME_EPOCHS, PLATEAU_LR)[:resumed + 2], rtol=1e-6)


def test_a_resumed_run_lowers_the_rate_when_an_uninterrupted_run_would(plateau_resumed):
    np.testing.assert_allclose(plateau_resumed["learning_rate"],
                               expected_plateau_rates(PLATEAU_RESUME_EPOCHS, PLATEAU_LR), rtol=1e-6)


def test_a_resumed_run_stops_early_when_an_uninterrupted_run_would(tmp_path, tiny_synthetic):
    # Interrupted after epoch 5, two epochs past the peak at 3: an uninterrupted run stops after epoch 6 (see
    # test_training_stops_after_patience_epochs_without_improvement); a resumed one must too.
    kwargs = dict(epochs=len(SCRIPT), patience=PATIENCE, **TINY)
    with pytest.MonkeyPatch.context() as mp:
        with_callbacks(mp, before=[ScriptedValAccuracy(SCRIPT)], after=[sigint_after_epoch(PEAK + PATIENCE - 1)])
        with pytest.raises(TrainingInterrupted):
            train("baseline", tiny_synthetic, tmp_path, **kwargs)
    with pytest.MonkeyPatch.context() as mp:
        with_callbacks(mp, before=[ScriptedValAccuracy(SCRIPT)])
        train("baseline", tiny_synthetic, tmp_path, **kwargs)
    assert read_json(tmp_path / "run_info.json")["epochs_run"] == PEAK + PATIENCE
