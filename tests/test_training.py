"""fer_utils.training: one tiny run's folder holds everything a report needs, and it is consistent."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest

from fer_utils import callbacks as fit_callbacks
from fer_utils import hardware, training
from fer_utils.evaluation import evaluate_split
from fer_utils.hardware import resolve_precision
from fer_utils.training import train

SPLITS_ALL = ("train", "val", "test", "test_all")
RUN_FILES = ("model.keras", "history.csv", "metrics.json", "predictions.npz", "run_info.json")
STALE_HISTORY = "epoch,accuracy,loss,val_accuracy,val_loss\n" + "".join(
    f"{e},0.9,0.1,0.99,0.05\n" for e in range(3))


@pytest.fixture(scope="module")
def se_run(tmp_path_factory, tiny_synthetic):
    """ONE 1-epoch SE-CNN run (clean protocol, float32), shared by the tests that read its folder."""
    out = tmp_path_factory.mktemp("se_run")
    returned = train("se", tiny_synthetic, out, epochs=1, precision="float32", verbose=0)
    return out, returned


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory, tiny_synthetic):
    """ONE 1-epoch baseline run with the paper's protocol (validation on test_all).

    It trains into a folder that an earlier, finished run left a 3-epoch history.csv in.
    """
    out = tmp_path_factory.mktemp("paper_run")
    (out / "history.csv").write_text(STALE_HISTORY)
    train("baseline", tiny_synthetic, out, epochs=1, precision="float32", protocol="paper", verbose=0)
    return out


def read_json(path):
    return json.loads(path.read_text())


# --- the run folder ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_finished_run_folder_holds_all_artifacts_and_no_backup(se_run):
    out, _ = se_run
    assert sorted(p.name for p in out.iterdir()) == sorted(RUN_FILES)


@pytest.mark.slow
def test_metrics_json_is_what_train_returns(se_run):
    out, returned = se_run
    assert read_json(out / "metrics.json") == json.loads(json.dumps(returned))


@pytest.mark.slow
@pytest.mark.parametrize("split", SPLITS_ALL)
def test_metrics_hold_loss_accuracy_and_a_confusion_matrix_per_split(se_run, tiny_synthetic, split):
    metrics = read_json(se_run[0] / "metrics.json")
    scores = metrics["splits"][split]
    cm = np.array(scores["confusion_matrix"])
    size = int(tiny_synthetic.mask(split).sum())
    assert cm.shape == (7, 7) and cm.sum() == size == scores["n"]
    np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(tiny_synthetic.xy(split)[1], minlength=7))
    assert scores["accuracy"] == pytest.approx(np.trace(cm) / size) == metrics[f"{split}_accuracy"]
    assert np.isfinite(scores["loss"]) and scores["loss"] == metrics[f"{split}_loss"] > 0


@pytest.mark.slow
def test_predictions_are_test_all_probabilities_with_labels_and_file_ids(se_run, tiny_synthetic):
    out, _ = se_run
    predictions = np.load(out / "predictions.npz")
    _, labels = tiny_synthetic.xy("test_all")
    assert predictions["probs"].shape == (len(labels), 7)
    np.testing.assert_allclose(predictions["probs"].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(predictions["labels"], labels)
    np.testing.assert_array_equal(predictions["file_ids"], tiny_synthetic.file_ids[tiny_synthetic.mask("test_all")])
    accuracy = (predictions["probs"].argmax(axis=1) == labels).mean()
    assert accuracy == pytest.approx(read_json(out / "metrics.json")["test_all_accuracy"])


@pytest.mark.slow
def test_run_info_records_precision_backend_params_epochs_and_speed(se_run):
    out, _ = se_run
    info = read_json(out / "run_info.json")
    assert info["precision"] == "float32"
    assert info["keras_backend"] == keras.backend.backend()
    assert info["params"]["model"] == "se" and info["params"]["epochs"] == 1
    assert info["params"]["protocol"] == "clean"
    assert info["epochs_run"] == 1 == info["best_epoch"] and info["epochs_before_resume"] == 0
    history = pd.read_csv(out / "history.csv")
    assert info["median_train_seconds"] == pytest.approx(history["train_seconds"].median())
    assert info["train_step_images_per_second"] == pytest.approx(
        sum(info["counts"]["train"].values()) / history["train_seconds"].median())
    assert "train_images_per_second" not in info  # the old name, for a rate over whole epochs
    assert info["parameters"] == keras.models.load_model(out / "model.keras").count_params()


@pytest.mark.slow
def test_history_has_one_row_per_epoch_with_time_and_learning_rate(se_run):
    history = pd.read_csv(se_run[0] / "history.csv")
    assert len(history) == 1
    assert 0 < history["train_seconds"].iloc[0] < history["epoch_seconds"].iloc[0]  # steps only, validation left out
    assert history["learning_rate"].iloc[0] == pytest.approx(0.002)


@pytest.mark.slow
def test_saved_model_reproduces_the_reported_test_accuracy(se_run, tiny_synthetic):
    out, _ = se_run
    scores = evaluate_split(keras.models.load_model(out / "model.keras"), tiny_synthetic, "test")
    metrics = read_json(out / "metrics.json")
    assert scores["accuracy"] == metrics["test_accuracy"]
    assert scores["loss"] == pytest.approx(metrics["test_loss"], rel=1e-6)


# --- protocols ---------------------------------------------------------------------------------------


def assert_validated_on(run_dir, data, split: str, other: str):
    """history.csv's val_loss is Keras' own loss of the saved model on `split` (and clearly not on `other`).

    Keras' loss, not metrics.json's: Keras computes it from the softmax logits, without the clipping
    that loss_and_accuracy applies, so the two differ for a saturated 1-epoch model.
    """
    model = keras.models.load_model(run_dir / "model.keras")

    def keras_loss(name):
        x, y = data.xy(name)
        return model.evaluate(x, keras.utils.to_categorical(y, 7), batch_size=64, verbose=0, return_dict=True)["loss"]

    val_loss = pd.read_csv(run_dir / "history.csv")["val_loss"].iloc[-1]
    expected, unexpected = keras_loss(split), keras_loss(other)
    assert abs(expected - unexpected) > 1e-3  # the check can tell the two splits apart
    assert val_loss == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow
def test_clean_protocol_validates_on_publictest(se_run, tiny_synthetic):
    assert_validated_on(se_run[0], tiny_synthetic, "val", other="test_all")


@pytest.mark.slow
def test_paper_protocol_validates_on_all_test_images(paper_run, tiny_synthetic):
    assert_validated_on(paper_run, tiny_synthetic, "test_all", other="val")
    assert read_json(paper_run / "run_info.json")["params"]["protocol"] == "paper"


@pytest.mark.slow
def test_a_fresh_run_in_a_used_folder_starts_a_new_history(paper_run):
    history = pd.read_csv(paper_run / "history.csv")
    assert len(history) == 1 and history["val_accuracy"].iloc[0] != 0.99
    assert read_json(paper_run / "metrics.json")["epochs_run"] == 1


def callback(callbacks, kind):
    return next(cb for cb in callbacks if isinstance(cb, kind))


def test_a_fresh_run_checkpoints_its_first_epoch(tmp_path):
    callbacks = training.paper_callbacks(tmp_path)
    assert callback(callbacks, keras.callbacks.ModelCheckpoint).best is None  # no bar: any first epoch is saved
    assert callback(callbacks, keras.callbacks.EarlyStopping).baseline is None


def test_a_resumed_run_must_beat_the_best_epoch_before_the_interruption(tmp_path):
    (tmp_path / "backup").mkdir()
    (tmp_path / "model.keras").write_bytes(b"the checkpoint of the best epoch so far")
    (tmp_path / "history.csv").write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.2,0.41,1.3\n1,0.6,1.0,0.47,1.1\n2,0.7,0.9,0.45,1.2\n")
    callbacks = training.paper_callbacks(tmp_path)
    assert callback(callbacks, keras.callbacks.ModelCheckpoint).best == pytest.approx(0.47)
    assert callback(callbacks, keras.callbacks.EarlyStopping).baseline == pytest.approx(0.47)


def test_the_backup_comes_after_the_history_and_the_checkpoint_it_keeps(tmp_path):
    kinds = [type(cb) for cb in training.paper_callbacks(tmp_path)]
    assert kinds[-1] is fit_callbacks.SafeBackupAndRestore
    assert fit_callbacks.SafeCSVLogger in kinds and fit_callbacks.SafeModelCheckpoint in kinds
    # EpochLog logs the rate an epoch used, before ReduceLROnPlateau lowers it.
    assert kinds.index(fit_callbacks.EpochLog) < kinds.index(keras.callbacks.ReduceLROnPlateau)


def test_without_reduce_lr_the_list_has_no_plateau_callback(tmp_path):
    kinds = [type(cb) for cb in training.paper_callbacks(tmp_path, reduce_lr=False)]
    assert keras.callbacks.ReduceLROnPlateau not in kinds and kinds[-1] is fit_callbacks.SafeBackupAndRestore


def test_the_training_callbacks_leave_keras_free_to_dispatch_batches_asynchronously(tiny_synthetic, tmp_path,
                                                                                      monkeypatch):
    # Keras 3 dispatches batch callbacks asynchronously (the device runs ahead) only when no callback has a batch
    # hook; one hook makes every step wait for its results. TensorFlow never does (not thread-safe); JAX and torch
    # do, as simulated here. Breaks if EpochLog, StopOnSignal or the checkpoint/backup callbacks hooked batch ends.
    from keras.src import backend as keras_backend
    from keras.src.utils.python_utils import is_default

    monkeypatch.setattr(keras_backend, "IS_THREAD_SAFE", True)
    recipe = training.paper_callbacks(tmp_path)
    callbacks = [fit_callbacks.TestSplitsLog(tiny_synthetic), *recipe, fit_callbacks.ResumeCounters({}, recipe),
                 fit_callbacks.StopOnSignal()]
    hooked = [type(cb).__name__ for cb in callbacks
              if not getattr(cb, "async_safe", False) and not is_default(cb.on_train_batch_end)]
    assert keras.callbacks.CallbackList(callbacks)._async_train, f"batch hooks in {hooked}"


class _FitCalled(Exception):
    pass


def test_train_fits_through_fit_model_with_paper_callbacks_between_its_own_two(tiny_synthetic, tmp_path,
                                                                                monkeypatch):
    # Breaks if train() made its own model.fit call or its own callbacks list (two versions that can drift).
    seen = {}

    def fake_fit_model(model, x_train, y_train, validation_data, callbacks, **kwargs):
        seen.update(callbacks=callbacks, n_train=len(y_train), n_val=len(validation_data[1]), **kwargs)
        raise _FitCalled

    monkeypatch.setattr(training, "fit_model", fake_fit_model)
    with pytest.raises(_FitCalled):
        train("se", tiny_synthetic, tmp_path, epochs=3, batch_size=32, seed=5, precision="float32", verbose=0,
              filters=(4, 8, 16), dense_units=8)
    callbacks = seen["callbacks"]
    assert isinstance(callbacks[0], fit_callbacks.TestSplitsLog)
    assert isinstance(callbacks[-1], fit_callbacks.StopOnSignal)
    assert isinstance(callbacks[-2], fit_callbacks.ResumeCounters)  # after EarlyStopping and ReduceLROnPlateau
    assert [type(cb) for cb in callbacks[1:-2]] == [type(cb) for cb in training.paper_callbacks(tmp_path)]
    assert (seen["epochs"], seen["batch_size"], seen["seed"], seen["verbose"]) == (3, 32, 5, 0)
    assert seen["n_train"] == int(tiny_synthetic.mask("train").sum())
    assert seen["n_val"] == int(tiny_synthetic.mask("val").sum())


def test_unknown_protocol_is_rejected_before_anything_is_written(tiny_synthetic, tmp_path):
    with pytest.raises(ValueError, match="unknown protocol 'kaggle'"):
        train("se", tiny_synthetic, tmp_path / "run", protocol="kaggle")
    assert not (tmp_path / "run").exists()


@pytest.fixture
def callers_policy():
    """The caller (a notebook, say) works under mixed_bfloat16; put back to float32 after the test."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield "mixed_bfloat16"
    keras.mixed_precision.set_global_policy("float32")


