"""The width study's table, from the committed rows in benchmarks/results/study/ (written by width_study.sh).

    .venv/bin/python benchmarks/study_table.py   # prints the table, writes benchmarks/results/study/README.md

Each row is one finished `train` run with the same short schedule. Rows are ranked by PublicTest accuracy, the only
split that chooses anything here; the PrivateTest and all-test columns are read off the same histories for the record
(the two readings of Table 1: fer_utils.evaluation.paper_and_clean_accuracy), never used to choose.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fer_utils.evaluation import load_run, markdown_table, paper_and_clean_accuracy  # noqa: E402

STUDY = Path(__file__).resolve().parent / "results" / "study"


def study_rows(folder: Path = STUDY) -> pd.DataFrame:
    """One row per finished run folder under `folder` (history.csv, metrics.json, run_info.json)."""
    rows = []
    for run in sorted(p for p in folder.glob("*") if (p / "metrics.json").is_file()):
        loaded = load_run(run, predictions=False)
        info, metrics, history = loaded["run_info"], loaded["metrics"], loaded["history"]
        params = info["params"]
        readings = paper_and_clean_accuracy(history) or {}
        rows.append({
            "row": run.name, "model": params["model"], "seed": params.get("seed", 0),
            "filters": "-".join(str(f) for f in params.get("filters", (32, 64, 128))),
            "dense": params.get("dense_units", 256), "batch norm": bool(params.get("batch_norm", False)),
            "dense dropout": params.get("dense_dropout", 0.5), "epochs": len(history),
            "parameters": info["parameters"], "weights MB": info["parameters"] * 4 / 2**20,
            "median s/epoch": float(np.median(history["epoch_seconds"])),
            "fastest epoch, train s": float(history["train_seconds"].min()) if "train_seconds" in history else np.nan,
            "train acc": metrics["train_accuracy"], "PublicTest acc": metrics["val_accuracy"],
            "best epoch": metrics["best_epoch"],
            "clean (PrivateTest)": readings.get("clean_accuracy", np.nan),
            "paper's way (all test)": readings.get("paper_accuracy", np.nan),
            "backend": f"{info.get('keras_backend', '?')} ({info.get('accelerator', '?')}), "
                       f"{info.get('precision', '?')}",
            "cpu": info.get("cpu", "?"),
        })
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).sort_values("PublicTest acc", ascending=False, ignore_index=True)


def markdown(df: pd.DataFrame) -> str:
    """The table as Markdown, accuracies in percent."""
    shown = df.drop(columns=["cpu", "seed"]).copy()
    for col in ("train acc", "PublicTest acc", "clean (PrivateTest)", "paper's way (all test)"):
        shown[col] = shown[col].map(lambda v: "n/a" if pd.isna(v) else f"{100 * v:.2f}%")
    shown["weights MB"] = shown["weights MB"].map(lambda v: f"{v:.1f}")
    for col in ("median s/epoch", "fastest epoch, train s"):
        shown[col] = shown[col].map(lambda v: "n/a" if pd.isna(v) else f"{v:.0f}")
    shown["parameters"] = shown["parameters"].map(lambda v: f"{v:,}")
    shown = shown.astype(str).set_index("row")
    return "\n".join(markdown_table(shown, right=[c for c in shown.columns if c not in ("model", "filters")]))


def main() -> int:
    df = study_rows()
    if df.empty:
        print(f"no finished rows in {STUDY}", file=sys.stderr)
        return 1
    table = markdown(df)
    cpus = ", ".join(sorted(set(df["cpu"])))
    (STUDY / "README.md").write_text(
        "# Width study: finished rows\n\nWritten by `python benchmarks/study_table.py` from the folders here (each "
        "made by `bash benchmarks/width_study.sh ROW`). Ranked by PublicTest accuracy; the PrivateTest and all-test "
        f"columns are read off the same histories and choose nothing. CPU: {cpus}. Other jobs often shared the cores, "
        "so 'median s/epoch' varies with the load; 'fastest epoch, train s' (the training steps of the least disturbed "
        "epoch) is the closest to an idle machine's rate; compare times only between rows of the same backend.\n\n"
        f"{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
