"""The attention study's table (the attention issue), from the runs committed in benchmarks/results/attention/.

    .venv/bin/python benchmarks/attention_table.py     # prints the table, writes benchmarks/results/attention/README.md
    .venv/bin/python benchmarks/attention_table.py --compact RUN DEST   # DEST/predicted.npz from RUN/predictions.npz

`attention_study.sh` writes one folder per run: <row>/ for seed 0, <row>_s<N>/ for seed N (history.csv, metrics.json,
run_info.json, robustness.csv, predicted.npz; no weights). Per row, over its seeds: the parameters, the median epoch
time, the accuracies of the checkpoint PublicTest chose (PublicTest, PrivateTest, all 7,178 test images), the
robustness summary (benchmarks/robustness.py: mean and worst points lost on PublicTest to config.ROBUSTNESS_TARGETS),
and the paired difference to the paper's SE-CNN (REFERENCE in attention_rows.sh), seed by seed, with two tests:
  seeds:  a paired t-test of the per-seed differences (training noise; with two seeds it detects only large ones);
  images: a z-test over the PrivateTest images of each image's difference averaged over the seeds (the choice of
          test images; from predicted.npz).
Notebook 09 reads the same functions.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from robustness import summary  # noqa: E402

from fer_utils.config import SE_RATIO  # noqa: E402
from fer_utils.evaluation import load_run, markdown_table  # noqa: E402

RESULTS = HERE / "results" / "attention"
ROWS_FILE = HERE / "attention_rows.sh"
ALPHA = 0.05  # a difference is called significant under a test when its two-sided p-value is below this
MEASURES = {"PublicTest": "val_accuracy", "PrivateTest": "test_accuracy", "all test": "test_all_accuracy"}
"""Accuracy columns -> their metrics.json keys (the checkpoint's, which PublicTest chose)."""
JUDGE = "PrivateTest"
"""The split the paired tests use: the one that chose nothing (PublicTest chose each run's checkpoint)."""
SPLIT_OF = {"PublicTest": "val", "PrivateTest": "test"}
RATIO_KINDS = ("se", "se_every", "cbam")
"""Attention kinds with a reduction ratio r."""


def study_rows(path: Path = ROWS_FILE) -> tuple[dict[str, str], str]:
    """({row: its `train` options} in ORDER, the reference row), read from attention_rows.sh."""
    text = path.read_text()
    options = dict(re.findall(r'^\s*\[(\w+)\]="([^"]*)"', text, re.M))
    order = re.search(r"^ORDER=\((.*)\)$", text, re.M).group(1).split()
    reference = re.search(r"^REFERENCE=(\w+)$", text, re.M).group(1)
    return {row: options[row] for row in order}, reference


def run_name(row: str, seed: int) -> str:
    """The folder of one run: the row's name for seed 0, <row>_s<N> for seed N (as robust_study.sh names them)."""
    return row if seed == 0 else f"{row}_s{seed}"


def attention_of(params: dict) -> tuple[str, int | None]:
    """(attention kind, reduction ratio r or None) of a run, from its run_info.json parameters."""
    kind = params.get("attention") or ("se" if params.get("model") == "se" else "none")
    ratio = (params.get("se_ratio") or SE_RATIO) if kind in RATIO_KINDS else None
    return kind, ratio


def compact_predictions(run: Path, dest: Path) -> Path:
    """dest/predicted.npz: the predicted class, label and split of every test image of run/predictions.npz, and a
    digest of their file ids (runs are paired image by image only when their digests agree). About 10 kB, not 250."""
    with np.load(run / "predictions.npz") as p:
        ids = "\n".join(map(str, p["file_ids"])).encode()
        out = dest / "predicted.npz"
        dest.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, predicted=p["probs"].argmax(1).astype(np.uint8),
                            labels=np.asarray(p["labels"]).astype(np.uint8), splits=np.asarray(p["splits"]),
                            ids_sha256=np.array(hashlib.sha256(ids).hexdigest()))
    return out


def correct_by_split(predicted: Path) -> tuple[dict[str, np.ndarray], str]:
    """({"val": right or wrong per PublicTest image, "test": per PrivateTest image}, the images' digest)."""
    with np.load(predicted) as p:
        right = p["predicted"] == p["labels"]
        return {split: right[p["splits"] == split] for split in ("val", "test")}, str(p["ids_sha256"])


