"""The published statistics are recomputed from the committed predictions (no data needed), and README.md's
headline numbers are tied to reports/.

reports/README.md is generated, but by a notebook that others edit, from run folders that could be replaced one
at a time; these tests recompute what it states from reports/*/predictions.npz, mostly with code written here
rather than fer_utils', so a wrong statistic in the package cannot agree with itself. Each test names what it
catches.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, norm

from fer_utils.config import PAPER_CONFIG, PAPER_TABLE1
from fer_utils.evaluation import paired_accuracy_difference

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports"
KINDS = ("baseline", "se")
pytestmark = pytest.mark.skipif(not (REPORTS / "README.md").is_file(),
                                reason="reports/ is not published (python -m fer_utils publish RUNS)")


@pytest.fixture(scope="module")
def published() -> dict:
    """Each run's predictions (argmax), labels, splits, metrics, run info and history."""
    out = {}
    for kind in KINDS:
        npz = np.load(REPORTS / kind / "predictions.npz")
        out[kind] = dict(probs=npz["probs"], predicted=npz["probs"].argmax(1), labels=npz["labels"],
                         file_ids=npz["file_ids"], splits=npz["splits"],
                         metrics=json.loads((REPORTS / kind / "metrics.json").read_text()),
                         info=json.loads((REPORTS / kind / "run_info.json").read_text()),
                         history=pd.read_csv(REPORTS / kind / "history.csv"))
    return out


@pytest.fixture(scope="module")
def report() -> str:
    return (REPORTS / "README.md").read_text()


def number(pattern: str, text: str) -> list[str]:
    """The groups of the one match of `pattern` in `text` (numbers with thousands separators and signs kept)."""
    found = re.findall(pattern, text)
    assert len(found) == 1, f"{pattern!r} found {len(found)} times"
    return list(found[0]) if isinstance(found[0], tuple) else [found[0]]


def pct(text: str) -> float:
    """'+1.88%' -> 0.0188."""
    return float(text.replace("%", "")) / 100


