"""What a run was trained with, and whether a run folder's run may be resumed or reused as asked now.

`train` records `run_settings` in the backup when a run starts; `resume_or_start` resumes the run only when asked with
the same settings and data (else `ResumeConflict`). A finished run is reused (`training.train_or_reuse`) only when its
run_info.json shows every training parameter (`training_params`) and the data as asked (`reuse_differences`).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path

from .config import (BATCH_SIZE, EARLY_STOPPING_PATIENCE, LABEL_SMOOTHING, LEARNING_RATE, MAX_EPOCHS, PRECISION,
                     PROTOCOL, SCHEDULE, WEIGHT_DECAY)
from .dataset import FerData
from .models import MODEL_BUILDERS, build_cnn
from .runfolder import BACKUP, FIT_FINISHED, SETTINGS, RunFolderError, command_line, resume_state

TRAIN_DEFAULTS = dict(epochs=MAX_EPOCHS, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, seed=0, protocol=PROTOCOL,
                      precision=PRECISION, patience=EARLY_STOPPING_PATIENCE, schedule=SCHEDULE,
                      label_smoothing=LABEL_SMOOTHING, weight_decay=WEIGHT_DECAY)
"""The defaults of `training.train`'s training parameters (tests/test_reuse.py checks them against its signature)."""
NOT_TRAINING_PARAMS = ("verbose", "fresh")
"""`train` arguments that do not change what is trained (left out of the reuse check)."""


class ResumeConflict(RunFolderError):
    """A run folder holds an interrupted run that was started with other settings than those asked now.

    The message is one line: the folder, each setting that differs (recorded vs asked), and the ways out.

    Attributes:
        out: the run folder.
        differences: one "name: the run has X, asked for Y" line per setting (or the data) that differs.
    """

    def __init__(self, out: str | os.PathLike, differences: list[str], command: str | None = None):
        self.out, self.differences = Path(out), list(differences)
        started = f" ({command})" if command and not command.startswith("a notebook") else ""
        super().__init__(
            f"{out} holds an interrupted run started with other settings: {'; '.join(differences)}. To resume it, run "
            f"it again with the settings it was started with{started}; to start afresh, pass fresh=True (CLI: "
            "--fresh), which discards it, or choose another run folder (out= / --out)")


def run_settings(params: dict, precision: str, data: FerData) -> dict:
    """What a run records in its backup when it starts, for a resumed run to be checked against
    (`settings_differences`).

    Args:
        params: `train`'s training parameters (model, epochs, batch size, ..., the model options), as in run_info.json.
        precision: the precision policy the run computes in ("auto" resolved).
        data: the data it trains on.

    Returns:
        {"params", "precision", "data": {source, synthetic, images, sha256}, "command"}.
    """
    fingerprint = dict(source=data.source, synthetic=bool(data.synthetic), images=int(len(data.labels)),
                       sha256=data.fingerprint())
    command = "a notebook (Jupyter kernel)" if "ipykernel" in sys.argv[0] else command_line()
    return dict(params=params, precision=precision, data=fingerprint, command=command)


def settings_differences(recorded: dict, asked: dict) -> list[str]:
    """What differs between the settings a run was started with and those asked to resume it (`run_settings`).

    Parameters are compared through `training_params` (defaults filled in, lists and tuples alike); precision as
    resolved ("auto" and the policy it chose are the same); the data by its fingerprint.

    Args:
        recorded: the run's settings, from its backup.
        asked: the settings of the call that would resume it.

    Returns:
        One "name: the run has X, asked for Y" line per setting that differs, "data: ..." last; [] when none.
    """
    differences = _differences(_normalised(recorded.get("params", {})), _normalised(asked["params"]),
                               skip=("precision",))
    if recorded.get("precision") != asked["precision"]:
        differences.append(f"precision: the run has {recorded.get('precision')!r}, asked for {asked['precision']!r}")
    theirs, mine = recorded.get("data", {}), asked["data"]
    if theirs.get("sha256") != mine["sha256"]:
        differences.append(f"data: the run has {_data_summary(theirs)}, asked for {_data_summary(mine)}")
    return differences


def _data_summary(fingerprint: dict) -> str:
    """'SOURCE (N images, sha256 0123456789ab)' of a `run_settings` data fingerprint."""
    digest = str(fingerprint.get("sha256"))[:12]
    return f"{fingerprint.get('source')} ({fingerprint.get('images')} images, sha256 {digest})"