def record(row: str, seed: int, attention: str, ratio: int | None, parameters: int, accuracies: dict[str, float],
           seconds_per_epoch: float = np.nan, robustness: pd.DataFrame | None = None,
           correct: dict[str, np.ndarray] | None = None, images: str | None = None) -> dict:
    """One run as the table needs it (`read_run` makes it from a run folder; notebook 09 from models in memory).

    Args:
        row, seed: the study row and the training seed.
        attention, ratio: the attention kind ("none", "se", "se_every", "eca", "cbam", "spatial") and its r.
        parameters: the model's parameter count.
        accuracies: {"PublicTest", "PrivateTest", "all test"} -> accuracy in [0, 1].
        seconds_per_epoch: median epoch seconds (NaN: not timed).
        robustness: a robustness.csv table (benchmarks/robustness.py), or None.
        correct: {"val", "test"} -> whether each image was classified right, in a fixed image order; or None.
        images: a digest of that image order (runs are compared image by image only where it agrees).
    """
    lost = summary(robustness) if robustness is not None else {"mean_points_lost": np.nan, "worst_points_lost": np.nan}
    return {"row": row, "seed": int(seed), "attention": attention, "r": ratio, "parameters": int(parameters),
            "s/epoch": float(seconds_per_epoch), **{m: float(accuracies.get(m, np.nan)) for m in MEASURES},
            "mean points lost": lost["mean_points_lost"], "worst points lost": lost["worst_points_lost"],
            "correct": correct, "images": images}


def read_run(folder: Path) -> dict:
    """The `record` of one finished run folder of the study (robustness.csv and predicted.npz optional)."""
    run = load_run(folder, predictions=False)
    info, metrics, history = run["run_info"], run["metrics"], run["history"]
    params = info["params"]
    seed = int(params.get("seed", 0))
    row = folder.name[:-len(f"_s{seed}")] if seed and folder.name.endswith(f"_s{seed}") else folder.name
    attention, ratio = attention_of(params)
    robustness = pd.read_csv(folder / "robustness.csv") if (folder / "robustness.csv").is_file() else None
    correct, images = (correct_by_split(folder / "predicted.npz") if (folder / "predicted.npz").is_file()
                       else (None, None))
    seconds = float(np.median(history["epoch_seconds"])) if "epoch_seconds" in history else np.nan
    return record(row, seed, attention, ratio, info["parameters"], {m: metrics[k] for m, k in MEASURES.items()},
                  seconds, robustness, correct, images)


def read_runs(folder: Path = RESULTS) -> list[dict]:
    """Every finished run under `folder` (those with metrics.json), as `record`s."""
    return [read_run(p.parent) for p in sorted(folder.glob("*/metrics.json"))
            if (p.parent / "run_info.json").is_file() and (p.parent / "history.csv").is_file()]


def paired(records: list[dict], row: str, reference: str, measure: str = JUDGE) -> dict:
    """`row` minus `reference` on `measure`, over the seeds both have, with the seed and image tests.

    Returns:
        seeds (list), deltas (points, per seed), mean and std (sample) in points, p_seeds (paired t-test, NaN with
        fewer than two seeds), p_images (z-test over the images of `measure`'s split, per-image differences averaged
        over the seeds; NaN without predicted.npz on both sides), n_images.
    """
    from scipy import stats

    mine = {r["seed"]: r for r in records if r["row"] == row}
    theirs = {r["seed"]: r for r in records if r["row"] == reference}
    seeds = sorted(set(mine) & set(theirs))
    deltas = np.array([100 * (mine[s][measure] - theirs[s][measure]) for s in seeds])
    out = {"seeds": seeds, "deltas": deltas.tolist(), "mean": float(deltas.mean()) if len(seeds) else np.nan,
           "std": float(deltas.std(ddof=1)) if len(seeds) > 1 else np.nan, "p_seeds": np.nan, "p_images": np.nan,
           "n_images": 0}
    if len(seeds) > 1:
        out["p_seeds"] = (float(stats.ttest_1samp(deltas, 0.0).pvalue) if deltas.std() > 0
                          else 1.0 if deltas.mean() == 0 else 0.0)
    split = SPLIT_OF.get(measure)
    usable = [s for s in seeds if split and mine[s]["correct"] is not None and theirs[s]["correct"] is not None
              and mine[s]["images"] == theirs[s]["images"]]
    if usable and len(usable) == len(seeds):
        d = np.mean([mine[s]["correct"][split].astype(float) - theirs[s]["correct"][split] for s in usable], axis=0)
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
        out["n_images"] = len(d)
        out["p_images"] = float(2 * stats.norm.sf(abs(d.mean()) / se)) if se > 0 else float(d.mean() == 0)
    return out


