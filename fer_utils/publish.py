"""Publish two finished runs as the committed `reports/`: `python -m fer_utils publish RUNS`.

The run folders (models without optimizer state, calibrated), notebooks 05-08 executed on them without showing a face,
and README.md: Table 1, the targets (the paper's reproduction targets, or the robust-model issue's for a pair trained
with the robust profile: `reports/robust/`), the studies, the training runs and the commands that made them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .config import (DENSE_DROPOUT, DENSE_UNITS, FILTERS, MODELS, PAPER_TABLE1, PUBLISH_TARGETS, PUBLISHED_DIR,
                     REPO_ROOT, ROBUST_MODEL_TARGETS, ROBUSTNESS_TARGETS)
from .data import SYNTHETIC
from .pipeline import copy_runs, execute_notebook, notebooks, published_profile
from .runfolder import copy_file, save_without_optimizer, write_text

MAX_MODEL_MB = 25
TARGETS = {kind: row["test_accuracy"] for kind, row in PAPER_TABLE1.items()}
"""Test accuracy that a published reproduction aims at, both the paper's way and clean: Table 1's."""
TRAIN_ACCURACY_MARGIN = 0.03
"""A reproduction's train accuracy should be within this of Table 1's (it shows the model fits as the paper's did)."""
SIGNIFICANCE = 0.05
"""McNemar's p below which README says whether the SE-CNN is above the baseline; at or above it: **not shown**."""
STUDY_RESULTS = REPO_ROOT / "benchmarks" / "results"
"""Where the width study's and the seeds' tables are (benchmarks/study_table.py, benchmarks/seeds_table.py)."""
PUBLISHED_NOTEBOOKS = {"05_": {"models_dir": ".", "n_gallery": 0}, "06_": {"models_dir": ".", "show_faces": False},
                       "07_": {"predict_out": "07_predict"}, "08_": {"models_dir": ".", "show_faces": False}}
"""The notebooks `publish` executes in the published folder, with the parameters that keep FER2013's faces out of it
(07's `predict` output, annotated photos, goes to a temporary folder)."""
ROBUST_NOTEBOOKS = {"06_": {"compare_dir": str(PUBLISHED_DIR)},
                    "08_": {"models_dir": str(PUBLISHED_DIR), "robust_dir": "."}}
"""What a robust pair's publish changes in them: 06 measures the paper's published pair beside these models, and 08
reads the paper's pair as "before" and these as "after" (the scrub writes the paths as `reports`)."""


def publish(runs: str | Path, out: str | Path = PUBLISHED_DIR, data: str | None = None,
            kernel: str | None = None, targets: str | None = None) -> int:
    """Publish two finished runs into `out`: run folders (evaluated in float32: `reevaluate_published`; calibrated:
    `calibrate_published`), executed notebooks 05-08 and their figures, README.md.

    The executed notebooks show no faces (PUBLISHED_NOTEBOOKS): FER2013 images must not be committed. `data` is named,
    as given, in README's commands and given to the notebooks (05's leakage analysis, 06's FER+ and robustness
    measures, 07's framing). Each model.keras is published without its optimizer state; one still over MAX_MODEL_MB
    is refused before anything is written.

    Args:
        runs: the folder holding the finished baseline/ and se/ run folders.
        out: where to publish (default: the repository's reports/, `config.PUBLISHED_DIR`).
        data: the data the runs were trained on (FER2013 or "synthetic"), as the README's commands should name it.
        kernel: Jupyter kernel name (None: this Python).
        targets: "paper" (Table 1's reproduction targets) or "robust" (the robust-model issue's: PrivateTest, flips
            at test time, robustness.csv in each run folder, calibration, training time); None: robust when the runs
            were trained with the `robust` profile, else paper.

    Returns:
        0; 1 when a notebook failed (said on stderr, with where its partly executed copy is).
    """
    from .data import load_data

    if targets not in (None, *PUBLISH_TARGETS):
        raise ValueError(f"unknown targets {targets!r}: expected one of {', '.join(PUBLISH_TARGETS)}")
    published = [nb for nb in notebooks() if nb.name[:3] in PUBLISHED_NOTEBOOKS]  # before anything is written
    out = Path(out).resolve()
    _publish_runs(runs, out)
    robust = (targets or ("robust" if published_profile(out) == "robust" else "paper")) == "robust"
    images = load_data(data, quiet=True)
    reevaluate_published(out, images)
    calibrate_published(out, images)
    measure_robustness(out, images if robust else None)
    data_path = _notebook_data(data)
    if not _execute_published(published, out, data, data_path, kernel, runs, robust):
        return 1
    results = out / "results.md"
    body = results.read_text().split("\n", 1)[1].lstrip("\n")  # without its title
    tables, _, figures = body.partition("## Figures\n")
    results.unlink()  # README.md holds it all
    text = "\n".join(_readme_lines(runs, out, data, tables, figures, images if robust else None))
    if data_path not in (None, data):  # the data as the publisher named it, not this machine's absolute path
        text = text.replace(data_path, data)  # (the notebooks and run_info record that one)
    write_text(out / "README.md", text)
    print(f"Published {', '.join(MODELS)} into {out}; see {out / 'README.md'}")
    return 0


def _publish_runs(runs: str | Path, out: Path) -> None:
    """Copy the finished runs into `out`, each model.keras without its optimizer state (published models are for
    prediction and evaluation); a model still over MAX_MODEL_MB raises ValueError before anything is written."""
    with tempfile.TemporaryDirectory(prefix="fer_publish_models_") as tmp:
        for kind in MODELS:
            model, stripped = Path(runs, kind, "model.keras"), Path(tmp, f"{kind}.keras")
            if model.is_file():
                save_without_optimizer(model, stripped)
                if stripped.stat().st_size > MAX_MODEL_MB * 2**20:
                    raise ValueError(f"{model}: {stripped.stat().st_size / 2**20:.1f} MB without optimizer state, "
                                     f"over the {MAX_MODEL_MB} MB allowed for a published model")
        copy_runs(runs, out)
        for kind in MODELS:
            copy_file(Path(tmp, f"{kind}.keras"), out / kind / "model.keras")


def reevaluate_published(out: Path, images) -> None:
    """Re-evaluate each published model as a float32 copy and rewrite its metrics.json and predictions.npz with that
    (`evaluation.evaluate_checkpoint`), so every published number comes from one precision on every machine.

    A run evaluated in its training precision (runs before `evaluated_in`) keeps those numbers in metrics.json under
    `training_precision_evaluation`; the checkpoint's epoch and the run's length are kept as they are.

    Args:
        out: the publish folder, holding baseline/ and se/ with their model.keras and metrics.json.
        images: the data they were trained on (fer_utils.dataset.FerData).
    """
    import keras

    from . import augment  # noqa: F401  (registers the augmentation layers a model may hold)
    from .evaluation import EVALUATION_PRECISION, evaluate_checkpoint
    from .runfolder import save_npz, write_json

    for kind in MODELS:
        folder = out / kind
        before = json.loads((folder / "metrics.json").read_text())
        metrics, predictions = evaluate_checkpoint(keras.models.load_model(folder / "model.keras", compile=False),
                                                   images)
        kept = {key: before[key] for key in ("model", "best_epoch", "epochs_run", "training_precision_evaluation")
                if key in before}
        if before.get("evaluated_in") != EVALUATION_PRECISION and "training_precision_evaluation" not in kept:
            precision = json.loads((folder / "run_info.json").read_text()).get("precision")
            kept["training_precision_evaluation"] = {"precision": precision, **{
                key: value for key, value in before.items() if key.endswith(("_loss", "_accuracy"))}}
        write_json(folder / "metrics.json", {**metrics, **kept})
        save_npz(folder / "predictions.npz", **predictions)
        print(f"{folder / 'metrics.json'}: test accuracy {metrics['test_all_accuracy']:.2%} on all test images, "
              f"evaluated in {EVALUATION_PRECISION}")


def calibrate_published(out: Path, images) -> None:
    """Fit each published model's temperature (calibration.json, which `predict` applies) on PublicTest.

    A calibration.json left from models published earlier is removed first: it belongs to other weights.

    Args:
        out: the publish folder, holding baseline/ and se/ with their model.keras.
        images: the data the notebooks get (FER2013 or the synthetic stand-in: fer_utils.dataset.FerData).
    """
    from .calibration import CALIBRATION, calibrate_run

    for kind in MODELS:
        Path(out, kind, CALIBRATION).unlink(missing_ok=True)
    for kind in MODELS:
        report = calibrate_run(out / kind, images)
        print(f"{out / kind / CALIBRATION}: temperature {report['temperature']:.3f} (fitted on {images.source}'s "
              "PublicTest)")


def measure_robustness(out: Path, images) -> None:
    """Measure each published model under the robust-model issue's target perturbations on PublicTest and PrivateTest
    (`explain.robustness_table`, float32) into robustness.csv beside it; a robustness.csv left from models published
    earlier is removed first (it belongs to other weights).

    Args:
        out: the publish folder, holding baseline/ and se/ with their model.keras.
        images: the data they were trained on; None removes the stale files only (the paper's publish measures none).
    """
    from .explain import ROBUSTNESS, robustness_table

    for kind in MODELS:
        Path(out, kind, ROBUSTNESS).unlink(missing_ok=True)
    if images is None:
        return
    for kind in MODELS:
        table = robustness_table(out / kind / "model.keras", images)
        table.to_csv(out / kind / ROBUSTNESS, index=False)
        lost = table.loc[table["split"] == "test", "points_lost"]
        print(f"{out / kind / ROBUSTNESS}: PrivateTest points lost to the {len(lost)} target perturbations, mean "
              f"{lost.mean():.2f}, worst {lost.max():.2f}")


def _notebook_data(data: str | None) -> str | None:
    """`data` as the published notebooks get it (for the analyses; never shown: no gallery, no faces): a path made
    absolute, since papermill runs them in the publish folder; None without data."""
    if not data:
        return None
    return data if data == SYNTHETIC else str(Path(data).expanduser().resolve())


def _execute_published(published: list[Path], out: Path, data: str | None, data_path: str | None,
                       kernel: str | None, runs: str | Path, robust: bool = False) -> bool:
    """Execute the published notebooks in `out` with PUBLISHED_NOTEBOOKS' parameters (robust models: with
    ROBUST_NOTEBOOKS' too, where the paper's published pair is there to compare), then take this machine's paths out of
    them and out of the run folders' JSON files (`scrub_paths`; the runs' folder becomes RUNS, as README's commands
    name it); False when one failed."""
    logs = Path(tempfile.mkdtemp(prefix="fer_publish_"))  # not in `out`: reports/ holds only what is published
    common = {"run_dir": ".", **({"data_path": data_path} if data_path else {})}  # papermill runs each in `out`
    paper_pair = all((PUBLISHED_DIR / kind / "model.keras").is_file() for kind in MODELS)
    for notebook in published:
        params = {**common, **PUBLISHED_NOTEBOOKS[notebook.name[:3]],
                  **(ROBUST_NOTEBOOKS.get(notebook.name[:3], {}) if robust and paper_pair else {})}
        if "predict_out" in params:  # a folder name, placed in the temporary folder
            params["predict_out"] = str(logs / params["predict_out"])
        if not execute_notebook(notebook, out / notebook.name, params, kernel, log_dir=logs):
            return False
    scrub_paths(out, {**({data_path: data} if data_path not in (None, data) else {}), str(Path(runs).resolve()): "RUNS",
                      str(logs): "<temporary folder>", f"{out}{os.sep}": "", str(out): ".", f"{REPO_ROOT}{os.sep}": "",
                      f"{REPO_ROOT.parent}{os.sep}": f"..{os.sep}"})  # beside the repository, e.g. ../shared/
    return True


SCRUBBED = ("*.ipynb", "*/run_info.json", "*/calibration.json")  # robustness.csv names no path
"""The published files `scrub_paths` rewrites: the executed notebooks and the run folders' records (the training
command, the data source)."""


def scrub_paths(folder: Path, replacements: dict[str, str]) -> None:
    """Rewrite the published files in `folder` (SCRUBBED) without this machine's absolute paths (its data folder,
    the runs' folder, temporary folders, the repository's location), each replaced as `replacements` says, longest
    first.

    Args:
        folder: a publish folder: executed notebooks (*.ipynb) and run folders, rewritten in place.
        replacements: {absolute path as this machine spells it: what the published file says instead}.
    """
    pairs = sorted(replacements.items(), key=lambda pair: -len(pair[0]))
    for path in sorted(f for pattern in SCRUBBED for f in folder.glob(pattern)):
        text = path.read_text(encoding="utf-8")
        for old, new in pairs:  # as printed, and as JSON writes it (backslashes doubled on Windows)
            text = text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1]).replace(old, new)
        write_text(path, text)