def exact_mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: twice the smaller binomial tail of Bin(b + c, 1/2), at most 1."""
    return min(1.0, 2 * binom.cdf(min(b, c), b + c, 0.5))


def test_both_runs_were_evaluated_on_the_same_images_in_the_same_order(published):
    # Every paired statistic below compares image i of one run with image i of the other.
    base, se = published["baseline"], published["se"]
    assert len(base["labels"]) == 7178
    np.testing.assert_array_equal(base["file_ids"], se["file_ids"])
    np.testing.assert_array_equal(base["labels"], se["labels"])
    np.testing.assert_array_equal(base["splits"], se["splits"])
    assert len(set(base["file_ids"])) == 7178


@pytest.mark.parametrize("kind", KINDS)
def test_predictions_give_the_published_accuracies_and_confusion_matrix(published, kind):
    # Breaks if predictions.npz and metrics.json came from different models (e.g. one run folder replaced).
    run = published[kind]
    right = run["predicted"] == run["labels"]
    assert right.mean() == pytest.approx(run["metrics"]["test_all_accuracy"], abs=1e-12)
    assert right[run["splits"] == "test"].mean() == pytest.approx(run["metrics"]["test_accuracy"], abs=1e-12)
    assert right[run["splits"] == "val"].mean() == pytest.approx(run["metrics"]["val_accuracy"], abs=1e-12)
    cm = np.zeros((7, 7), int)
    np.add.at(cm, (run["labels"], run["predicted"]), 1)
    assert cm.tolist() == run["metrics"]["splits"]["test_all"]["confusion_matrix"]


def test_mcnemar_counts_and_p_value_are_those_of_the_predictions(published, report):
    # Breaks if b and c were swapped, counted over images both got right, or the p-value one-sided or asymptotic.
    labels = published["baseline"]["labels"]
    base_right = published["baseline"]["predicted"] == labels
    se_right = published["se"]["predicted"] == labels
    b, c = int((base_right & ~se_right).sum()), int((~base_right & se_right).sum())
    assert int(number(r"baseline right, SE-CNN wrong: b = (\d+)", report)[0]) == b
    assert int(number(r"baseline wrong, SE-CNN right: c = (\d+)", report)[0]) == c
    (p,) = number(r"exact two-sided p-value \(b ~ Bin\(b \+ c, 1/2\) under H0\): p = (\S+) ", report)
    assert p == f"{exact_mcnemar(b, c):.4g}"


def test_mcnemar_on_privatetest_alone_is_that_of_its_predictions(published, report):
    labels, private = published["baseline"]["labels"], published["baseline"]["splits"] == "test"
    base_right = (published["baseline"]["predicted"] == labels)[private]
    se_right = (published["se"]["predicted"] == labels)[private]
    b, c = int((base_right & ~se_right).sum()), int((~base_right & se_right).sum())
    assert number(r"McNemar on PrivateTest alone: b = (\d+), c = (\d+), p = (\S+)\.\n", report) == [
        str(b), str(c), f"{exact_mcnemar(b, c):.4g}"]


def test_the_accuracy_difference_and_its_normal_interval_are_those_of_the_predictions(published, report):
    # Breaks if the difference were baseline minus SE-CNN, or its standard error that of unpaired accuracies.
    labels = published["baseline"]["labels"]
    d = (published["se"]["predicted"] == labels).astype(float) - (published["baseline"]["predicted"] == labels)
    n, diff = len(d), d.mean()
    se = d.std() / np.sqrt(n)
    low, high = diff - norm.ppf(0.975) * se, diff + norm.ppf(0.975) * se
    shown = number(r"SE-CNN minus baseline: (\S+) \(n = ([\d,]+)\); 95% interval: normal approximation "
                   r"\[(\S+), (\S+)\]", report)
    assert shown == [f"{diff:+.2%}", f"{n:,}", f"{low:+.2%}", f"{high:+.2%}"]


def test_the_bootstrap_interval_is_reproduced_from_the_predictions(published, report):
    # Two checks. The package's paired bootstrap with the notebook's seed (0) and the stated 10,000 resamples gives
    # the printed interval exactly. And a bootstrap written here, with another seed, agrees within 0.1 points (the
    # Monte Carlo error of a 2.5% quantile from 10,000 resamples is about 0.015 points here): that catches a
    # bootstrap that resampled the two models' images independently (unpaired: about 1.6 times wider) or took the
    # wrong quantiles, which the first check, using the package's own code, could not.
    labels = published["baseline"]["labels"]
    base, se = published["baseline"]["predicted"], published["se"]["predicted"]
    resamples, low, high = number(r"paired bootstrap \(([\d,]+) resamples\) \[(\S+), (\S+)\]", report)
    n_boot = int(resamples.replace(",", ""))
    assert n_boot == 10_000
    package = paired_accuracy_difference(labels, base, se, n_boot=n_boot, seed=0)
    assert [f"{package['bootstrap_low']:+.2%}", f"{package['bootstrap_high']:+.2%}"] == [low, high]

    d = (se == labels).astype(np.int8) - (base == labels).astype(np.int8)
    rng = np.random.default_rng(12345)
    means = np.array([d[rng.integers(0, len(d), len(d))].mean() for _ in range(n_boot)])
    mine = np.quantile(means, [0.025, 0.975])
    assert abs(mine[0] - pct(low)) < 0.001 and abs(mine[1] - pct(high)) < 0.001, (mine, low, high)


def test_macro_f1_is_that_of_the_predictions(published, report):
    def macro_f1(labels, predicted):
        scores = []
        for k in range(7):
            tp = ((predicted == k) & (labels == k)).sum()
            precision = tp / max((predicted == k).sum(), 1)
            recall = tp / max((labels == k).sum(), 1)
            scores.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
        return np.mean(scores)

    f1 = {kind: macro_f1(published[kind]["labels"], published[kind]["predicted"]) for kind in KINDS}
    assert number(r"Macro F1: baseline (\S+), SE-CNN (\S+)\.", report) == [f"{f1['baseline']:.3f}",
                                                                           f"{f1['se']:.3f}"]


@pytest.mark.parametrize("kind, name", [("baseline", "Baseline CNN"), ("se", "SE-CNN")])
def test_the_training_runs_table_and_checkpoint_notes_are_the_histories(published, report, kind, name):
    # Breaks if best_epoch were not the epoch of the best validation accuracy (e.g. the last, or 0-based).
    history = published[kind]["history"]
    best = int(np.argmax(history["val_accuracy"].to_numpy())) + 1
    epochs = len(history)
    assert published[kind]["info"]["best_epoch"] == best and published[kind]["info"]["epochs_run"] == epochs
    assert history["epoch"].tolist() == list(range(epochs))
    row = number(rf"\| {re.escape(name)} \| (\d+) \| (\d+) \| ([\d.]+) min \|", report)
    assert row == [str(epochs), str(best), f"{history['epoch_seconds'].sum() / 60:.1f}"]
    assert f"the checkpoint (epoch {best} of {epochs})" in report


# --- README.md's headline numbers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def results_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Results")
    return text[start:text.index("\n## ", start + 1)]


def readings(history: pd.DataFrame) -> tuple[float, float]:
    """Table 1 both ways from a per-epoch log, computed here: (the paper's way: the best epoch on all test images;
    clean: PrivateTest at the epoch with the best PublicTest accuracy)."""
    return (float(history["test_all_accuracy"].max()),
            float(history["private_test_accuracy"][history["public_test_accuracy"].idxmax()]))


def published_readings(run: dict) -> tuple[float, float]:
    """Table 1 both ways as published: the paper's way from the per-epoch log (only it has every epoch), clean from
    the checkpoint's float32 evaluation (metrics.json), which must be the epoch PublicTest chose."""
    history, metrics = run["history"], run["metrics"]
    assert metrics["evaluated_in"] == "float32"
    assert metrics["best_epoch"] == int(history["public_test_accuracy"].idxmax()) + 1
    return readings(history)[0], metrics["test_accuracy"]


