"""benchmarks/seeds_table.py: per-seed gains, their mean and sample std, and how many seeds the SE-CNN wins."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
seeds_table = importlib.import_module("seeds_table")


def pairs(cnn: list[float], se: list[float]) -> pd.DataFrame:
    """Seed pairs of one configuration with the same accuracies under every measure."""
    rows = []
    for seed, (a, b) in enumerate(zip(cnn, se)):
        row = {"config": "32-64-128_bn_d512", "seed": seed}
        for m in seeds_table.MEASURES:
            row[f"CNN {m}"], row[f"SE-CNN {m}"], row[f"gain {m}"] = a, b, b - a
        rows.append(row)
    return pd.DataFrame(rows)


TABLE = seeds_table.markdown(pairs([0.60, 0.62, 0.64], [0.61, 0.64, 0.64]))  # gains 1, 2, 0 points


def test_the_mean_row_gives_the_gains_mean_and_sample_std_in_points():
    mean_row = next(line for line in TABLE.splitlines() if line.startswith("| mean |"))
    assert "| 62.00% | 63.00% | +1.00 ± 1.00 |" in mean_row


def test_the_summary_counts_the_seeds_the_se_cnn_wins_under_each_measure():
    assert ("The SE-CNN is above the CNN in 2 of 3 seeds on PublicTest acc, 2 of 3 seeds on clean (PrivateTest) "
            "and 2 of 3 seeds on paper's way (all test).") in TABLE
