"""fer_utils installed without the repository around it (`pip install .`, not `-e`), issue 29 item 6.

The install is simulated as the wheel makes it: the package's modules copied into a folder outside the repository,
put first on PYTHONPATH, and the commands run from another folder. What needs the repository's notebooks or published
models says so in one line, and how to get them; what needs only the package (predict --model PATH) works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A folder holding fer_utils as `pip install .` puts it in site-packages: the package alone."""
    site = tmp_path_factory.mktemp("site")
    shutil.copytree(REPO / "fer_utils", site / "fer_utils", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`python ARGS` from `cwd` with the installed copy first on the path (the repository nowhere on it)."""
    env = {**{k: v for k, v in os.environ.items() if k != "FER2013_PATH"}, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_copy_is_what_runs_not_the_repository(installed, tmp_path):
    done = run_installed(installed, tmp_path, "-c", "import fer_utils; print(fer_utils.__file__)")
    assert done.stdout.strip() == str(installed / "fer_utils" / "__init__.py"), done.stderr


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The command's one error line, after checking it ended with exit 2 and no traceback."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("command, missing", [
    (["fer_utils", "run", "--profile", "smoke"], "notebooks"),
    (["fer_utils", "run", "--data", "synthetic"], "notebooks"),
    (["fer_utils", "publish", "runs", "--out", "published"], "notebooks"),
    (["fer_utils.export", "--check"], "notebooks"),
    (["fer_utils", "predict", "photo.png"], "reports/se/model.keras"),
])
def test_what_needs_the_repository_says_what_is_missing_and_how_to_get_it(installed, tmp_path, command, missing):
    (tmp_path / "runs").mkdir()
    Image.new("L", (64, 64)).save(tmp_path / "photo.png")
    line = one_line_error(run_installed(installed, tmp_path, "-m", *command))
    assert f"{installed / missing}: not in this install" in line
    assert "a clone of the course repository" in line and "`pip install -e .`" in line
    if "predict" in command:
        assert "--model PATH" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "runs"]  # nothing written (publish: no out)


@pytest.mark.slow
def test_predict_with_a_model_named_works_from_any_install(installed, tmp_path):
    skimage_data = pytest.importorskip("skimage.data")
    shutil.copy(REPO / "reports" / "se" / "model.keras", tmp_path / "model.keras")
    Image.fromarray(np.asarray(skimage_data.astronaut())).save(tmp_path / "astronaut.png")
    done = run_installed(installed, tmp_path, "-m", "fer_utils", "predict", "astronaut.png", "--model", "model.keras")
    assert done.returncode == 0, done.stderr
    assert "astronaut.png: face 0 at" in done.stdout and (tmp_path / "runs" / "predict" / "predictions.csv").is_file()
