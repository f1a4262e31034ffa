"""Run the course's notebooks in order with papermill into one run folder, and publish finished runs.

`python -m fer_utils run --profile smoke|quick|paper|literal` is the course's main job;
`python -m fer_utils publish RUNS` turns two finished run folders into the committed `reports/`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .config import DENSE_DROPOUT, DENSE_UNITS, FILTERS, MODELS, PAPER_TABLE1, PROFILES, REPO_ROOT, SYNTHETIC_SMOKE
from .config import repo_path
from .data import SYNTHETIC, resolve_data_path, synthetic_banner
from .runfolder import copy_file, save_without_optimizer, write_text

NOTEBOOK_DIR = REPO_ROOT / "notebooks"

RUN_FILES = ("model.keras", "metrics.json", "history.csv", "run_info.json", "predictions.npz")
"""What a published run folder holds (the training backup/ stays behind)."""
MAX_MODEL_MB = 25
TARGETS = {kind: row["test_accuracy"] for kind, row in PAPER_TABLE1.items()}
"""Test accuracy that a published reproduction aims at, both the paper's way and clean: Table 1's."""
TRAIN_ACCURACY_MARGIN = 0.03
"""A reproduction's train accuracy should be within this of Table 1's (it shows the model fits as the paper's did)."""


def notebooks() -> list[Path]:
    """The numbered course notebooks, in order; a FileNotFoundError saying how to get them where this install has none
    (`config.repo_path`)."""
    found = sorted(repo_path(NOTEBOOK_DIR).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no notebooks found in {NOTEBOOK_DIR}")
    return found


def _coerce(value: str):
    """A -p value as papermill would want it: int, float, None, bool, a list for "64,128,256" (or "(64, 128, 256)",
    as the profiles print it), or the string."""
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    if "," in value:
        return [_coerce(v.strip()) for v in value.strip().strip("()[]").split(",") if v.strip()]
    return {"None": None, "none": None, "True": True, "False": False}.get(value, value)


def papermill_value(value, name: str = "value"):
    """`value` as a type that papermill's Python translator writes back faithfully into a notebook.

    The translator knows None, str, bool, int, float, list and dict; anything else (a tuple such as a profile's
    `filters=(32, 64, 128)`) it writes as the *string* of its repr, which a notebook then fails on far from the cause.
    Tuples (and other sequences) become lists, paths strings, NumPy scalars Python numbers; any other type raises
    TypeError naming the parameter. The notebooks turn a list back into what they need (`tuple(filters)`).
    """
    import numbers
    import os

    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(k): papermill_value(v, f"{name}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [papermill_value(v, f"{name}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"notebook parameter {name}: papermill cannot pass a {type(value).__name__} ({value!r}); "
                    "give it as None, a bool, a number, a string, a list or a dict")


def _quiet_papermill() -> None:
    """Keep papermill's log ("Black is not installed", per-cell lines) out of the progress display; errors show."""
    import logging

    logging.getLogger("papermill").setLevel(logging.ERROR)


def notebook_parameters(paths: list[Path] | None = None) -> dict[str, set[str]]:
    """The parameters each notebook declares (its `parameters` cell), by notebook name."""
    import papermill as pm

    _quiet_papermill()
    return {nb.name: set(pm.inspect_notebook(str(nb))) for nb in (paths or notebooks())}


def unknown_parameters(names, paths: list[Path] | None = None) -> list[str]:
    """The names that no notebook declares (a typo in `-p NAME VALUE` would otherwise be dropped silently)."""
    declared = set().union(*notebook_parameters(paths).values())
    return sorted(set(names) - declared)


def copy_runs(source: str | Path, target: str | Path, overwrite: bool = True) -> list[Path]:
    """Copy the baseline/ and se/ run folders' RUN_FILES from `source` into `target`; return the folders written.

    Raises FileNotFoundError naming every missing file. With overwrite=False a finished run already in `target`
    (one with metrics.json) is left alone.
    """
    source, target = Path(source), Path(target)
    missing = [str(source / kind / name) for kind in MODELS for name in RUN_FILES
               if not (source / kind / name).is_file()]
    if missing:
        raise FileNotFoundError("not a folder of two finished runs; missing:\n  " + "\n  ".join(missing))
    written = []
    for kind in MODELS:
        if not overwrite and (target / kind / "metrics.json").is_file():
            continue
        (target / kind).mkdir(parents=True, exist_ok=True)
        for name in sorted(RUN_FILES, key=lambda n: n == "metrics.json"):  # metrics.json, which marks a
            copy_file(source / kind / name, target / kind / name)            # finished run, last; each atomic
        written.append(target / kind)
    return written


KERNEL_ARGUMENTS = ["--IPKernelApp.capture_fd_output=False"]
"""ipykernel copies what C++ code writes to file descriptors 1 and 2 into the cell outputs by default; off, TensorFlow's
start-up lines go to the kernel log (logs/<notebook>.kernel.log) instead of every executed notebook."""


def _kernel_manager(log_path: Path):
    """A Jupyter kernel manager class whose kernels write their own stderr (TensorFlow's C++ start-up lines, which no
    environment variable silences in TF 2.21) to `log_path` instead of this terminal; cell outputs are unaffected."""
    from jupyter_client.manager import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            log_path.parent.mkdir(parents=True, exist_ok=True)
            kw.setdefault("stderr", open(log_path, "ab"))  # noqa: SIM115 (the kernel process owns it)
            return await super().start_kernel(**kw)

    return QuietKernelManager


class _Progress:
    """One status line per notebook: the cell being run and the time so far (in place on a terminal)."""

    def __init__(self, name: str, n_cells: int, stream=None):
        self.name, self.n_cells, self.stream = name, n_cells, stream or sys.stdout
        self.start = time.perf_counter()
        self.tty = self.stream.isatty()

    def cell(self, cell, cell_index: int, **_) -> None:
        if self.tty:
            self.stream.write(f"\r    cell {cell_index + 1}/{self.n_cells}  {time.perf_counter() - self.start:5.0f} s")
            self.stream.flush()

    def done(self, message: str) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 40 + "\r")
        print(f"    {message} in {time.perf_counter() - self.start:.0f} s", file=self.stream, flush=True)


def papermill_parameters(nb: Path, params: dict) -> dict:
    """What papermill is given for notebook `nb`: the parameters in `params` that it declares, each as
    `papermill_value` makes it (so that the notebook receives the value itself, not its repr as a string)."""
    import papermill as pm

    _quiet_papermill()
    declared = pm.inspect_notebook(str(nb))
    return {k: papermill_value(v, k) for k, v in params.items() if k in declared}


def _execute(nb: Path, target: Path, params: dict, kernel: str | None, log_dir: Path | None = None) -> bool:
    """Execute one notebook into `target` with papermill (cwd: target's folder); on failure say where, return False.

    The kernel's own stderr goes to `log_dir` (default: logs/ beside `target`) as <notebook>.kernel.log.
    """

    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    _quiet_papermill()
    nb_params = papermill_parameters(nb, params)
    print(f"\n=== {nb.name}  ({', '.join(f'{k}={v}' for k, v in nb_params.items())})", flush=True)
    progress = _Progress(nb.name, len(nbformat.read(nb, as_version=4).cells))
    try:
        pm.execute_notebook(str(nb), str(target), parameters=nb_params, cwd=str(target.parent),
                            kernel_name=kernel, progress_bar=False, log_output=False,
                            kernel_manager_class=_kernel_manager(
                                Path(log_dir or target.parent / "logs") / f"{nb.stem}.kernel.log"),
                            extra_arguments=KERNEL_ARGUMENTS,
                            on_cell_start=progress.cell)
    except PapermillExecutionError as err:
        progress.done("failed")
        print(f"\nFAILED: {nb.name}, cell {err.exec_count} (execution count): {err.ename}: {err.evalue}\n"
              f"The partially executed notebook is kept at {target}", file=sys.stderr)
        return False
    progress.done(f"done -> {target}")
    return True


def run_parameters(profile: str, data: str | None, run_dir: str | Path, extra: dict[str, str] | None = None) -> dict:
    """The parameters `run_pipeline` offers every notebook (each gets those it declares, via `papermill_parameters`):
    the profile's (SYNTHETIC_SMOKE for smoke on the synthetic set), data_path, run_dir, then the `-p` overrides."""
    synthetic = resolve_data_path(data) is None
    profile_params = SYNTHETIC_SMOKE if profile == "smoke" and synthetic else PROFILES[profile]
    return {**profile_params, "data_path": data, "run_dir": str(run_dir),
            **{k: _coerce(v) for k, v in (extra or {}).items()}}


def run_pipeline(profile: str = "smoke", data: str | None = None, out: str | None = None,
                 extra: dict[str, str] | None = None, kernel: str | None = None, reuse: str | None = None) -> int:
    """Execute every notebook with the profile's parameters; stop at the first failure and say where.

    `reuse`: a folder of finished runs (e.g. the published `reports/`) copied into the run folder first, so that
    notebooks 02 and 04 reuse them instead of training, where they were trained with the same parameters on the same
    data. An `extra` name that no notebook declares raises ValueError (a typo would otherwise be dropped silently).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: expected one of {sorted(PROFILES)}")
    unknown = unknown_parameters(extra or {})
    if unknown:
        raise ValueError(f"unknown notebook parameter(s) {', '.join(unknown)}: no notebook declares them "
                         f"(the parameters are: {', '.join(sorted(set().union(*notebook_parameters().values())))})")
    if data not in (None, "", SYNTHETIC):
        data = str(Path(data).expanduser().resolve())  # the notebooks run in run_dir, not here
    run_dir = Path(out or f"runs/{profile}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    synthetic = resolve_data_path(data) is None
    params = run_parameters(profile, data, run_dir, extra)
    if synthetic:
        print(synthetic_banner(data))
    print(f"Running {len(notebooks())} notebooks, profile {profile!r}, into {run_dir}")
    print(f"parameters: {params}", flush=True)
    if reuse:
        copied = copy_runs(reuse, run_dir, overwrite=False)
        print(f"Reusing the runs in {Path(reuse).resolve()}: {len(copied)} run folder(s) copied into {run_dir}; "
              "notebooks 02 and 04 reuse a run only where it was trained with the same parameters on the same data, "
              "and otherwise say what differs and train anew.")
    for nb in notebooks():
        if not _execute(nb, run_dir / nb.name, params, kernel):
            return 1
    print(f"\nAll notebooks ran. Results: {run_dir / 'results.md'}")
    return 0


def published_profile(folder: str | Path) -> str | None:
    """The profile whose `run --profile NAME --reuse FOLDER` reuses the finished runs in `folder` instead of training:
    the one (on all the data) whose parameters are those both runs were trained with; None when no profile's are."""
    from .training import training_params

    recorded = {}
    for kind in MODELS:
        params = dict(json.loads((Path(folder) / kind / "run_info.json").read_text())["params"])
        recorded[kind] = training_params(params.pop("model", kind), **params)
    for name, profile in PROFILES.items():
        asked = {k: v for k, v in profile.items() if k != "per_class"}
        if profile.get("per_class") is None and all(training_params(kind, **asked) == recorded[kind]
                                                    for kind in MODELS):
            return name
    return None


PUBLISHED_DIR = REPO_ROOT / "reports"
"""The published paper models (run folders baseline/ and se/), which `run` without --profile explores on FER2013."""


def default_run(data: str | None) -> tuple[str, Path | None]:
    """What `run` does when no profile is named: on FER2013 (given or found), the course with the published models
    (the profile whose `--reuse` reuses PUBLISHED_DIR: real results in minutes, nothing trained); otherwise the smoke
    run on the synthetic stand-in.

    Args:
        data: `run`'s --data (None: $FER2013_PATH, then data/; "synthetic" forces the stand-in).

    Returns:
        (profile, the folder of published runs to reuse, or None for the smoke run).
    """
    if resolve_data_path(data) is not None and all((PUBLISHED_DIR / kind / "run_info.json").is_file()
                                                   for kind in MODELS):
        profile = published_profile(PUBLISHED_DIR)
        if profile is not None:
            return profile, PUBLISHED_DIR
    return "smoke", None


def _command(run_info: dict) -> str:
    """The command that trained a run, as `python -m fer_utils ...` where it was the CLI."""
    command = run_info.get("command", "")
    head, _, rest = command.partition(" ")
    return f"python -m fer_utils {rest}" if head.endswith("__main__.py") else command


def _run_summary(kind: str, folder: Path) -> dict:
    """One row of the training-runs table: epochs, time, precision, machine, model size."""
    import pandas as pd

    info = json.loads((folder / "run_info.json").read_text())
    history = pd.read_csv(folder / "history.csv")
    seconds = history["epoch_seconds"].sum() if "epoch_seconds" in history else info["fit_wall_seconds"]
    return {"model": MODELS[kind], "epochs run": info["epochs_run"], "best epoch": info["best_epoch"],
            "training time": f"{seconds / 60:.1f} min", "s/epoch": f"{seconds / len(history):.0f}",
            "precision": info["precision"], "backend": f"{info['keras_backend']} ({info['accelerator']})",
            "machine": f"{info['cpu']}, {info['cpu_count']} cores",
            "model.keras": f"{(folder / 'model.keras').stat().st_size / 2**20:.1f} MB"}


def _verdict(value: float, target: float) -> str:
    """`**met**`, or `**missed** by N points`."""
    return "**met**" if value >= target else f"**missed** by {(target - value) * 100:.2f} points"


def _targets(folder: Path) -> list[str]:
    """Plain statements of which reproduction targets the runs in `folder` met, each measure on its own line.

    Per model: the paper's way (the best epoch's accuracy on all test images, the test set choosing the epoch, as
    Table 1 was made) and clean (PrivateTest accuracy at the epoch PublicTest chose), each against the paper's
    number; its train accuracy against Table 1's (within TRAIN_ACCURACY_MARGIN). Runs that did not log per-epoch
    test accuracies get the test accuracy of their checkpoint instead, said as such.
    """
    import pandas as pd

    from .evaluation import paper_and_clean_accuracy

    lines, reading, clean = [], {}, set()
    for kind, name in MODELS.items():
        metrics = json.loads((folder / kind / "metrics.json").read_text())
        readings = paper_and_clean_accuracy(pd.read_csv(folder / kind / "history.csv"))
        target = TARGETS[kind]
        if readings is None:
            acc = metrics["test_all_accuracy"]
            reading[kind] = acc
            lines.append(f"- {name}: {acc:.2%} on the {metrics['splits']['test_all']['n']:,} test images at the "
                         f"checkpoint PublicTest chose, target {target:.1%}: {_verdict(acc, target)} (this run did "
                         "not log its per-epoch test accuracies, so neither reading below can be given)")
        else:
            reading[kind] = readings["clean_accuracy"]
            clean.add(kind)
            lines += [f"- {name}, the paper's way (epoch {readings['paper_epoch']}, chosen by all test images): "
                      f"{readings['paper_accuracy']:.2%}, target {target:.1%}: "
                      f"{_verdict(readings['paper_accuracy'], target)}",
                      f"- {name}, clean (PrivateTest at epoch {readings['clean_epoch']}, chosen by PublicTest): "
                      f"{readings['clean_accuracy']:.2%}, target {target:.1%}: "
                      f"{_verdict(readings['clean_accuracy'], target)}"]
        train, paper_train = metrics["train_accuracy"], PAPER_TABLE1[kind]["train_accuracy"]
        gap, margin = (paper_train - train) * 100, TRAIN_ACCURACY_MARGIN * 100
        verdict = ("**met**" if abs(gap) <= margin else f"**missed** ({gap:.2f} points short)" if gap > 0
                   else f"**missed** ({-gap:.2f} points above)")
        lines.append(f"- {name}, train accuracy: {train:.2%}, target within {margin:.0f} points of the paper's "
                     f"{paper_train:.2%}: {verdict}")
    gain = (reading["se"] - reading["baseline"]) * 100
    basis = "clean" if len(clean) == len(MODELS) else "at the checkpoints, all test images" if not clean else "mixed"
    lines.append(f"- SE-CNN above the baseline: **{'yes' if gain > 0 else 'no'}** ({gain:+.2f} points, {basis}; "
                 "see McNemar's test above for whether that is more than chance)")
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
    lines = ["## Earlier models (v1/)", "",
             "The models published before these, kept in `v1/` with their run folders and README: the paper's text "
             "taken literally, with the widths this project first chose.", "",
             "| model | configuration | train acc | test acc (all test images, at the checkpoint) | PrivateTest acc |",
             "|---|---|---:|---:|---:|"]
    for kind, name in MODELS.items():
        metrics = json.loads((earlier / kind / "metrics.json").read_text())
        params = json.loads((earlier / kind / "run_info.json").read_text())["params"]
        lines.append(f"| {name} | {_configuration(params)} | {metrics['train_accuracy']:.2%} | "
                     f"{metrics['test_all_accuracy']:.2%} | {metrics['test_accuracy']:.2%} |")
    return [*lines, ""]


STUDY_RESULTS = REPO_ROOT / "benchmarks" / "results"
"""Where the width study's and the seeds' tables are (benchmarks/study_table.py, benchmarks/seeds_table.py)."""


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


PUBLISHED_NOTEBOOKS = {"05_": {"models_dir": ".", "n_gallery": 0}, "06_": {"models_dir": ".", "show_faces": False},
                       "07_": {"predict_out": "07_predict"}, "08_": {"models_dir": ".", "show_faces": False}}
"""The notebooks `publish` executes in the published folder, with the parameters that keep FER2013's faces out of it
(07's `predict` output, annotated photos, goes to a temporary folder)."""


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


def calibrate_published(out: Path, data: str | None) -> None:
    """Fit each published model's temperature (calibration.json, which `predict` applies) on `data`'s PublicTest.

    A calibration.json left from models published earlier is removed first: it belongs to other weights.

    Args:
        out: the publish folder, holding baseline/ and se/ with their model.keras.
        data: the data the notebooks get (FER2013 or "synthetic"); None: whatever `load_data` finds.
    """
    from .calibration import CALIBRATION, calibrate_run
    from .data import load_data

    for kind in MODELS:
        Path(out, kind, CALIBRATION).unlink(missing_ok=True)
    images = load_data(data, quiet=True)
    for kind in MODELS:
        report = calibrate_run(out / kind, images)
        print(f"{out / kind / CALIBRATION}: temperature {report['temperature']:.3f} (fitted on {images.source}'s "
              "PublicTest)")


def scrub_paths(folder: Path, replacements: dict[str, str]) -> None:
    """Rewrite the executed notebooks in `folder` without this machine's absolute paths (its data folder, temporary
    folders, the repository's location), each replaced as `replacements` says, longest first.

    Args:
        folder: a folder of executed notebooks (*.ipynb), rewritten in place.
        replacements: {absolute path as this machine spells it: what the published notebook says instead}.
    """
    pairs = sorted(replacements.items(), key=lambda pair: -len(pair[0]))
    for notebook in sorted(folder.glob("*.ipynb")):
        text = notebook.read_text(encoding="utf-8")
        for old, new in pairs:  # as printed, and as JSON writes it (backslashes doubled on Windows)
            text = text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1]).replace(old, new)
        write_text(notebook, text)


