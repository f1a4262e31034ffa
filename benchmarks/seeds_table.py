"""The seeds table: the SE-CNN against the CNN at the same configuration, one pair of runs per seed.

    .venv/bin/python benchmarks/seeds_table.py   # prints the table, writes benchmarks/results/seeds/README.md

Seed 0 of a configuration is its width-study row (benchmarks/results/study/<model>_<config>/); other seeds come from
`SEED=N bash benchmarks/width_study.sh ROW` (benchmarks/results/seeds/<model>_<config>_s<N>/). Every pair has the same
short schedule. The gain is the SE-CNN's accuracy minus the CNN's, per seed, then its mean and sample standard
deviation over the seeds; PublicTest chooses each run's epoch, the other columns are read off the same histories.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_table import STUDY, study_rows  # noqa: E402

from fer_utils.evaluation import markdown_table  # noqa: E402

SEEDS = Path(__file__).resolve().parent / "results" / "seeds"
MEASURES = ("PublicTest acc", "clean (PrivateTest)", "paper's way (all test)")


def seed_pairs() -> pd.DataFrame:
    """One row per (configuration, seed) where both models finished, with both accuracies and the SE-CNN's gain."""
    runs = pd.concat([study_rows(STUDY), study_rows(SEEDS)], ignore_index=True)
    runs["config"] = runs["row"].str.replace(r"^(baseline|se)_", "", regex=True).str.replace(r"_s\d+$", "",
                                                                                          regex=True)
    rows = []
    for (config, seed), group in runs.groupby(["config", "seed"]):
        by_model = group.set_index("model")
        if not {"baseline", "se"} <= set(by_model.index):
            continue
        row = {"config": config, "seed": int(seed)}
        for measure in MEASURES:
            cnn, se = by_model.loc["baseline", measure], by_model.loc["se", measure]
            row[f"CNN {measure}"], row[f"SE-CNN {measure}"], row[f"gain {measure}"] = cnn, se, se - cnn
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(pairs: pd.DataFrame) -> str:
    """Per-seed rows, then mean +- std per configuration, accuracies and gains in points."""
    lines = []
    for config, group in pairs.groupby("config"):
        group = group.sort_values("seed")
        cells = {}  # column -> its cells: one per seed, then the mean
        for m in MEASURES:
            for model in ("CNN", "SE-CNN"):
                accuracies = group[f"{model} {m}"]
                cells[f"{model} {m}"] = [f"{100 * a:.2f}%" for a in accuracies] + [f"{100 * accuracies.mean():.2f}%"]
            gains = 100 * group[f"gain {m}"]
            std = f" ± {gains.std(ddof=1):.2f}" if len(gains) > 1 else ""
            cells[f"gain {m}"] = [f"{g:+.2f}" for g in gains] + [f"{gains.mean():+.2f}{std}"]
        table = pd.DataFrame(cells, index=pd.Index([*map(str, group["seed"]), "mean"], name="seed"))
        wins = [f"{int((group[f'gain {m}'] > 0).sum())} of {len(group)} seeds on {m}" for m in MEASURES]
        lines += [f"### {config} ({len(group)} seeds)", "",
                  *markdown_table(table, right=["seed", *cells], headers={f"gain {m}": "gain" for m in MEASURES}),
                  "", f"The SE-CNN is above the CNN in {', '.join(wins[:-1])} and {wins[-1]}.", ""]
    return "\n".join(lines)


def main() -> int:
    pairs = seed_pairs()
    if pairs.empty:
        print(f"no configuration has both models finished for a seed in {STUDY} and {SEEDS}", file=sys.stderr)
        return 1
    table = markdown(pairs)
    SEEDS.mkdir(parents=True, exist_ok=True)
    (SEEDS / "README.md").write_text(
        "# Seeds: SE-CNN against CNN\n\nWritten by `python benchmarks/seeds_table.py` from the width study's rows "
        "(seed 0) and the runs here (`SEED=N bash benchmarks/width_study.sh ROW`). Same 15-epoch cosine schedule "
        "for every run; PublicTest chooses each run's epoch; gains are SE-CNN minus CNN in points, mean ± sample "
        f"standard deviation over seeds.\n\n{table}")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