def test_failed_training_gives_the_caller_its_own_policy_back(tiny_synthetic, tmp_path, callers_policy):
    # Breaks if train reset the global policy to float32 (or left its own) instead of restoring the caller's.
    with pytest.raises(ValueError, match="unknown model"):
        train("nope", tiny_synthetic, tmp_path / "run", precision="float32")
    assert keras.mixed_precision.global_policy().name == callers_policy


# --- the training input -------------------------------------------------------------------------------


def _epochs_of_batches(inputs: dict, epochs: int) -> list[np.ndarray]:
    """The images each epoch of a fit would see, read off a `training_inputs` pipeline (image ids in pixel 0)."""
    batches = iter(inputs["x"])
    return [np.concatenate([next(batches)[0].numpy()[:, 0, 0, 0] for _ in range(inputs["steps_per_epoch"])])
            for _ in range(epochs)]


def test_training_inputs_on_tensorflow_show_every_image_once_per_epoch_in_a_new_order():
    x = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1)  # pixel 0 = image id
    inputs = training.training_inputs(x, keras.utils.to_categorical(x[:, 0, 0, 0] % 7, 7), batch_size=16, seed=0)
    first, second = _epochs_of_batches(inputs, epochs=2)
    assert sorted(first) == sorted(second) == list(range(100))
    assert not np.array_equal(first, second)