def publish(runs: str | Path, out: str | Path = "reports", data: str | None = None,
            kernel: str | None = None) -> int:
    """Publish two finished runs into `out`: run folders (calibrated: `calibrate_published`), executed notebooks 05-08
    and their figures, README.md.

    The executed notebooks show no faces (PUBLISHED_NOTEBOOKS): FER2013 images must not be committed. `data` is named,
    as given, in README's commands and given to the notebooks (05's leakage analysis, 06's FER+ and robustness
    measures, 07's framing). Each model.keras is published without its optimizer state; one still over MAX_MODEL_MB
    is refused before anything is written.
    """
    import tempfile

    import pandas as pd

    from .evaluation import markdown_table

    published = [nb for nb in notebooks() if nb.name[:3] in PUBLISHED_NOTEBOOKS]  # before anything is written
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory(prefix="fer_publish_models_") as tmp:
        for kind in MODELS:  # published models carry no optimizer state: they are for prediction and evaluation
            model, stripped = Path(runs, kind, "model.keras"), Path(tmp, f"{kind}.keras")
            if model.is_file():
                save_without_optimizer(model, stripped)
                if stripped.stat().st_size > MAX_MODEL_MB * 2**20:
                    raise ValueError(f"{model}: {stripped.stat().st_size / 2**20:.1f} MB without optimizer state, "
                                     f"over the {MAX_MODEL_MB} MB allowed for a published model")
        copy_runs(runs, out)
        for kind in MODELS:
            copy_file(Path(tmp, f"{kind}.keras"), out / kind / "model.keras")
    calibrate_published(out, data)
    logs = Path(tempfile.mkdtemp(prefix="fer_publish_"))  # not in `out`: reports/ holds only what is published
    common = {"run_dir": "."}  # papermill runs each notebook in `out`
    if data:  # the images, for the analyses (never shown: no gallery, no faces)
        common["data_path"] = data if data == SYNTHETIC else str(Path(data).expanduser().resolve())
    for notebook in published:
        params = {**common, **PUBLISHED_NOTEBOOKS[notebook.name[:3]]}
        if "predict_out" in params:  # a folder name, placed in the temporary folder
            params["predict_out"] = str(logs / params["predict_out"])
        if not _execute(notebook, out / notebook.name, params, kernel, log_dir=logs):
            return 1
    scrub_paths(out, {**({common["data_path"]: data} if common.get("data_path", data) != data else {}),
                      str(logs): "<temporary folder>", f"{out}{os.sep}": "", str(out): ".", f"{REPO_ROOT}{os.sep}": "",
                      f"{REPO_ROOT.parent}{os.sep}": f"..{os.sep}"})  # beside the repository, e.g. ../shared/
    results = out / "results.md"
    body = results.read_text().split("\n", 1)[1].lstrip("\n")  # without its title
    tables, _, figures = body.partition("## Figures\n")
    results.unlink()  # README.md holds it all
    infos = {kind: json.loads((out / kind / "run_info.json").read_text()) for kind in MODELS}
    rows = pd.DataFrame([_run_summary(kind, out / kind) for kind in MODELS])
    data_arg = f" --data {data}" if data else ""
    profile = published_profile(out)  # the one whose `run --reuse` reuses these runs (the default smoke's does not)
    explore = (f", or `python -m fer_utils run --profile {profile} --reuse {out.name}{data_arg}` (notebooks 02 and 04 "
               "then reuse these runs instead of training)." if profile else
               " (no profile of `python -m fer_utils run` trains with these runs' parameters: `--reuse` would train "
               "anew).")
    lines = ["# Published results: the paper's Table 1 on FER2013", "",
             "Generated by `python -m fer_utils publish` from two finished training runs; every number below is "
             "read from the run folders in this directory (commands at the end). Do not edit by hand: regenerate "
             "it.", "",
             tables, "## Targets", "", *_targets(out), "", *_study_sections(), *_earlier_models(out),
             *(["What was tried, and what we learned: [NOTES.md](NOTES.md).", ""] if (out / "NOTES.md").is_file()
               else []),
             "## Training runs", "", *markdown_table(rows.set_index("model"), {}), "",
             "## Commands", "", "Train (each run folder's `run_info.json` records its own command; RUNS stands for the "
             "folder of finished runs given to `publish`):",
             "", "```", *[_command(infos[kind]).replace(str(runs), "RUNS") for kind in MODELS], "```", "",
             "Re-evaluate a published model (prints the test accuracy of the table above):", "", "```",
             *[f"python -m fer_utils evaluate {out.name}/{kind}/model.keras --split test_all{data_arg}"
               for kind in MODELS], "```", "",
             "Regenerate this page, the figures and the executed notebooks from the run folders:", "", "```",
             f"python -m fer_utils publish RUNS --out {out.name}{data_arg}", "```", "",
             "Explore them in the course: open `notebooks/05_error_analysis.ipynb` with "
             f"`models_dir = \"../{out.name}\"`{explore}", "", "## Figures", "", figures.rstrip("\n"), "",
             *_notebook_figures(out)]
    text = "\n".join(lines)
    if "data_path" in common and common["data_path"] != data:  # the data as the publisher named it, not this machine's
        text = text.replace(common["data_path"], data)  # absolute path (the notebooks and run_info record that one)
    write_text(out / "README.md", text)
    print(f"Published {', '.join(MODELS)} into {out}; see {out / 'README.md'}")
    return 0