def _readme_lines(runs: str | Path, out: Path, data: str | None, tables: str, figures: str,
                  robust_images=None) -> list[str]:
    """README.md of the publish folder, line by line, around notebook 05's `tables` and `figures` (its results.md);
    with `robust_images` (the data), the robust-model issue's targets in place of the reproduction targets."""
    import pandas as pd

    from .evaluation import markdown_table

    rows = pd.DataFrame([_run_summary(kind, out / kind) for kind in MODELS])
    if robust_images is None:
        title, targets = "# Published results: the paper's Table 1 on FER2013", ["## Targets", "", *_targets(out)]
        studies = [*_study_sections(), *_earlier_models(out)]
    else:
        title = "# Published robust models: the paper's two networks trained with the robust recipe"
        targets = ["## Targets of the robust-model issue", "", *_robust_targets(out, robust_images)]
        studies = ["How the recipe was chosen: the regularisation and augmentation study in `benchmarks/README.md`; "
                   "notebook 08 reads it, and measures these models beside the paper's.", ""]
    return [title, "",
            "Generated by `python -m fer_utils publish` from two finished training runs; every number below is "
            "read from the run folders in this directory (commands at the end). Do not edit by hand: regenerate "
            "it.", "",
            tables, *targets, "", *studies,
            *(["What was tried, and what we learned: [NOTES.md](NOTES.md).", ""] if (out / "NOTES.md").is_file()
              else []),
            "## Training runs", "", *markdown_table(rows.set_index("model"), {}), "",
            *_commands_section(runs, out, data),
            "## Figures", "", figures.rstrip("\n"), "", *_notebook_figures(out)]


