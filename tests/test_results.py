"""fer_utils.evaluation: the paired accuracy difference and the results.md that notebook 05 writes."""

import numpy as np
import pytest

from fer_utils.evaluation import mcnemar, paired_accuracy_difference, table1, write_results_md


def paired_predictions(n: int, both: int, a_only: int, b_only: int):
    """Labels (all 0) and two models' predictions: `both` images right for both, then A-only, then B-only right."""
    labels = np.zeros(n, dtype=int)
    pred_a, pred_b = np.ones(n, dtype=int), np.ones(n, dtype=int)
    pred_a[:both + a_only] = 0
    pred_b[:both] = 0
    pred_b[both + a_only:both + a_only + b_only] = 0
    return labels, pred_a, pred_b


def run_metrics(train_acc: float, test_all_acc: float, private_acc: float) -> dict:
    return {"train_loss": 0.5, "train_accuracy": train_acc, "test_all_loss": 1.0, "test_all_accuracy": test_all_acc,
            "test_loss": 1.1, "test_accuracy": private_acc}


# --- paired_accuracy_difference ---------------------------------------------------------------------------------


def test_difference_is_b_minus_a_with_the_closed_form_normal_interval():
    labels, a, b = paired_predictions(100, both=55, a_only=5, b_only=15)  # A 60%, B 70%
    out = paired_accuracy_difference(labels, a, b, n_boot=2000, seed=0)
    assert out["difference"] == pytest.approx(0.10)
    se = np.sqrt(5 + 15 - (15 - 5) ** 2 / 100) / 100  # (1/n) sqrt(b + c - (c - b)^2 / n)
    assert out["se"] == pytest.approx(se)
    assert out["normal_low"] == pytest.approx(0.10 - 1.959964 * se, abs=1e-6)
    assert out["normal_high"] == pytest.approx(0.10 + 1.959964 * se, abs=1e-6)


def test_bootstrap_interval_is_seeded_and_close_to_the_normal_one():
    labels, a, b = paired_predictions(400, both=200, a_only=40, b_only=60)
    first = paired_accuracy_difference(labels, a, b, n_boot=3000, seed=1)
    again = paired_accuracy_difference(labels, a, b, n_boot=3000, seed=1)
    assert (first["bootstrap_low"], first["bootstrap_high"]) == (again["bootstrap_low"], again["bootstrap_high"])
    assert first["bootstrap_low"] < first["difference"] < first["bootstrap_high"]
    assert first["bootstrap_low"] == pytest.approx(first["normal_low"], abs=0.01)
    assert first["bootstrap_high"] == pytest.approx(first["normal_high"], abs=0.01)
    assert len(first["samples"]) == 3000


def test_identical_predictions_give_a_zero_width_interval():
    labels, a, _ = paired_predictions(50, both=30, a_only=0, b_only=0)
    out = paired_accuracy_difference(labels, a, a.copy(), n_boot=200)
    assert out["difference"] == 0
    assert out["normal_low"] == out["normal_high"] == out["bootstrap_low"] == out["bootstrap_high"] == 0


# --- write_results_md -------------------------------------------------------------------------------------------


@pytest.fixture
def results_inputs(tmp_path):
    labels, a, b = paired_predictions(200, both=120, a_only=7, b_only=21)
    table = table1({"baseline": run_metrics(0.81, 0.6123, 0.6077), "se": run_metrics(0.83, 0.6345, 0.6399)})
    figures = {"Confusion matrices (counts)": tmp_path / "run" / "figures" / "05_confusion_counts.png",
               "F1 per class": tmp_path / "run" / "figures" / "05_per_class_f1.png"}
    return dict(table=table, mcnemar_result=mcnemar(labels, a, b), figures=figures,
                difference=paired_accuracy_difference(labels, a, b, n_boot=500))


def test_results_md_has_ours_and_the_papers_test_figures(tmp_path, results_inputs):
    text = write_results_md(tmp_path / "run" / "results.md", data_description="FER2013 from archive.zip",
                            **results_inputs).read_text()
    for number in ("61.23%", "63.45%", "60.77%", "63.99%"):  # our test (all) and PrivateTest accuracies
        assert number in text
    for number in ("68.01%", "69.04%", "1.1134", "1.2447"):  # the paper's Table 1
        assert number in text
    assert text.count("| Original CNN |") == 2 and text.count("| CNN with SE Blocks |") == 2


def test_results_md_reports_mcnemar_counts_and_p_value(tmp_path, results_inputs):
    text = write_results_md(tmp_path / "results.md", data_description="FER2013", **results_inputs).read_text()
    p = results_inputs["mcnemar_result"]["p_value"]
    assert "b = 7" in text and "c = 21" in text
    assert f"p = {p:.4g}" in text and "(significant at the 0.05 level)" in text
    assert "+7.00%" in text  # SE-CNN minus baseline: (21 - 7) / 200


def test_results_md_links_figures_relative_to_its_own_folder(tmp_path, results_inputs):
    text = write_results_md(tmp_path / "run" / "results.md", data_description="FER2013", **results_inputs).read_text()
    assert "[Confusion matrices (counts)](figures/05_confusion_counts.png)" in text
    assert "[F1 per class](figures/05_per_class_f1.png)" in text
    assert str(tmp_path) not in text


def test_results_md_warns_loudly_only_for_synthetic_data(tmp_path, results_inputs):
    synthetic = write_results_md(tmp_path / "s.md", data_description="synthetic faces", synthetic=True,
                                 **results_inputs).read_text()
    real = write_results_md(tmp_path / "r.md", data_description="FER2013", **results_inputs).read_text()
    assert "SYNTHETIC" in synthetic and "NOT on FER2013" in synthetic
    assert "SYNTHETIC" not in real
