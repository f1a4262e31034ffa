"""Run the course's notebooks in order with papermill into one run folder.

`python -m fer_utils run --profile smoke|quick|paper` is the course's main job.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .data import SYNTHETIC, resolve_data_path, synthetic_banner

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"

PROFILES: dict[str, dict] = {
    "smoke": {"per_class": 40, "epochs": 2},
    "quick": {"per_class": None, "epochs": 20, "schedule": "cosine"},
    "paper": {"per_class": None, "epochs": 100},
}
"""Notebook parameters per profile: smoke = minutes on a laptop; paper = the paper's full schedule."""
SYNTHETIC_SMOKE = {"per_class": None, "epochs": 10}
"""On the small synthetic set the smoke profile uses all of it, and enough epochs to learn it well above chance."""


def notebooks() -> list[Path]:
    """The numbered course notebooks, in order."""
    found = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no notebooks found in {NOTEBOOK_DIR}")
    return found


def _coerce(value: str):
    """A -p value as papermill would want it: int, float, None, bool, or the string itself."""
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"None": None, "none": None, "True": True, "False": False}.get(value, value)


def run_pipeline(profile: str = "smoke", data: str | None = None, out: str | None = None,
                 extra: dict[str, str] | None = None, kernel: str | None = None) -> int:
    """Execute every notebook with the profile's parameters; stop at the first failure and say where."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: expected one of {sorted(PROFILES)}")
    if data not in (None, "", SYNTHETIC):
        data = str(Path(data).expanduser().resolve())  # the notebooks run in run_dir, not here
    run_dir = Path(out or f"runs/{profile}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    synthetic = resolve_data_path(data) is None
    profile_params = SYNTHETIC_SMOKE if profile == "smoke" and synthetic else PROFILES[profile]
    params = {**profile_params, "data_path": data, "run_dir": str(run_dir),
              **{k: _coerce(v) for k, v in (extra or {}).items()}}
    if synthetic:
        print(synthetic_banner(data))
    print(f"Running {len(notebooks())} notebooks, profile {profile!r}, into {run_dir}")
    print(f"parameters: {params}", flush=True)
    for nb in notebooks():
        declared = pm.inspect_notebook(str(nb))
        nb_params = {k: v for k, v in params.items() if k in declared}
        target = run_dir / nb.name
        print(f"\n=== {nb.name}  ({', '.join(f'{k}={v}' for k, v in nb_params.items())})", flush=True)
        start = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(target), parameters=nb_params, cwd=str(run_dir),
                                kernel_name=kernel, progress_bar=sys.stderr.isatty(), log_output=False)
        except PapermillExecutionError as err:
            print(f"\nFAILED: {nb.name}, cell {err.exec_count} (execution count): {err.ename}: {err.evalue}\n"
                  f"The partially executed notebook is kept at {target}", file=sys.stderr)
            return 1
        print(f"    done in {time.perf_counter() - start:.0f} s -> {target}", flush=True)
    print(f"\nAll notebooks ran. Results: {run_dir / 'results.md'}")
    return 0