def _commands_section(runs: str | Path, out: Path, data: str | None) -> list[str]:
    """README's commands: those that trained the runs, re-evaluate and republish them, and explore them in the
    course."""
    infos = {kind: json.loads((out / kind / "run_info.json").read_text()) for kind in MODELS}
    data_arg = f" --data {data}" if data else ""
    name = out.relative_to(REPO_ROOT).as_posix() if out.is_relative_to(REPO_ROOT) else out.name  # as typed in a clone
    profile = published_profile(out)  # the one whose `run --reuse` reuses these runs (the default smoke's does not)
    explore = (f", or `python -m fer_utils run --profile {profile} --reuse {name}{data_arg}` (notebooks 02 and 04 "
               "then reuse these runs instead of training)." if profile else
               " (no profile of `python -m fer_utils run` trains with these runs' parameters: `--reuse` would train "
               "anew).")
    return ["## Commands", "", "Train (each run folder's `run_info.json` records its own command; RUNS stands for the "
            "folder of finished runs given to `publish`):",
            "", "```", *[_command(infos[kind]).replace(str(runs), "RUNS") for kind in MODELS], "```", "",
            "Re-evaluate a published model (prints the test accuracy of the table above):", "", "```",
            *[f"python -m fer_utils evaluate {name}/{kind}/model.keras --split test_all{data_arg}"
              for kind in MODELS], "```", "",
            "Regenerate this page, the figures and the executed notebooks from the run folders:", "", "```",
            f"python -m fer_utils publish RUNS --out {name}{data_arg}", "```", "",
            "Explore them in the course: open `notebooks/05_error_analysis.ipynb` with "
            f"`models_dir = \"../{name}\"`{explore}", ""]


