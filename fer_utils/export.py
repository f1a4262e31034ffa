"""The code the notebooks show is the code the package runs: notebook cells marked `#@save MODULE` -> fer_utils.

As in d2l, a code cell whose first line is `#@save MODULE` is written, without that line, into `fer_utils/MODULE.py`
between the two marker lines of its notebook: `#@save models` (notebooks 02-04: the model builders and compile),
`#@save training` (notebook 04: the callbacks list and the `fit` call), `#@save augment` (notebook 08: the
training-only augmentation layers) and `#@save attention` (notebook 09: ECA, CBAM and spatial attention).
`python -m fer_utils.export` rewrites those regions from the notebooks; `python -m fer_utils.export --check` (and
tests/test_export.py) fails when a notebook and the package differ. Edit such code in the notebook, never in the
region, and export.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

from .config import NOTEBOOK_DIR, repo_path

PACKAGE_DIR = Path(__file__).resolve().parent
MARK = "#@save"
TARGETS: tuple[str, ...] = ("models", "training", "augment", "attention")
"""The modules that notebook cells are exported into: `#@save models` -> fer_utils/models.py, and so on."""


def begin_marker(notebook: str, module: str) -> str:
    """The line that opens a notebook's region in a module."""
    return f"# ---- notebooks/{notebook}, cells `{MARK} {module}` (edit there; python -m fer_utils.export) ----"


def end_marker(notebook: str) -> str:
    """The line that closes a notebook's region."""
    return f"# ---- end of notebooks/{notebook} ----"


def saved_cells(notebook: Path) -> dict[str, list[str]]:
    """The marked code cells of one notebook, without their mark line, by target module ("models", ...)."""
    out: dict[str, list[str]] = {}
    for cell in json.loads(notebook.read_text())["cells"]:
        source = "".join(cell["source"])
        first, _, rest = source.partition("\n")
        if cell["cell_type"] == "code" and first.startswith(MARK):
            module = first[len(MARK):].strip()
            if module not in TARGETS:
                raise ValueError(f"{notebook.name}: a `{MARK}` cell names {module or 'no module'}; expected one of "
                                 f"{', '.join(TARGETS)} (fer_utils.export.TARGETS)")
            out.setdefault(module, []).append(rest.strip("\n"))
    return out


def region(notebook: str, module: str, cells: list[str]) -> str:
    """A module's region for one notebook: the markers around its cells, two blank lines between cells."""
    return "\n".join([begin_marker(notebook, module), "\n\n\n".join(cells), end_marker(notebook)])


def exported_text(module_path: Path, notebook_dir: Path = NOTEBOOK_DIR) -> str:
    """The text `module_path` should have: each notebook's region replaced by that notebook's marked cells.

    Raises ValueError when a notebook has cells for this module and the module has no region for it, or the
    reverse (a region whose notebook no longer marks any cell for it).
    """
    module = module_path.stem
    text = module_path.read_text()
    for notebook in sorted(notebook_dir.glob("[0-9][0-9]_*.ipynb")):
        cells = saved_cells(notebook).get(module)
        begin, end = begin_marker(notebook.name, module), end_marker(notebook.name)
        if begin not in text:
            if cells:
                raise ValueError(f"{module_path.name} has no region for {notebook.name}: add the lines\n{begin}\n{end}")
            continue
        if not cells:
            raise ValueError(f"{module_path.name} has a region for {notebook.name}, which marks no cell "
                             f"`{MARK} {module}`")
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + region(notebook.name, module, cells) + tail
    return text


def modules(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The package modules that notebook cells are exported into (`TARGETS`)."""
    return [package_dir / f"{module}.py" for module in TARGETS]


def check(package_dir: Path = PACKAGE_DIR, notebook_dir: Path = NOTEBOOK_DIR) -> list[str]:
    """Unified diffs (package as it is -> as the notebooks say), one per module that differs; [] when in sync."""
    diffs = []
    for path in modules(package_dir):
        want = exported_text(path, notebook_dir)
        have = path.read_text()
        if want != have:
            diffs.append("".join(difflib.unified_diff(have.splitlines(True), want.splitlines(True),
                                                      f"{path.name} (package)", f"{path.name} (notebooks)")))
    return diffs


def export(package_dir: Path = PACKAGE_DIR, notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """Rewrite every module's regions from the notebooks; return the modules that changed."""
    changed = []
    for path in modules(package_dir):
        want = exported_text(path, notebook_dir)
        if want != path.read_text():
            path.write_text(want)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    """`python -m fer_utils.export [--check]`."""
    parser = argparse.ArgumentParser(prog="python -m fer_utils.export", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report differences (exit 1 if any)")
    args = parser.parse_args(argv)
    try:
        repo_path(NOTEBOOK_DIR)
    except FileNotFoundError as err:
        from .cli import error_line

        print(f"error: {error_line(err)}", file=sys.stderr)
        return 2
    if args.check:
        diffs = check()
        print("\n".join(diffs) if diffs else "The package holds exactly the notebooks' marked cells.")
        return 1 if diffs else 0
    changed = export()
    print("\n".join(f"rewrote {p}" for p in changed) or "Nothing to export: the package is up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
