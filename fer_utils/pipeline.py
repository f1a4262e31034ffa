"""Run the course's notebooks in order with papermill into one run folder.

`python -m fer_utils run --profile smoke|quick|paper|literal` is the course's main job; fer_utils.publish executes the
published notebooks with the same machinery.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .config import (MODELS, NOTEBOOK_DIR, PROFILES, PUBLISHED_DIR, SYNTHETIC_SMOKE, SYNTHETIC_SMOKE_NOTEBOOKS,
                     repo_path)
from .data import SYNTHETIC, resolve_data_path, synthetic_banner
from .runfolder import copy_file


RUN_FILES = ("model.keras", "metrics.json", "history.csv", "run_info.json", "predictions.npz")
"""What a published run folder holds (the training backup/ stays behind)."""


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
KERNEL_START_TIMEOUT = 600
"""Seconds papermill waits for a notebook's kernel to start (papermill's default, 60, failed runs on a loaded 2-core
machine)."""


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


def papermill_parameters(nb: Path, params: dict) -> dict:
    """What papermill is given for notebook `nb`: the parameters in `params` that it declares, each as
    `papermill_value` makes it (so that the notebook receives the value itself, not its repr as a string)."""
    import papermill as pm

    _quiet_papermill()
    declared = pm.inspect_notebook(str(nb))
    return {k: papermill_value(v, k) for k, v in params.items() if k in declared}


def execute_notebook(nb: Path, target: Path, params: dict, kernel: str | None, log_dir: Path | None = None) -> bool:
    """Execute one notebook into `target` with papermill (cwd: target's folder); on failure say where, return False.

    The kernel's own stderr goes to `log_dir` (default: logs/ beside `target`) as <notebook>.kernel.log.
    """

    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    _quiet_papermill()
    nb_params = papermill_parameters(nb, params)
    print(f"\n=== {nb.name}  ({', '.join(f'{k}={v}' for k, v in nb_params.items())})", flush=True)
    start = time.perf_counter()
    try:  # papermill's progress bar (cells done, time) on a terminal; logs get one line per notebook
        pm.execute_notebook(str(nb), str(target), parameters=nb_params, cwd=str(target.parent),
                            kernel_name=kernel, progress_bar=sys.stderr.isatty(), log_output=False,
                            kernel_manager_class=_kernel_manager(
                                Path(log_dir or target.parent / "logs") / f"{nb.stem}.kernel.log"),
                            extra_arguments=KERNEL_ARGUMENTS, start_timeout=KERNEL_START_TIMEOUT)
    except PapermillExecutionError as err:
        print(f"    failed after {time.perf_counter() - start:.0f} s", flush=True)
        print(f"\nFAILED: {nb.name}, cell {err.exec_count} (execution count): {err.ename}: {err.evalue}\n"
              f"The partially executed notebook is kept at {target}", file=sys.stderr)
        return False
    print(f"    done -> {target} in {time.perf_counter() - start:.0f} s", flush=True)
    return True


def smoke_samples(profile: str, data: str | None, notebook: str | Path) -> dict:
    """The smaller samples `notebook` (a name or path) gets in the smoke run on the synthetic set
    (SYNTHETIC_SMOKE_NOTEBOOKS); {} for any other notebook, profile or data."""
    if profile != "smoke" or resolve_data_path(data) is not None:
        return {}
    name = Path(notebook).name
    return {k: v for prefix, samples in SYNTHETIC_SMOKE_NOTEBOOKS.items() if name.startswith(prefix)
            for k, v in samples.items()}


def run_parameters(profile: str, data: str | None, run_dir: str | Path, extra: dict[str, str] | None = None,
                   notebook: str | Path | None = None) -> dict:
    """The parameters `run_pipeline` offers a notebook (it gets those it declares, via `papermill_parameters`):
    the profile's (SYNTHETIC_SMOKE for smoke on the synthetic set), `notebook`'s `smoke_samples` where one is named,
    data_path, run_dir, then the `-p` overrides."""
    synthetic = resolve_data_path(data) is None
    profile_params = SYNTHETIC_SMOKE if profile == "smoke" and synthetic else PROFILES[profile]
    samples = smoke_samples(profile, data, notebook) if notebook is not None else {}
    return {**profile_params, **samples, "data_path": data, "run_dir": str(run_dir),
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
    if any(smoke_samples(profile, data, nb) for nb in notebooks()):
        print("the analysis notebooks use smaller samples on the synthetic set (config.SYNTHETIC_SMOKE_NOTEBOOKS; "
              "each notebook's line below names its values)", flush=True)
    if reuse:
        copied = copy_runs(reuse, run_dir, overwrite=False)
        print(f"Reusing the runs in {Path(reuse).resolve()}: {len(copied)} run folder(s) copied into {run_dir}; "
              "notebooks 02 and 04 reuse a run only where it was trained with the same parameters on the same data, "
              "and otherwise say what differs and train anew.")
    for nb in notebooks():
        if not execute_notebook(nb, run_dir / nb.name, run_parameters(profile, data, run_dir, extra, nb), kernel):
            return 1
    print(f"\nAll notebooks ran. Results: {run_dir / 'results.md'}")
    return 0


def published_profile(folder: str | Path) -> str | None:
    """The profile whose `run --profile NAME --reuse FOLDER` reuses the finished runs in `folder` instead of training:
    the one (on all the data) whose parameters are those both runs were trained with; None when no profile's are."""
    from .run_settings import training_params

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