def resume_or_start(out: Path, settings: dict, fresh: bool = False) -> tuple[int, dict]:
    """Restore the interrupted run in `out` (`runfolder.resume_state`) if it was started with `settings`; else refuse.

    A backup written before runs recorded their settings resumes unchecked, with a printed note.

    Args:
        out: the run folder.
        settings: `run_settings` of the call.
        fresh: discard an interrupted run instead (it is not compared).

    Returns:
        The epochs the run has completed (0: a fresh start), and the settings its backup goes on recording.

    Raises:
        ResumeConflict: the interrupted run was started with other settings or data; `out` is left resumable.
    """
    epochs = resume_state(out, fresh=fresh)
    if not epochs:
        return 0, settings
    recorded = json.loads((out / BACKUP / SETTINGS).read_text()) if (out / BACKUP / SETTINGS).is_file() else None
    if recorded is None:
        print(f"Note: the backup in {out} predates recorded settings, so they cannot be compared with these: "
              "resuming as asked")
    elif differences := settings_differences(recorded, settings):
        raise ResumeConflict(out, differences, recorded.get("command"))
    finished = (out / BACKUP / FIT_FINISHED).exists()
    print(f"Resuming the interrupted run in {out} after epoch {epochs}"
          + (" (training had finished; writing its results)" if finished else ""))
    return epochs, recorded or settings


def training_params(model_kind: str, **kwargs) -> dict:
    """Every parameter that decides what `train(model_kind, ..., **kwargs)` trains, defaults filled in.

    `train`'s own defaults (epochs, seed, schedule, protocol, precision...) and the model builder's (filters,
    dense_units, flip, batch_norm, dropout, se_ratio...) complete `kwargs`, so a run folder that recorded only what
    was passed explicitly compares equal to a call that spells out the defaults. Sequences become tuples.

    Args:
        model_kind: "baseline" or "se".
        **kwargs: keyword arguments of `train` (model options included), as passed or as recorded in run_info.json.

    Returns:
        A dict with "model" and one entry per training parameter.
    """
    if model_kind not in MODEL_BUILDERS:
        raise ValueError(f"unknown model {model_kind!r}: expected one of {sorted(MODEL_BUILDERS)}")
    defaults = dict(TRAIN_DEFAULTS)
    defaults.update({name: p.default for name, p in inspect.signature(build_cnn).parameters.items()
                     if name not in ("name", "se_ratio")})
    defaults.update({name: p.default for name, p in inspect.signature(MODEL_BUILDERS[model_kind]).parameters.items()
                     if p.default is not inspect.Parameter.empty})
    defaults["se_ratio"] = defaults.get("se_ratio")  # None for the baseline
    params = {**defaults, **kwargs, "model": model_kind}
    return {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in params.items()
            if k not in NOT_TRAINING_PARAMS}


def reuse_differences(run_info: dict, data: FerData, model_kind: str, **kwargs) -> list[str]:
    """Why a finished run (its run_info.json) is not what `train(model_kind, data, ..., **kwargs)` would train.

    Returns one line per training parameter or data property that differs; [] when the run can be reused.
    """
    asked = training_params(model_kind, **kwargs)
    # an explicit precision equal to the one "auto" chose for that run is the same precision
    differences = _differences(_normalised(run_info.get("params", {})), asked,
                               skip=("precision",) if asked.get("precision") == run_info.get("precision") else ())
    if run_info.get("synthetic_data") != data.synthetic:
        differences.append(f"data: the run used {'synthetic' if run_info.get('synthetic_data') else 'FER2013'} "
                           f"data, this is {'synthetic' if data.synthetic else 'FER2013'}")
    elif run_info.get("counts") != data.counts():
        differences.append(f"data: the run's images per split and class differ from these "
                           f"({run_info.get('data_source')} vs {data.source})")
    return differences


def _normalised(params: dict) -> dict:
    """`training_params` of a recorded params dict ("model" included); {"model": ...} alone for an unknown model."""
    rest = dict(params)
    kind = rest.pop("model", None)
    return training_params(kind, **rest) if kind in MODEL_BUILDERS else {"model": kind}


def _differences(recorded: dict, asked: dict, skip: tuple[str, ...] = ()) -> list[str]:
    """'NAME: the run has X, asked for Y' for each entry (except `skip`) that differs, in name order."""
    names = sorted(name for name in set(recorded) | set(asked) if name not in skip)
    return [f"{name}: the run has {recorded.get(name)!r}, asked for {asked.get(name)!r}"
            for name in names if recorded.get(name) != asked.get(name)]