def test_training_inputs_keep_images_and_labels_together():
    x = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1)
    inputs = training.training_inputs(x, keras.utils.to_categorical(x[:, 0, 0, 0] % 7, 7), batch_size=8, seed=1)
    images, labels = next(iter(inputs["x"]))
    assert np.array_equal(labels.numpy().argmax(axis=1), images.numpy()[:, 0, 0, 0] % 7)


def test_training_inputs_same_seed_same_order():
    x = np.arange(60, dtype=np.uint8).reshape(60, 1, 1, 1)
    onehot = keras.utils.to_categorical(x[:, 0, 0, 0] % 7, 7)
    orders = [_epochs_of_batches(training.training_inputs(x, onehot, 16, seed=3), 1)[0] for _ in range(2)]
    assert np.array_equal(*orders)


def test_training_inputs_are_the_arrays_on_other_backends(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    x, onehot = np.zeros((10, 48, 48, 1), np.uint8), np.zeros((10, 7), np.float32)
    inputs = training.training_inputs(x, onehot, batch_size=4, seed=0)
    assert inputs["x"] is x and inputs["y"] is onehot
    assert inputs["batch_size"] == 4 and inputs["shuffle"] is True


# --- precision -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("flags, native", [
    ("fpu sse2 avx2 avx512f avx512_bf16", True),  # AVX512-BF16 (Cooper Lake, Zen 4)
    ("fpu sse2 avx2 avx512f amx_bf16 amx_tile", True),  # AMX-BF16 (Sapphire Rapids)
    ("fpu sse2 avx2 avx512f avx512bw avx512_vnni", False),  # AVX-512 without bf16 (Skylake-SP, Ice Lake)
    (None, False),  # no /proc/cpuinfo (macOS, Windows)
])
def test_native_cpu_bf16_is_read_from_the_cpu_flags(monkeypatch, flags, native):
    # The probe that the next test's table replaces by a stub. Breaks if bf16 were assumed from AVX-512 alone (auto
    # would then train in emulated bf16, which is slow), or if a machine without /proc/cpuinfo made `auto` raise.
    class CpuInfo:
        def __init__(self, path):
            assert str(path) == "/proc/cpuinfo"

        def read_text(self):
            if flags is None:
                raise FileNotFoundError("/proc/cpuinfo")
            return f"processor\t: 0\nflags\t\t: {flags}\n"

    monkeypatch.setattr(hardware, "Path", CpuInfo)
    assert hardware.cpu_has_bf16() is native


