"""Lint, declared dependencies and the pre-commit hooks (the project's maintenance habits)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    pytest.importorskip("ruff", reason="ruff is in the dev extra: pip install -e '.[dev]'")
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "fer_utils", "tests", "benchmarks"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_third_party_import_of_the_package_is_a_declared_dependency():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {dep.split(">")[0].split("<")[0].split("=")[0].strip().lower() for dep in project["dependencies"]}
    # module -> the distribution that brings it
    dist_of = {"sklearn": "scikit-learn", "PIL": "pillow", "yaml": "pyyaml", "IPython": "ipykernel",
               "jupyter_client": "jupyterlab", "nbformat": "papermill", "h5py": "keras",
               "cv2": "opencv-python-headless", "skimage": "scikit-image"}
    optional = {"jax", "torch", "tensorflow"}  # backends, probed only when selected
    stdlib = set(sys.stdlib_module_names)
    missing = set()
    for path in (ROOT / "fer_utils").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top not in optional and top != "fer_utils":
                    if dist_of.get(top, top).lower() not in declared:
                        missing.add(f"{path.name}: {top}")
    assert missing == set()


def test_notebook_outputs_are_stripped_by_a_pre_commit_hook():
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    assert "id: nbstripout" in config and "id: ruff" in config and "fer_utils.export --check" in config