@pytest.mark.parametrize("kind, name", [("baseline", "CNN"), ("se", "SE-CNN")])
def test_readme_results_table_is_the_published_runs(published, results_section, kind, name):
    # Breaks when a model in reports/ is replaced and README.md keeps the old numbers (or the other way round).
    m = published[kind]["metrics"]
    paper_way, clean = published_readings(published[kind])
    row = number(rf"\n\| {re.escape(name)} \| (\S+) \| (\S+) \| (\S+) \| (\S+) \| (\S+) \|", results_section)
    assert row == [f"{paper_way:.2%}", f"{clean:.2%}", f"{m['test_all_accuracy']:.2%}", f"{m['train_accuracy']:.2%}",
                   f"{PAPER_TABLE1[kind]['test_accuracy']:.2%}"]
    assert f"all {m['splits']['test_all']['n']:,} test images" in results_section


def test_readme_gain_and_p_value_are_the_published_ones(published, results_section):
    labels = published["baseline"]["labels"]
    base_right = published["baseline"]["predicted"] == labels
    se_right = published["se"]["predicted"] == labels
    gain = 100 * (se_right.mean() - base_right.mean())
    p = exact_mcnemar(int((base_right & ~se_right).sum()), int((~base_right & se_right).sum()))
    gain_text, p_text = number(r"SE-CNN minus the CNN: ([+-][\d.]+) points \(McNemar's\s+exact\s+test,\s+"
                               r"p = ([\d.]+)\)", results_section)
    assert gain_text == f"{gain:+.2f}"
    decimals = max(len(p_text.partition(".")[2]), 2)  # "1" is read as p = 1.00
    assert float(p_text) == pytest.approx(p, abs=0.5 * 10 ** -decimals)  # p to the digits shown