def _command(run_info: dict) -> str:
    """The command that trained a run, as `python -m fer_utils ...` where it was the CLI."""
    command = run_info.get("command", "")
    head, _, rest = command.partition(" ")
    return f"python -m fer_utils {rest}" if head.endswith("__main__.py") else command


def _run_summary(kind: str, folder: Path) -> dict:
    """One row of the training-runs table: epochs, time, precision, machine, model size."""
    from .evaluation import load_run

    run = load_run(folder, predictions=False)
    info, history = run["run_info"], run["history"]
    seconds = _training_seconds(run)
    return {"model": MODELS[kind], "epochs run": info["epochs_run"], "best epoch": info["best_epoch"],
            "training time": f"{seconds / 60:.1f} min", "s/epoch": f"{seconds / len(history):.0f}",
            "precision": info["precision"], "backend": f"{info['keras_backend']} ({info['accelerator']})",
            "machine": f"{info['cpu']}, {info['cpu_count']} cores",
            "model.keras": f"{(folder / 'model.keras').stat().st_size / 2**20:.1f} MB"}


def _training_seconds(run: dict) -> float:
    """A run's training time (`evaluation.load_run`): the sum of its logged epoch seconds, else its fit's wall time."""
    history = run["history"]
    return history["epoch_seconds"].sum() if "epoch_seconds" in history else run["run_info"]["fit_wall_seconds"]


