"""Publishing finished runs (`python -m fer_utils publish`) and reusing them (`run --reuse`)."""

import json
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from fer_utils import pipeline, publish
from fer_utils.training import train


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory, tiny_synthetic):
    """Two finished one-epoch runs on the tiny synthetic set, as `train` writes them."""
    runs = tmp_path_factory.mktemp("runs")
    for kind in pipeline.MODELS:
        train(kind, tiny_synthetic, runs / kind, epochs=1, precision="float32", verbose=0)
    return runs


@pytest.fixture(scope="module")
def published(finished_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    status = publish.publish(finished_runs, out=out, data="synthetic")
    return status, out


def test_copy_runs_names_every_missing_file(tmp_path):
    (tmp_path / "baseline").mkdir()
    (tmp_path / "baseline" / "metrics.json").write_text("{}")
    with pytest.raises(FileNotFoundError) as err:
        pipeline.copy_runs(tmp_path, tmp_path / "out")
    assert str(tmp_path / "baseline" / "model.keras") in str(err.value)
    assert str(tmp_path / "se" / "history.csv") in str(err.value)
    assert str(tmp_path / "baseline" / "metrics.json") not in str(err.value)


@pytest.mark.slow  # finished_runs trains two models
def test_copy_runs_leaves_a_finished_run_alone_unless_told_to_overwrite(finished_runs, tmp_path):
    (tmp_path / "se").mkdir()
    (tmp_path / "se" / "metrics.json").write_text('{"mine": true}')
    written = pipeline.copy_runs(finished_runs, tmp_path, overwrite=False)
    assert written == [tmp_path / "baseline"]
    assert json.loads((tmp_path / "se" / "metrics.json").read_text()) == {"mine": True}
    copied, original = tmp_path / "baseline" / "model.keras", finished_runs / "baseline" / "model.keras"
    assert copied.read_bytes() == original.read_bytes()


@pytest.mark.slow  # finished_runs trains two models
def test_publish_refuses_a_model_over_the_size_limit(finished_runs, tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "MAX_MODEL_MB", 0.001)
    with pytest.raises(ValueError, match=r"baseline.model\.keras.*over the 0.001 MB"):
        publish.publish(finished_runs, out=tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


@pytest.mark.slow
def test_publish_copies_both_run_folders_without_the_training_backup(published):
    status, out = published
    assert status == 0
    for kind in pipeline.MODELS:
        assert sorted(p.name for p in (out / kind).iterdir()) == sorted([*pipeline.RUN_FILES, "calibration.json"])


@pytest.mark.slow  # finished_runs trains two models
def test_publishing_fits_a_new_temperature_in_place_of_a_stale_one(finished_runs, tiny_synthetic, tmp_path):
    from fer_utils.calibration import load_temperature

    pipeline.copy_runs(finished_runs, tmp_path)
    stale = {"temperature": 123.0, "data_source": "models published earlier"}
    for kind in pipeline.MODELS:
        (tmp_path / kind / "calibration.json").write_text(json.dumps(stale))
    publish.calibrate_published(tmp_path, tiny_synthetic)
    for kind in pipeline.MODELS:
        report = json.loads((tmp_path / kind / "calibration.json").read_text())
        assert report["temperature"] != 123.0 and "synthetic" in report["data_source"].lower()
        assert load_temperature(tmp_path / kind / "model.keras") == pytest.approx(report["temperature"])


@pytest.mark.slow  # finished_runs trains two models
def test_publishing_reevaluates_in_float32_and_keeps_the_training_time_numbers(finished_runs, tiny_synthetic,
                                                                               tmp_path):
    # Breaks if publish kept a run's training-precision evaluation (bf16 answers differ from machine to machine),
    # threw those numbers away, or let metrics.json and predictions.npz disagree.
    import numpy as np

    pipeline.copy_runs(finished_runs, tmp_path)
    trained = {}
    for kind in pipeline.MODELS:  # as a run evaluated in its training precision wrote it
        metrics = json.loads((tmp_path / kind / "metrics.json").read_text())
        metrics.pop("evaluated_in")
        metrics["test_all_accuracy"] = 0.123
        (tmp_path / kind / "metrics.json").write_text(json.dumps(metrics))
        np.savez(tmp_path / kind / "predictions.npz", probs=np.zeros((1, 7)))
        trained[kind] = metrics
    publish.reevaluate_published(tmp_path, tiny_synthetic)
    for kind in pipeline.MODELS:
        metrics = json.loads((tmp_path / kind / "metrics.json").read_text())
        predictions = np.load(tmp_path / kind / "predictions.npz")
        assert metrics["evaluated_in"] == "float32"
        assert metrics["training_precision_evaluation"]["test_all_accuracy"] == 0.123
        assert metrics["training_precision_evaluation"]["precision"] == "float32"  # what run_info.json says
        assert (metrics["best_epoch"], metrics["epochs_run"]) == (trained[kind]["best_epoch"],
                                                                  trained[kind]["epochs_run"])
        assert len(predictions["labels"]) == tiny_synthetic.mask("test_all").sum()
        right = predictions["probs"].argmax(1) == predictions["labels"]
        assert metrics["test_all_accuracy"] == pytest.approx(right.mean(), abs=1e-12)


@pytest.mark.slow
def test_published_readme_holds_table1_targets_runs_and_commands(published):
    _, out = published
    readme = (out / "README.md").read_text()
    baseline = json.loads((out / "baseline" / "metrics.json").read_text())
    for heading in ("## Table 1", "## Targets", "## Training runs", "## Commands", "## Figures"):
        assert heading in readme
    assert f"| Original CNN | this run | {baseline['train_loss']:.4f} |" in readme
    assert "Baseline CNN, the paper's way (epoch" in readme and "SE-CNN, clean (PrivateTest at epoch" in readme
    assert f"Baseline CNN, train accuracy: {baseline['train_accuracy']:.2%}" in readme and "**missed**" in readme
    assert f"python -m fer_utils evaluate {out.name}/se/model.keras --split test_all --data synthetic" in readme
    assert "SYNTHETIC" in readme
    assert not (out / "results.md").exists()


@pytest.mark.slow
def test_published_readme_embeds_every_figure_it_names(published):
    _, out = published
    readme = (out / "README.md").read_text()
    figures = sorted((out / "figures").glob("*.png"))
    assert {"05_curves.png", "05_reliability.png", "05_confusion_counts.png"} <= {p.name for p in figures}
    for png in figures:
        assert f"](figures/{png.name})" in readme


@pytest.mark.slow
def test_published_notebook_ran_without_errors_and_shows_no_faces(published):
    _, out = published
    nb = nbformat.read(out / "05_error_analysis.ipynb", 4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs and not [o for o in outputs if o.output_type == "error"]
    assert "n_gallery = 0: no faces shown" in json.dumps(nb)
    assert not (out / "figures" / "05_gallery_se_mistakes.png").exists()


@pytest.mark.slow
def test_published_notebooks_06_to_08_ran_without_errors_or_faces(published):
    _, out = published
    for name in ("06_where_the_networks_look.ipynb", "07_try_it_yourself.ipynb", "08_beyond_the_paper.ipynb"):
        nb = nbformat.read(out / name, 4)
        assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    for name in ("06_where_the_networks_look.ipynb", "08_beyond_the_paper.ipynb"):
        assert "show_faces = False" in json.dumps(nbformat.read(out / name, 4))
    assert not (out / "07_predict").exists()  # predict's annotated photos go to a temporary folder


@pytest.mark.slow
def test_run_with_reuse_copies_finished_runs_before_the_notebooks(finished_runs, tmp_path, monkeypatch):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    nb = new_notebook(cells=[new_code_cell("run_dir = None", metadata={"tags": ["parameters"]}),
                             new_code_cell("from pathlib import Path\n"
                                           "assert (Path(run_dir) / 'se' / 'model.keras').is_file()")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, nb_dir / "01_check.ipynb")
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", nb_dir)
    status = pipeline.run_pipeline("smoke", data="synthetic", out=str(tmp_path / "run"), reuse=str(finished_runs))
    assert status == 0


@pytest.mark.slow
def test_published_notebooks_and_run_records_name_no_absolute_path_of_the_publishing_machine(published):
    from fer_utils.config import REPO_ROOT

    _, out = published
    for published_file in sorted(f for pattern in publish.SCRUBBED for f in out.glob(pattern)):
        text = published_file.read_text(encoding="utf-8")
        for path in (str(REPO_ROOT), str(out), str(REPO_ROOT.parent)):
            assert path not in text, f"{published_file.relative_to(out)} names {path}"


def test_scrub_paths_replaces_the_longest_path_first_and_json_escaped_ones(tmp_path):
    notebook = tmp_path / "05_x.ipynb"
    notebook.write_text('{"text": "data in /srv/me/data/fer.zip, repo /srv/me, C:\\\\Users\\\\me\\\\tmp\\\\x"}')
    publish.scrub_paths(tmp_path, {"/srv/me": "", "/srv/me/data/fer.zip": "path/to/archive.zip",
                                    "C:\\Users\\me\\tmp": "<temporary folder>"})
    assert notebook.read_text() == '{"text": "data in path/to/archive.zip, repo , <temporary folder>\\\\x"}'


def test_scrub_paths_rewrites_the_run_folders_records_too(tmp_path):
    (tmp_path / "se").mkdir()
    info = tmp_path / "se" / "run_info.json"
    info.write_text(json.dumps({"command": "/srv/me/repo/fer_utils/__main__.py train --out /srv/me/runs/se",
                                "data_source": "/srv/me/data/fer.zip"}))
    publish.scrub_paths(tmp_path, {"/srv/me/runs": "RUNS", "/srv/me/repo/": "", "/srv/me/": "../"})
    assert json.loads(info.read_text()) == {"command": "fer_utils/__main__.py train --out RUNS/se",
                                            "data_source": "../data/fer.zip"}


MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:work|home|Users|tmp|root|mnt|srv|opt|private)/|\b[A-Za-z]:\\\\")
"""An absolute path on a Linux, macOS or Windows machine (as JSON writes it), as a published file must not name."""


def test_committed_reports_name_no_absolute_path_of_a_machine():
    from fer_utils.config import REPO_ROOT

    reports = REPO_ROOT / "reports"
    for path in sorted(p for pattern in ("**/*.json", "**/*.md", "**/*.ipynb") for p in reports.glob(pattern)):
        found = MACHINE_PATH.search(path.read_text(encoding="utf-8"))
        assert found is None, f"{path.relative_to(REPO_ROOT)} names a machine's path: ...{found.group(0)}..."


@pytest.fixture(scope="module")
def robust_folder(finished_runs, tiny_synthetic, tmp_path_factory):
    """The finished runs copied, calibrated and measured as `publish --targets robust` does (no notebooks run)."""
    out = tmp_path_factory.mktemp("robust")
    pipeline.copy_runs(finished_runs, out)
    publish.calibrate_published(out, tiny_synthetic)
    publish.measure_robustness(out, tiny_synthetic)
    return out


@pytest.mark.slow  # finished_runs trains two models
def test_a_robust_publish_measures_every_target_perturbation_on_both_test_splits(robust_folder):
    import pandas as pd

    from fer_utils.config import ROBUSTNESS_TARGETS

    for kind in pipeline.MODELS:
        table = pd.read_csv(robust_folder / kind / "robustness.csv")
        for split in ("val", "test"):
            rows = table[table["split"] == split]
            assert sorted(zip(rows["perturbation"], rows["strength"])) == sorted(
                (k, float(s)) for k, s in ROBUSTNESS_TARGETS)
            assert (rows["points_lost"] == 100 * (rows["clean_accuracy"] - rows["accuracy"])).all()


@pytest.mark.slow  # finished_runs trains two models
def test_a_paper_publish_removes_a_robustness_table_of_earlier_weights(finished_runs, tmp_path):
    pipeline.copy_runs(finished_runs, tmp_path)
    (tmp_path / "se" / "robustness.csv").write_text("perturbation,points_lost\nnoise,99\n")
    publish.measure_robustness(tmp_path, None)
    assert not (tmp_path / "se" / "robustness.csv").exists()


@pytest.mark.slow  # finished_runs trains two models
def test_robust_readme_judges_the_se_cnn_against_the_issues_targets(robust_folder, tiny_synthetic):
    from fer_utils.config import ROBUST_MODEL_TARGETS, ROBUSTNESS_TARGETS
    from fer_utils.evaluation import predict_proba
    from fer_utils.explain import load_float32, perturbation_label

    lines = publish._readme_lines(robust_folder, robust_folder, "synthetic", "TABLES\n", "FIGURES\n",
                                  robust_images=tiny_synthetic)
    text = "\n".join(lines)
    assert lines[0].startswith("# Published robust models") and "## Targets of the robust-model issue" in text
    assert "## Table 1" not in text and "width study" not in text  # the paper pair's sections are not repeated
    se = json.loads((robust_folder / "se" / "metrics.json").read_text())
    target = ROBUST_MODEL_TARGETS["private_test_accuracy"]
    assert f"SE-CNN, PrivateTest, one view (epoch {se['best_epoch']}" in text
    assert f"{se['test_accuracy']:.2%}, target {target:.1%}: **missed** by" in text  # a 1-epoch model on 4 faces
    x, y = tiny_synthetic.xy("test")
    flips = (predict_proba(load_float32(robust_folder / "se" / "model.keras"), x, tta=True).argmax(1) == y).mean()
    assert f"with flips at test time (each face averaged with its mirror image, reported apart): {flips:.2%}" in text
    calibration = json.loads((robust_folder / "se" / "calibration.json").read_text())
    assert f"after temperature scaling (T = {calibration['temperature']:.2f}" in text
    assert f"{calibration['ece_after']:.3f} (before: {calibration['ece_before']:.3f})" in text
    for kind, strength in ROBUSTNESS_TARGETS:
        assert f"| {perturbation_label(kind, strength)} |" in text
    assert "SE-CNN above the baseline" in text and "training time:" in text and "target at most 3 h" in text


def test_publish_refuses_unknown_targets_before_writing_anything(tmp_path):
    with pytest.raises(ValueError, match="unknown targets 'robustt'"):
        publish.publish(tmp_path / "runs", out=tmp_path / "out", targets="robustt")
    assert not (tmp_path / "out").exists()