def test_readme_privatetest_gain_and_p_value_are_the_published_ones(published, results_section):
    labels, private = published["baseline"]["labels"], published["baseline"]["splits"] == "test"
    base_right = (published["baseline"]["predicted"] == labels)[private]
    se_right = (published["se"]["predicted"] == labels)[private]
    gain = 100 * (se_right.mean() - base_right.mean())
    p = exact_mcnemar(int((base_right & ~se_right).sum()), int((~base_right & se_right).sum()))
    shown = number(r"On PrivateTest\s+alone\s+the\s+SE-CNN\s+is\s+([\d.]+)\s+points\s+ahead\s+\(p = ([\d.]+)\)",
                   results_section)
    assert gain > 0 and shown[0] == f"{gain:.2f}"
    assert float(shown[1]) == pytest.approx(p, abs=0.5 * 10 ** -len(shown[1].split(".")[1]))


def test_readme_precision_example_is_the_cnn_log_against_its_float32_evaluation(published, results_section):
    # Breaks if the bf16 log and the float32 checkpoint were quoted at different epochs, or the images miscounted.
    history, metrics = published["baseline"]["history"], published["baseline"]["metrics"]
    logged = float(history["test_all_accuracy"][metrics["best_epoch"] - 1])
    n = metrics["splits"]["test_all"]["n"]
    images = round((metrics["test_all_accuracy"] - logged) * n)
    shown = number(r"the CNN's bf16 log says (\S+) on\s+all\s+test\s+images,\s+its\s+float32\s+evaluation\s+(\S+)\s+"
                   r"\((\d+)\s+images\s+of\s+([\d,]+)\)", results_section)
    assert shown == [f"{logged:.2%}", f"{metrics['test_all_accuracy']:.2%}", str(abs(images)), f"{n:,}"]