def _verdict(value: float, target: float) -> str:
    """`**met**`, or `**missed** by N points`."""
    return "**met**" if value >= target else f"**missed** by {(target - value) * 100:.2f} points"


def _targets(folder: Path) -> list[str]:
    """Plain statements of which reproduction targets the runs in `folder` met, each measure on its own line.

    Per model: the paper's way (the best epoch's accuracy on all test images, the test set choosing the epoch, as
    Table 1 was made: from the per-epoch log, in the training precision) and clean (PrivateTest accuracy of the
    checkpoint, the epoch PublicTest chose, as metrics.json evaluated it), each against the paper's
    number; its train accuracy against Table 1's (within TRAIN_ACCURACY_MARGIN). Runs that did not log per-epoch
    test accuracies get the test accuracy of their checkpoint instead, said as such.
    """
    from .evaluation import load_run, paper_and_clean_accuracy

    lines, reading, clean = [], {}, set()
    runs = {kind: load_run(folder / kind, predictions=(folder / kind / "predictions.npz").is_file()) for kind in MODELS}
    for kind, name in MODELS.items():
        run = runs[kind]
        metrics, readings = run["metrics"], paper_and_clean_accuracy(run["history"])
        target = TARGETS[kind]
        if readings is None:
            acc = metrics["test_all_accuracy"]
            reading[kind] = acc
            lines.append(f"- {name}: {acc:.2%} on the {metrics['splits']['test_all']['n']:,} test images at the "
                         f"checkpoint PublicTest chose, target {target:.1%}: {_verdict(acc, target)} (this run did "
                         "not log its per-epoch test accuracies, so neither reading below can be given)")
        else:  # clean: the checkpoint (PublicTest's epoch) as metrics.json evaluated it; the paper's way: the log
            reading[kind] = metrics["test_accuracy"]
            clean.add(kind)
            precision = run["run_info"].get("precision", "float32")
            lines += [f"- {name}, the paper's way (epoch {readings['paper_epoch']}, chosen by all test images; "
                      f"per-epoch log, in {precision}): {readings['paper_accuracy']:.2%}, target {target:.1%}: "
                      f"{_verdict(readings['paper_accuracy'], target)}",
                      f"- {name}, clean (PrivateTest at epoch {metrics['best_epoch']}, chosen by PublicTest; "
                      f"{metrics.get('evaluated_in', precision)}): {reading[kind]:.2%}, target {target:.1%}: "
                      f"{_verdict(reading[kind], target)}"]
        train, paper_train = metrics["train_accuracy"], PAPER_TABLE1[kind]["train_accuracy"]
        gap, margin = (paper_train - train) * 100, TRAIN_ACCURACY_MARGIN * 100
        verdict = ("**met**" if abs(gap) <= margin else f"**missed** ({gap:.2f} points short)" if gap > 0
                   else f"**missed** ({-gap:.2f} points above)")
        lines.append(f"- {name}, train accuracy: {train:.2%}, target within {margin:.0f} points of the paper's "
                     f"{paper_train:.2%}: {verdict}")
    lines.append(_gain_line(runs, clean=len(clean) == len(MODELS)))
    return lines