def verdict(p_seeds: float, p_images: float, alpha: float = ALPHA) -> str:
    """In words, which noises a difference clears: both tests, one of them, neither; untested where a p is NaN."""
    seeds_ok, images_ok = p_seeds < alpha, p_images < alpha
    if np.isnan(p_seeds) and np.isnan(p_images):
        return "untested"
    if seeds_ok and images_ok:
        return "significant (seeds and images)"
    if images_ok:
        return "images only" if not np.isnan(p_seeds) else "images only (one seed)"
    if seeds_ok:
        return "seeds only" if not np.isnan(p_images) else "seeds only (no image test)"
    return "within noise"


def rows_table(records: list[dict], reference: str, order: list[str] | None = None) -> pd.DataFrame:
    """One line per row: its means over seeds, and its paired difference to `reference` (`paired`)."""
    if not records:
        return pd.DataFrame()
    runs = pd.DataFrame([{k: v for k, v in r.items() if k not in ("correct", "images")} for r in records])
    present = list(dict.fromkeys(runs["row"]))
    rows = [r for r in (order or []) if r in present] + [r for r in present if r not in (order or [])]
    lines = {}
    for row in rows:
        mine = runs[runs["row"] == row]
        line = {"attention": mine["attention"].iloc[0], "r": mine["r"].iloc[0], "seeds": len(mine),
                "parameters": int(mine["parameters"].iloc[0]), "s/epoch": mine["s/epoch"].median()}
        line.update({m: mine[m].mean() for m in MEASURES})
        line.update({"mean points lost": mine["mean points lost"].mean(),
                     "worst points lost": mine["worst points lost"].mean()})
        for m in ("PublicTest", JUDGE):
            p = paired(records, row, reference, m) if row != reference else None
            line[f"Δ {m}"] = p["mean"] if p else np.nan
            if m == JUDGE:
                line.update({f"Δ {m} std": p["std"] if p else np.nan, "paired seeds": len(p["seeds"]) if p else 0,
                             "p seeds": p["p_seeds"] if p else np.nan, "p images": p["p_images"] if p else np.nan,
                             "verdict": verdict(p["p_seeds"], p["p_images"]) if p else "reference"})
        lines[row] = line
    return pd.DataFrame(lines).T


def markdown(table: pd.DataFrame) -> str:
    """The rows table as Markdown: accuracies in percent, differences in points, p-values to 3 decimals."""
    def cell(col: str, v) -> str:
        if isinstance(v, str):
            return v
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "-"
        if col in MEASURES:
            return f"{100 * v:.2f}%"
        if col.startswith("Δ"):
            return f"{v:.2f}" if col.endswith("std") else f"{v:+.2f}"
        if col.startswith("p "):
            return f"{v:.3f}"
        if col in ("mean points lost", "worst points lost"):
            return f"{v:.2f}"
        if col == "s/epoch":
            return f"{v:.0f}"
        if col == "parameters":
            return f"{int(v):,}"
        return str(int(v)) if isinstance(v, (int, float, np.integer, np.floating)) and float(v).is_integer() else str(v)

    shown = pd.DataFrame({c: [cell(c, v) for v in table[c]] for c in table.columns},
                         index=pd.Index(table.index, name="row"))
    return "\n".join(markdown_table(shown, right=[c for c in shown.columns if c not in ("attention", "verdict")]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compact", nargs=2, type=Path, metavar=("RUN", "DEST"),
                        help="write DEST/predicted.npz from RUN/predictions.npz and stop")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.compact:
        print(compact_predictions(*args.compact))
        return 0
    rows, reference = study_rows()
    records = read_runs(args.results)
    if not records:
        print(f"no finished run in {args.results}", file=sys.stderr)
        return 1
    table = rows_table(records, reference, list(rows))
    text = markdown(table)
    missing = [r for r in rows if r not in table.index]
    (args.results / "README.md").write_text(
        "# Attention study: finished runs\n\nWritten by `python benchmarks/attention_table.py` from the run folders "
        "here (each made by `bash benchmarks/attention_study.sh ROW`; benchmarks/README.md, \"Attention study\"). "
        "Accuracies are the means over the row's seeds, at the checkpoint PublicTest chose; \"mean/worst points lost\" "
        "the robustness summary on PublicTest. Δ is the row minus the paper's SE-CNN (`" + reference + "`) in points, "
        f"seed by seed, then averaged; the tests judge the {JUDGE} difference: \"p seeds\" a paired t-test over the "
        "seeds, \"p images\" a z-test over the images of the per-image difference averaged over the seeds; a "
        f"difference is significant below p = {ALPHA}. Epoch seconds compare only runs on the same machine and load."
        + (f" Not run yet: {', '.join(missing)}." if missing else "") + f"\n\n{text}\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
