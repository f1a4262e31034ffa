"""What each row of the regularisation and augmentation study costs per training step (the robust-model issue).

The study's rows ran two at a time on one 2-core machine, so their logged epoch seconds are not comparable; this
times each row's model and compile options alone, as `train_speed.py` times a configuration: the same in-memory
pipeline `train` uses, batch 64, precision auto, medians of repeated fits. Prints a table (images/s, and the per-step
cost relative to `se_ref`); the issue's target is the whole recipe at most 25% slower than `se_ref`.
    python benchmarks/robust_cost.py [ROW ...] [--data PATH] [--steps 60] [--warmup 10]
Rows and their options come from benchmarks/robust_rows.sh (read through bash), on PAPER_CONFIG; the row `recipe` is
the SE-CNN with the robust recipe (config.ROBUST_RECIPE: what `train --profile robust` adds), which the rule's cost
clause is about.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def study_rows() -> dict[str, str]:
    """{row: its `train` options} in ORDER, from robust_rows.sh."""
    script = f'source "{HERE / "robust_rows.sh"}"; for r in "${{ORDER[@]}}"; do echo "$r|${{ROWS[$r]}}"; done'
    lines = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    return dict(line.split("|", 1) for line in lines)


def recipe_options() -> str:
    """The SE-CNN with the robust recipe (config.ROBUST_RECIPE) as `train` options beyond PAPER_CONFIG."""
    from fer_utils.config import ROBUST_RECIPE

    options = ["--model", "se"]
    for name, value in ROBUST_RECIPE.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            options += [flag] if value else [f"--no-{name.replace('_', '-')}"]
        else:
            options += [flag, ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    return " ".join(options)


def row_options(options: str) -> tuple[str, dict]:
    """A row's `train` options on PAPER_CONFIG -> (model kind, keyword arguments of compiled_model)."""
    from fer_utils.cli import build_parser
    from fer_utils.config import PAPER_CONFIG

    config = ["--filters", ",".join(map(str, PAPER_CONFIG["filters"])), "--dense-units",
              str(PAPER_CONFIG["dense_units"]), "--dense-dropout", str(PAPER_CONFIG["dense_dropout"])]
    config += ["--batch-norm"] if PAPER_CONFIG["batch_norm"] else []
    a = build_parser().parse_args(["train", *config, *options.split()])
    return a.model, dict(filters=a.filters, dense_units=a.dense_units, dense_dropout=a.dense_dropout,
                         batch_norm=a.batch_norm, flip=a.flip, augment=a.augment,
                         compile_kwargs=dict(label_smoothing=a.label_smoothing, weight_decay=a.weight_decay))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="*", help="rows of robust_rows.sh, or recipe (default: all)")
    parser.add_argument("--data", default=None)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args(argv)
    rows = {**study_rows(), "recipe": recipe_options()}
    unknown = [r for r in args.rows if r not in rows]
    if unknown:
        print(f"error: unknown row(s) {', '.join(unknown)} (rows: {', '.join(rows)})", file=sys.stderr)
        return 2
    from train_speed import our_pipeline

    from fer_utils.data import load_data
    from fer_utils.hardware import environment, resolve_precision

    data = load_data(args.data, quiet=True)
    x, y = data.xy("train")
    precision = resolve_precision("auto")
    results = []
    for row in args.rows or list(rows):
        kind, kwargs = row_options(rows[row])
        rate, _ = our_pipeline(kind, x, y, precision, args.steps, args.warmup, **kwargs)
        results.append({"row": row, "images_per_s": rate})
        print(f"{row}: {rate:.0f} images/s", flush=True)
    table = pd.DataFrame(results).set_index("row")
    if "se_ref" in table.index:
        table["step_cost_vs_se_ref"] = table.loc["se_ref", "images_per_s"] / table["images_per_s"]
    env = environment()
    print(f"\n{env['cpu']}, {env['cpu_count']} cores, precision {precision}, data {data.source}")
    print(table.to_string(float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