@pytest.mark.parametrize("device, capability, bf16, expected", [
    ("gpu", (9, 0), False, "mixed_bfloat16"),  # H100
    ("gpu", (8, 0), False, "mixed_bfloat16"),  # A100
    ("gpu", (7, 5), True, "mixed_float16"),  # T4: no bf16 on the GPU, whatever the CPU has
    ("gpu", (7, 0), False, "mixed_float16"),  # V100
    ("gpu", (6, 0), False, "mixed_float16"),  # P100
    ("gpu", (6, 1), False, "float32"),  # GTX 1080: float16 at 1/64 rate
    ("gpu", None, False, "float32"),  # a GPU whose capability the backend does not report
    ("cpu", None, True, "mixed_bfloat16"),
    ("cpu", None, False, "float32"),
])
def test_auto_precision_uses_the_half_precision_the_hardware_computes_natively(monkeypatch, device, capability,
                                                                               bf16, expected):
    monkeypatch.setattr(hardware, "accelerator", lambda: device)
    monkeypatch.setattr(hardware, "gpu_compute_capability", lambda: capability, raising=False)
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: bf16)
    assert resolve_precision("auto") == expected


@pytest.mark.parametrize("reported, expected", [((8, 6), (8, 6)), ("8.0", (8, 0)), ("7.5", (7, 5)),
                                                ("gfx90a", None), (None, None)])