def _gain_line(runs: dict, clean: bool) -> str:
    """Whether the SE-CNN is above the baseline, with McNemar's exact test on each reading.

    The readings: clean (PrivateTest at each checkpoint; only when `clean`, both runs having logged the paper's way
    too) and all test images at the checkpoints, each gain from metrics.json with its p from the runs' predictions.npz.
    The verdict is the first reading's: **yes** or **no** only where p < SIGNIFICANCE, else **not shown**;
    **untested** when the two runs have no predictions on the same images.

    Args:
        runs: {kind: `evaluation.load_run` of its published folder}, as `_targets` loaded them.
    Returns:
        README's line.
    """
    import numpy as np

    from .evaluation import mcnemar

    base, se = runs["baseline"]["predictions"], runs["se"]["predictions"]
    paired = base is not None and se is not None and np.array_equal(base["file_ids"], se["file_ids"])
    readings = []  # (gain in points, McNemar's p or None, what, which images)
    for key, split, what in ([("test_accuracy", "test", "clean")] if clean else []) + [
            ("test_all_accuracy", None, "on all test images")]:
        gain = 100 * (runs["se"]["metrics"][key] - runs["baseline"]["metrics"][key])
        p = None
        if paired:
            keep = np.ones(len(base["labels"]), bool) if split is None else base["splits"] == split
            p = mcnemar(base["labels"][keep], base["probs"][keep].argmax(1), se["probs"][keep].argmax(1))["p_value"]
        readings.append((gain, p, what, "PrivateTest" if split == "test" else None))
    gain, p = readings[0][:2]
    if p is None:
        verdict = "**untested** (no predictions of both runs on the same images)"
    elif p >= SIGNIFICANCE:
        verdict = f"**not shown** at the {SIGNIFICANCE} level of McNemar's exact test"
    else:
        verdict = (f"{'**yes**' if gain > 0 else '**no** (the baseline is ahead)'} at the {SIGNIFICANCE} level of "
                   "McNemar's exact test")
    details = []
    for gain, p, what, images in readings:
        notes = [note for note in (images, None if p is None else f"p = {p:.2g}") if note]
        details.append(f"{gain:+.2f} points {what}" + (f" ({', '.join(notes)})" if notes else ""))
    return f"- SE-CNN above the baseline: {verdict}: {'; '.join(details)}"


def _at_most(value: float, limit: float, unit: str = "") -> str:
    """`**met**`, or `**missed** by N unit`, for a target that `value` must not exceed."""
    return "**met**" if value <= limit else f"**missed** by {value - limit:.2f}" + (f" {unit}" if unit else "")


def _robust_targets(folder: Path, images) -> list[str]:
    """The robust-model issue's targets, judged on the runs in `folder` (their metrics.json, calibration.json,
    robustness.csv and history.csv) and, for the flips at test time, on `images`' PrivateTest.

    The targets are the SE-CNN's (config.ROBUST_MODEL_TARGETS, config.ROBUSTNESS_TARGETS); the CNN trained with the
    same recipe is reported beside it, with whether SE still helps.
    """
    import pandas as pd

    from .calibration import CALIBRATION
    from .evaluation import load_run, markdown_table, predict_proba
    from .explain import ROBUSTNESS, load_float32, perturbation_label

    runs = {kind: load_run(folder / kind) for kind in MODELS}
    x_test, y_test = images.xy("test")
    target = ROBUST_MODEL_TARGETS["private_test_accuracy"]
    lines = []
    for kind, name in MODELS.items():
        metrics = runs[kind]["metrics"]
        flips = (predict_proba(load_float32(folder / kind / "model.keras"), x_test, tta=True).argmax(1) == y_test)
        single = (f"{metrics['test_accuracy']:.2%}, target {target:.1%}: {_verdict(metrics['test_accuracy'], target)}"
                  if kind == "se" else f"{metrics['test_accuracy']:.2%}")
        lines.append(f"- {name}, PrivateTest, one view (epoch {metrics['best_epoch']}, chosen by PublicTest; "
                     f"{metrics.get('evaluated_in', 'float32')}): {single}; with flips at test time (each face "
                     f"averaged with its mirror image, reported apart): {flips.mean():.2%}")
    lines.append(_gain_line(runs, clean=True))
    limit = ROBUST_MODEL_TARGETS["ece_after"]
    for kind, name in MODELS.items():
        cal = json.loads((folder / kind / CALIBRATION).read_text())
        verdict = f", target at most {limit:.2f}: {_at_most(cal['ece_after'], limit)}" if kind == "se" else ""
        lines.append(f"- {name}, expected calibration error on PrivateTest after temperature scaling (T = "
                     f"{cal['temperature']:.2f}, fitted on PublicTest): {cal['ece_after']:.3f} (before: "
                     f"{cal['ece_before']:.3f}){verdict}")
    hours = ROBUST_MODEL_TARGETS["run_hours"]
    for kind, name in MODELS.items():
        run = runs[kind]
        spent = _training_seconds(run) / 3600
        lines.append(f"- {name}, training time: {spent:.2f} h for {len(run['history'])} epoch(s) (sum of the logged "
                     f"epoch seconds, on {run['run_info']['cpu']}, {run['run_info']['cpu_count']} cores), target at "
                     f"most {hours:g} h: {_at_most(spent, hours, 'h')}")
    tables = {kind: pd.read_csv(folder / kind / ROBUSTNESS).query("split == 'test'").set_index(
        ["perturbation", "strength"])["points_lost"] for kind in MODELS}
    rows = []
    for (kind_of_change, strength), limit in ROBUSTNESS_TARGETS.items():
        lost = {kind: float(tables[kind].get((kind_of_change, float(strength)), float("nan"))) for kind in MODELS}
        se_verdict = "not measured" if pd.isna(lost["se"]) else _at_most(lost["se"], limit, "points")
        rows.append({"perturbation": perturbation_label(kind_of_change, strength),
                     **{f"{MODELS[k]} points lost": lost[k] for k in MODELS}, "target (at most)": float(limit),
                     "SE-CNN against it": se_verdict})
    table = pd.DataFrame(rows).set_index("perturbation")
    numeric = [c for c in table.columns if c != "SE-CNN against it"]
    lines += ["", "Accuracy points lost on PrivateTest to each target perturbation at notebook 06's middle strengths "
              "(`robustness.csv` in each run folder, float32; the same perturbations on PublicTest are there too):", "",
              *markdown_table(table, dict.fromkeys(numeric, ".2f"), right=numeric)]
    return lines


