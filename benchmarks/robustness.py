"""The robustness summary of trained run folders (the robust-model issue's study, benchmarks/README.md).

For each run folder: the accuracy points its model.keras loses on PublicTest and on PrivateTest to each of the issue's
target perturbations (fer_utils.config.ROBUSTNESS_TARGETS, drawn by fer_utils.explain.perturb with seed 0), computed
in float32 (fer_utils.explain.robustness_table), written to <run>/robustness.csv; the study ranks on PublicTest only.
    python benchmarks/robustness.py RUN [RUN ...] [--data PATH] [--copy-to DIR]
--copy-to also copies robustness.csv to DIR/<run folder's name>/ (the study's committed results).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pandas as pd


def summary(table: pd.DataFrame, split: str = "val") -> dict[str, float]:
    """Mean and worst points lost on one split of a robustness.csv table."""
    lost = table.loc[table["split"] == split, "points_lost"]
    return {"mean_points_lost": float(lost.mean()), "worst_points_lost": float(lost.max())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data", default="../shared/data/fer2013/archive.zip")
    parser.add_argument("--copy-to", type=Path, default=None)
    args = parser.parse_args(argv)
    missing = [str(r) for r in args.runs if not (r / "model.keras").is_file()]
    if missing:
        print(f"error: no model.keras in {', '.join(missing)}", file=sys.stderr)
        return 2
    from fer_utils.data import load_data
    from fer_utils.explain import ROBUSTNESS, robustness_table

    data = load_data(args.data, quiet=True)
    for run in args.runs:
        table = robustness_table(run / "model.keras", data)
        table.to_csv(run / ROBUSTNESS, index=False)
        if args.copy_to:
            (args.copy_to / run.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(run / ROBUSTNESS, args.copy_to / run.name / ROBUSTNESS)
        s = summary(table)
        print(f"{run.name}: PublicTest points lost, mean {s['mean_points_lost']:.2f}, "
              f"worst {s['worst_points_lost']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
