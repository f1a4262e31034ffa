"""CI's contract: `.ci/run` refuses to skip the real data under CI, and `make test-fast` trains nothing.

Each test names the broken implementation it catches.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


# --- .ci/run: the real-data check, run on a copy with a `make` that only records how it was called -----------


@pytest.fixture
def ci_copy(tmp_path):
    """tmp/work/repo/.ci/run (a copy of ours), tmp/work/shared/ beside it (empty), and a fake `make` on PATH.

    Returns a function run(ci, with_archive) -> (CompletedProcess, what make was called with, or None).
    """
    repo = tmp_path / "work" / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy2(REPO / ".ci" / "run", repo / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "make.log"
    (bin_dir / "make").write_text(f'#!/bin/sh\necho "$* FER2013_PATH=${{FER2013_PATH:-}}" > "{log}"\n')
    (bin_dir / "make").chmod(0o755)

    def run(ci: str | None, with_archive: bool):
        if with_archive:
            archive = tmp_path / "work" / "shared" / "data" / "fer2013" / "archive.zip"
            archive.parent.mkdir(parents=True, exist_ok=True)
            archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip: only its presence matters here
        env = {k: v for k, v in os.environ.items() if k not in ("CI", "FER2013_PATH")}
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
        if ci is not None:
            env["CI"] = ci
        done = subprocess.run(["bash", str(repo / ".ci" / "run")], env=env, capture_output=True, text=True,
                              timeout=60)
        return done, (log.read_text().strip() if log.exists() else None)

    return run


def test_ci_fails_when_the_real_archive_is_missing(ci_copy):
    # Breaks on the old .ci/run, which printed "real-data tests will be skipped" and ran `make test` anyway: a CI
    # without the archive went green having skipped every real-data test.
    done, make = ci_copy(ci="true", with_archive=False)
    assert done.returncode != 0
    assert "../shared/data/fer2013/archive.zip" in done.stderr and "CI=true" in done.stderr
    assert make is None  # stopped before the suite


def test_outside_ci_a_missing_archive_only_skips_the_real_data_tests(ci_copy):
    # Breaks if the CI check also failed a contributor's `bash .ci/run` on a laptop without the data.
    done, make = ci_copy(ci=None, with_archive=False)
    assert done.returncode == 0, done.stderr
    assert "real-data tests will be skipped" in done.stdout
    assert make == "test FER2013_PATH="


def test_with_the_archive_ci_points_fer2013_path_at_it_and_runs_the_whole_suite(ci_copy, tmp_path):
    # Breaks if FER2013_PATH were not exported to make (the real-data tests would skip) or were left relative.
    done, make = ci_copy(ci="true", with_archive=True)
    assert done.returncode == 0, done.stderr
    expected = tmp_path / "work" / "shared" / "data" / "fer2013" / "archive.zip"
    assert make == f"test FER2013_PATH={expected.resolve()}"


# --- make test / test-fast -------------------------------------------------------------------------------


def make_recipe(target: str) -> list[str]:
    """The recipe lines of one Makefile target."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{re.escape(target)}:", line))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_make_test_fast_leaves_out_the_slow_tests_and_make_test_runs_them_all():
    # Breaks if test-fast lost its marker filter (it would train), or `make test` (CI's command) gained one.
    assert make_recipe("test-fast") == ['$(PY) -m pytest -m "not slow"']
    assert make_recipe("test") == ["$(PY) -m pytest"]
    assert (REPO / ".ci" / "run").read_text().rstrip().endswith("make test")


def tiny_model() -> keras.Model:
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def test_a_test_not_marked_slow_cannot_train():
    # Breaks if the guard in conftest.py were gone: this fit would just run, and so would any unmarked training.
    x, y = np.zeros((4, 3), np.float32), keras.utils.to_categorical([0, 1, 0, 1], 2)
    with pytest.raises(pytest.fail.Exception, match="not marked slow"):
        tiny_model().fit(x, y, epochs=1, verbose=0)


@pytest.mark.slow
def test_a_slow_test_may_train():
    x, y = np.zeros((4, 3), np.float32), keras.utils.to_categorical([0, 1, 0, 1], 2)
    assert len(tiny_model().fit(x, y, epochs=2, verbose=0).history["loss"]) == 2


def test_a_fixture_that_trains_fails_the_fast_test_that_uses_it(tmp_path):
    # A module-scoped fixture is set up inside its first test's setup, before any function-scoped fixture: the
    # guard covers setup too. Breaks if the guard were an autouse function fixture (it would come too late).
    shutil.copy2(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: trains\n")
    (tmp_path / "test_inner.py").write_text(textwrap.dedent("""
        import keras
        import numpy as np
        import pytest

        @pytest.fixture(scope="module")
        def trained():
            inputs = keras.Input((3,))
            model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
            model.compile(optimizer="adam", loss="mse")
            model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0)
            return model

        def test_uses_a_trained_model(trained):
            assert trained.built
    """))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                           str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 error" in done.stdout and "test_uses_a_trained_model trains a model" in done.stdout