def test_compute_capability_is_read_from_each_backends_form(reported, expected):
    # TensorFlow and torch report a tuple, JAX a string; an AMD GPU's architecture name is no capability.
    assert hardware._capability(reported) == expected


def test_mixed_float16_compiles_with_loss_scaling(callers_policy):
    # float16 gradients underflow without it; Keras 3's compile wraps the optimizer under a mixed_float16 policy.
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = training.compiled_model("se", filters=(4, 8, 8), dense_units=8)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_explicit_precision_is_kept(precision):
    assert resolve_precision(precision) == precision


@pytest.mark.parametrize("precision", ["float16", "bfloat16", "bf16", ""])
def test_unknown_precision_is_rejected(precision):
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision(precision)


@pytest.fixture
def bf16_model_file(tmp_path, callers_policy):
    from fer_utils.models import build_model

    build_model("se", filters=(4, 8, 8), dense_units=8).save(tmp_path / "model.keras")  # built under mixed_bfloat16
    keras.mixed_precision.set_global_policy("float32")
    return tmp_path / "model.keras"


def test_a_checkpoint_is_evaluated_as_a_float32_copy_whatever_it_was_trained_in(bf16_model_file, tiny_synthetic):
    # Breaks if metrics.json and predictions.npz followed the training precision (bf16 rounds differently on each
    # machine), or if evaluating converted the caller's model in place.
    from fer_utils import explain
    from fer_utils.evaluation import evaluate_checkpoint

    model = keras.models.load_model(bf16_model_file)
    metrics, predictions = evaluate_checkpoint(model, tiny_synthetic)
    assert metrics["evaluated_in"] == "float32"
    assert {layer.dtype_policy.name for layer in model.layers[1:-1]} == {"mixed_bfloat16"}
    rows = tiny_synthetic.mask("test_all")
    expected = explain.load_float32(bf16_model_file).predict(tiny_synthetic.images[rows], verbose=0)
    np.testing.assert_allclose(predictions["probs"], expected, rtol=1e-5, atol=1e-6)
    assert metrics["test_all_accuracy"] == float((expected.argmax(1) == tiny_synthetic.labels[rows]).mean())


@pytest.mark.parametrize("native", [False, True])
def test_predict_loads_a_bf16_model_in_float32_where_bf16_is_not_native(bf16_model_file, monkeypatch, native):
    # Breaks if predict ran a published mixed_bfloat16 model in emulated bf16 on a CPU without AVX512-BF16 (slow),
    # or threw native bf16 away where the hardware has it.
    from fer_utils import explain, predict

    monkeypatch.setattr(hardware, "accelerator", lambda: "cpu")
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: native)
    model = predict.load_fer_model(bf16_model_file, calibrated=False)
    policies = {layer.dtype_policy.name for layer in model.layers[1:-1]}
    assert policies == ({"mixed_bfloat16"} if native else {"float32"})
    if not native:
        x = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype(np.uint8)
        expected = explain.load_float32(bf16_model_file).predict(x, verbose=0)
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-7)