def notebook06_summary() -> str:
    """The closing summary reports/06 printed (its lines from "Data: " on)."""
    import nbformat

    nb = nbformat.read(REPORTS / "06_where_the_networks_look.ipynb", 4)
    texts = ["".join(o.get("text", "")) for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    return next(t[t.index("Data: "):] for t in texts if "Data: " in t)


def test_readme_notebook06_paragraph_is_what_reports_06_printed(results_section):
    # Breaks when notebook 06 is republished and README.md keeps the old Grad-CAM, occlusion, gate, FER+ or mirror
    # numbers (each is looked up in 06's own summary, then in the README's sentence that quotes it).
    summary = notebook06_summary()
    text = " ".join(results_section.split())  # the README's lines are wrapped
    cam = re.findall(r"(Baseline CNN|SE-CNN) nose \(([\d.]+)x; an untrained network of the same architecture: "
                     r"([\d.]+)x\)", summary)
    control = re.findall(r"(Baseline CNN|SE-CNN) nose \(([\d.]+)x the control's\)", summary)
    (cnn, se), (cnn_c, se_c) = sorted(cam), sorted(control)
    assert (f"nose ({cnn[1]}x a uniform map for the CNN, {se[1]}x for the SE-CNN)" in text
            and f"puts {cnn[2]}x and {se[2]}x there" in text and f"{cnn_c[1]}x and {se_c[1]}x their control's" in text)
    occ = number(r"Occlusion vs Grad-CAM \((\d+) faces\): median per-face correlation Baseline CNN ([\d.]+) .*?SE-CNN "
                 r"([\d.]+) ", summary)
    assert f"median r {occ[1]} and {occ[2]} on {occ[0]} faces" in text
    block3 = number(r"block3_se ([\d.]+)% of a gate's variance", summary)[0]
    fixed = number(r"test accuracy by \S+, \S+, -([\d.]+), -([\d.]+) points \(block1_se fixed", summary)
    assert f"explains {block3}% of the variance" in text
    assert f"costs {fixed[1]} points (block 3 alone: {fixed[0]})" in text
    ferplus = number(r"differs from the FER2013 label on ([\d.]+%) of the ([\d,]+) test images that have one \(most "
                     r"for fear: ([\d.]+%)\)", summary)
    assert f"on {ferplus[0]} of the {ferplus[1]} test images that have one ({ferplus[2]} of \"fear\")" in text
    agreed = number(r"SE-CNN: .*?>= 7 annotators agree \([\d,]+ images\): ([\d.]+%) against FER2013, ([\d.]+%) against "
                    r"FER\+", summary)
    assert f"SE-CNN scores {agreed[0]} against FER2013's labels and {agreed[1]} against FER+'s" in text
    mirror = dict(re.findall(r"Robustness, (Baseline CNN|SE-CNN) .*?mirrored faces change accuracy by -([\d.]+) points",
                             summary))
    n_faces = number(r"n_robustness = (\d+)", (REPORTS / "06_where_the_networks_look.ipynb").read_text())[0]
    assert (f"costs the CNN {mirror['Baseline CNN']} points and the SE-CNN {mirror['SE-CNN']} (on {int(n_faces):,} "
            "test faces)") in text


def test_readme_training_minutes_are_the_published_ones(published, results_section):
    minutes = [f"{published[k]['history']['epoch_seconds'].sum() / 60:.0f}" for k in KINDS]
    assert number(r"(\d+) and (\d+) minutes of\s+training\) on the real FER2013", results_section) == minutes


def test_readme_shortfall_against_the_paper_is_the_published_one(published, results_section):
    # Both readings of each model against the paper's figure: the smallest and the largest shortfall, to 0.1 point.
    gaps = [100 * (PAPER_TABLE1[k]["test_accuracy"] - reading) for k in KINDS
            for reading in published_readings(published[k])]
    shown = number(r"short\s+of\s+the\s+paper\s+by\s+([\d.]+)\s+to\s+([\d.]+)\s+points", results_section)
    assert shown == [f"{min(gaps):.1f}", f"{max(gaps):.1f}"], gaps


def seed_runs(kind: str) -> dict[int, Path]:
    """PAPER_CONFIG's width-study row (seed 0) and its other seeds' runs (benchmarks/width_study.sh), by seed."""
    filters = "-".join(str(f) for f in PAPER_CONFIG["filters"])
    row = f"{kind}_{filters}{'_bn' if PAPER_CONFIG['batch_norm'] else ''}_d{PAPER_CONFIG['dense_units']}"
    results = ROOT / "benchmarks" / "results"
    runs = {int(p.name.rsplit("_s", 1)[1]): p for p in (results / "seeds").glob(f"{row}_s*")}
    return {0: results / "study" / row, **runs}


def test_readme_seed_gains_are_those_of_the_seed_runs(results_section):
    # Breaks when a seed is added or re-run and README.md keeps the old mean and std of the SE-CNN's gain.
    runs = {kind: seed_runs(kind) for kind in KINDS}
    paper, public, clean = [], [], []
    for seed in sorted(set(runs["baseline"]) & set(runs["se"])):
        cnn, se = (pd.read_csv(runs[kind][seed] / "history.csv") for kind in KINDS)
        paper.append(100 * (readings(se)[0] - readings(cnn)[0]))
        public.append(100 * (se["public_test_accuracy"].max() - cnn["public_test_accuracy"].max()))
        clean.append(100 * (readings(se)[1] - readings(cnn)[1]))
    assert len(paper) >= 3
    shown = number(r"by ([\d.]+) ± ([\d.]+) points on all test images the paper's way,\s+([\d.]+) ± ([\d.]+) on "
                   r"PublicTest and ([\d.]+) ± ([\d.]+) clean, on PrivateTest", results_section)
    assert shown == [f"{f(g):.2f}" for g in (paper, public, clean) for f in (np.mean, lambda v: np.std(v, ddof=1))]
    assert min(paper + public + clean) > 0  # "ahead on every seed"