def _configuration(params: dict) -> str:
    """A run's model and training choices where the paper is silent, in a few words (from run_info.json params)."""
    filters = "-".join(str(f) for f in params.get("filters", FILTERS))
    parts = [filters, f"dense {params.get('dense_units', DENSE_UNITS)}",
             f"dense dropout {params.get('dense_dropout', DENSE_DROPOUT)}",
             "batch norm" if params.get("batch_norm") else "no batch norm"]
    if params.get("flip"):
        parts.append("flips")
    return ", ".join(parts) + f"; {params.get('schedule', 'plateau')} schedule, {params.get('epochs')} epochs at most"


def _earlier_models(out: Path) -> list[str]:
    """A section on the models published before these, kept in `out`/v1/ (none: no lines)."""
    earlier = out / "v1"
    if not all((earlier / kind / "metrics.json").is_file() for kind in MODELS):
        return []
    import pandas as pd

    from .evaluation import load_run, markdown_table

    rows = {}
    for kind, name in MODELS.items():
        run = load_run(earlier / kind, predictions=False)
        metrics, params = run["metrics"], run["run_info"]["params"]
        rows[name] = {"configuration": _configuration(params), "train acc": metrics["train_accuracy"],
                      "test acc (all test images, at the checkpoint)": metrics["test_all_accuracy"],
                      "PrivateTest acc": metrics["test_accuracy"]}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")
    accuracies = list(table.columns[1:])
    return ["## Earlier models (v1/)", "",
            "The models published before these, kept in `v1/` with their run folders and README: the paper's text "
            "taken literally, with the widths this project first chose.", "",
            *markdown_table(table, dict.fromkeys(accuracies, ".2%"), right=accuracies), ""]


def _study_sections(results: Path = STUDY_RESULTS) -> list[str]:
    """The width study's table and the seeds table, as their scripts wrote them (absent ones are left out)."""
    lines = []
    for name, title in (("study", "How the configuration was chosen: the width study"),
                        ("seeds", "Seeds: the SE-CNN against the CNN")):
        readme = results / name / "README.md"
        if readme.is_file():
            body = readme.read_text().split("\n", 1)[1].strip().replace("\n### ", "\n#### ")
            lines += [f"## {title}", "", body, ""]
    return lines


def _notebook_figures(out: Path) -> list[str]:
    """README lines embedding the figures that notebooks 06 to 08 wrote into `out`/figures, under their notebook."""
    lines = []
    for notebook in notebooks():
        prefix = notebook.name[:3]
        pngs = sorted((out / "figures").glob(f"{prefix}*.png")) if prefix != "05_" else []
        if pngs:
            lines += [f"### [{notebook.stem}]({notebook.name})", "",
                      *[f"![{png.stem}](figures/{png.name})" for png in pngs], ""]
    return lines
