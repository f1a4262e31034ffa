"""benchmarks/gpu_*.sh: the GPU study's plan, jobs and unpacking, checked without a GPU, data or training.

gpu_pack.sh splits FER2013 so that every device call stays under the tool's 64 MiB; gpu_study.sh trains the width
study's rows exactly as width_study.sh does (one row definition, benchmarks/study_rows.sh); gpu_unpack.sh files only
finished runs where the tables read them.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
MIB = 1024 * 1024
ARCHIVE = 61_814_611  # FER2013's archive.zip (Kaggle msambare/fer2013), bytes
WHEELS = 2_900_000  # keras, namex and optree wheels plus the hash files, about


def bash(*args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=30)


def plan(tree: int, archive: int = ARCHIVE, extra: int = WHEELS) -> list[tuple[int, int, int]]:
    """gpu_pack.sh's calls for these sizes: (tree, part, extra) per call."""
    done = bash(str(BENCH / "gpu_pack.sh"), "--plan", str(tree), str(archive), str(extra))
    assert done.returncode == 0, done.stderr
    return [tuple(map(int, m)) for m in re.findall(r"call \d+: tree (\d+) \+ part (\d+) \+ extra (\d+)", done.stdout)]


@pytest.mark.parametrize("tree", [940_000, 12_000_000, 46_319_246, 60_000_000])
def test_every_device_call_carries_less_than_64_mib_and_all_calls_carry_the_whole_archive(tree):
    calls = plan(tree)
    assert all(t + part + extra <= 64 * MIB for t, part, extra in calls)
    assert sum(part for _, part, _ in calls) == ARCHIVE
    assert sum(extra for _, _, extra in calls) == WHEELS  # the wheels and hashes travel once, with the last part


def test_a_tree_without_reports_sends_the_archive_in_one_call_and_the_whole_tree_needs_four():
    assert len(plan(940_000)) == 1  # today's tree less reports/ (its two model.keras are 35 MB)
    assert len(plan(46_319_246)) == 4


def test_a_tree_that_leaves_no_room_is_refused():
    done = bash(str(BENCH / "gpu_pack.sh"), "--plan", str(63 * MIB), str(ARCHIVE), str(WHEELS))
    assert done.returncode != 0 and "no room" in done.stderr


def study_jobs(tmp_path: Path, *args: str, **env: str) -> dict[str, tuple[str, str, str]]:
    """gpu_study.sh --list: job -> (kind, state, train options), against empty results folders."""
    env = {"STUDY_RESULTS": str(tmp_path / "study"), "SEEDS_RESULTS": str(tmp_path / "seeds"),
           "RUNS": str(tmp_path / "runs"), **env}
    done = bash(str(BENCH / "gpu_study.sh"), "--list", *args, env=env)
    assert done.returncode == 0, done.stderr
    jobs = {}
    for line in done.stdout.splitlines():
        name, kind, state, options = line.split(maxsplit=3)
        jobs[name] = (kind, state, options)
    return jobs


def width_study_options(tmp_path: Path, row: str, seed: int) -> str:
    """The options width_study.sh gives `python -m fer_utils train` for ROW, read off a stand-in Python."""
    copy = tmp_path / "repo"
    (copy / "benchmarks").mkdir(parents=True)
    for name in ("width_study.sh", "study_rows.sh"):
        shutil.copy2(BENCH / name, copy / "benchmarks" / name)
    fake = tmp_path / "python"
    fake.write_text('#!/usr/bin/env bash\n# records its arguments; writes the files a finished run folder holds\n'
                    'out=${@: -1}; echo "$@" > "$out.args"; mkdir -p "$out"\n'
                    'touch "$out/history.csv" "$out/metrics.json" "$out/run_info.json"\n')
    fake.chmod(0o755)
    done = bash(str(copy / "benchmarks" / "width_study.sh"), row,
                env={"PY": str(fake), "RUNS": str(tmp_path / "cpu_runs"), "SEED": str(seed), "DATA": "D"})
    assert done.returncode == 0, done.stderr
    suffix = f"_s{seed}" if seed else ""
    args = (tmp_path / "cpu_runs" / f"{row}{suffix}.args").read_text().split()
    assert args[:3] == ["-m", "fer_utils", "train"] and args[-2] == "--out"
    args = args[3:-2]
    data = args.index("--data")
    return " ".join(args[:data] + args[data + 2:])


@pytest.mark.parametrize("row, seed", [("se_64-128-256_bn_d1024_dd05", 0), ("baseline_32-64-128_bn_d512", 2)])
def test_the_gpu_study_trains_a_row_with_the_options_width_study_gives_it(tmp_path, row, seed):
    job = f"{row}_s{seed}" if seed else row
    kind, state, options = study_jobs(tmp_path)[job]
    assert (kind, state) == ("seeds" if seed else "study", "todo")
    assert options == width_study_options(tmp_path, row, seed)


def test_the_gpu_study_runs_every_width_row_then_two_seeds_of_one_pair_then_the_two_paper_runs(tmp_path):
    rows = bash("-c", "source benchmarks/study_rows.sh; echo ${ORDER[*]}").stdout.split()
    jobs = study_jobs(tmp_path)
    pair = ["baseline_32-64-128_bn_d512", "se_32-64-128_bn_d512"]
    assert list(jobs) == rows + [f"{r}_s{s}" for s in (1, 2) for r in pair] + ["paper_baseline", "paper_se"]
    assert jobs["paper_se"] == ("full", "todo", "--model se --filters 32,64,128 --dense-units 512 --batch-norm "
                                "--dense-dropout 0 --epochs 100")


def test_rows_already_in_the_results_are_not_trained_again(tmp_path):
    (tmp_path / "study" / "se_32-64-128_d256").mkdir(parents=True)
    (tmp_path / "study" / "se_32-64-128_d256" / "metrics.json").write_text("{}")
    (tmp_path / "study" / "se_32-64-128_bn_d512").mkdir()  # no metrics.json: an unfinished row is trained
    jobs = study_jobs(tmp_path)
    assert jobs["se_32-64-128_d256"][1] == "done-in-repo"
    assert jobs["se_32-64-128_bn_d512"][1] == "todo"


def test_the_paper_runs_take_their_widths_from_the_environment(tmp_path):
    jobs = study_jobs(tmp_path, "paper_baseline", PAPER_FILTERS="48,96,192", PAPER_DENSE="512", PAPER_BN="")
    assert list(jobs) == ["paper_baseline"]
    assert jobs["paper_baseline"][2].split() == ["--model", "baseline", "--filters", "48,96,192", "--dense-units",
                                                 "512", "--dense-dropout", "0", "--epochs", "100"]


def packed(tmp_path: Path, rows: list[tuple[str, str, str, str]], parts: int = 12) -> Path:
    """A gpu_study.tar.gz cut into `parts` parts as gpu_study.sh names them: each (job, kind, folder, state) with its
    files."""
    buf = io.BytesIO()
    summary = "job\tkind\tfolder\tstate\texit\tepochs\tbest_val_accuracy\n"
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name: str, text: str) -> None:
            data = text.encode()
            info = tarfile.TarInfo(f"gpu_study/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for job, kind, folder, state in rows:
            files = ["history.csv", "train.log"] + (["metrics.json", "run_info.json"] if state == "finished" else [])
            for f in files + (["model.keras"] if kind == "full" else []):
                add(f"{folder}/{f}", f"{job} {f}")
            summary += f"{job}\t{kind}\t{folder}\t{state}\t0\t15\t0.6500\n"
        add("summary.tsv", summary)
    out = tmp_path / "files_at"
    out.mkdir()
    data = buf.getvalue()
    size = -(-len(data) // parts)
    for i in range(parts):
        (out / f"gpu_study.tar.gz.part-{i}").write_bytes(data[i * size:(i + 1) * size])
    return out


def test_unpack_files_finished_runs_where_the_tables_read_them_and_keeps_the_rest_outside_git(tmp_path):
    files = packed(tmp_path, [("se_64-128-256_d256", "study", "se_64-128-256_d256", "finished"),
                              ("baseline_32-64-128_d256", "study", "baseline_32-64-128_d256", "stopped-at-budget"),
                              ("se_32-64-128_bn_d256_s1", "seeds", "se_32-64-128_bn_d256_s1", "finished"),
                              ("paper_se", "full", "paper/se", "finished")])  # 12 parts: 10 and 11 follow 9
    study, seeds, runs = tmp_path / "study", tmp_path / "seeds", tmp_path / "runs"
    (study / "old_row").mkdir(parents=True)
    done = bash(str(BENCH / "gpu_unpack.sh"), str(files),
                env={"STUDY_RESULTS": str(study), "SEEDS_RESULTS": str(seeds), "RUNS": str(runs)})
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in study.iterdir()) == ["old_row", "se_64-128-256_d256"]
    assert sorted(p.name for p in (study / "se_64-128-256_d256").iterdir()) == ["history.csv", "metrics.json",
                                                                              "run_info.json"]
    assert (study / "se_64-128-256_d256" / "history.csv").read_text() == "se_64-128-256_d256 history.csv"
    assert sorted(p.name for p in seeds.iterdir()) == ["se_32-64-128_bn_d256_s1"]
    assert (runs / "baseline_32-64-128_d256" / "history.csv").is_file()  # the partial run: outside git only
    assert (runs / "paper" / "se" / "model.keras").read_text() == "paper_se model.keras"


def test_the_gpu_paper_runs_default_to_the_configuration_declared_in_config(tmp_path):
    from fer_utils.config import PAPER_CONFIG

    options = study_jobs(tmp_path, "paper_se")["paper_se"][2].split()
    value = {flag: options[options.index(flag) + 1] for flag in ("--filters", "--dense-units", "--dense-dropout")}
    assert tuple(int(f) for f in value["--filters"].split(",")) == PAPER_CONFIG["filters"]
    assert int(value["--dense-units"]) == PAPER_CONFIG["dense_units"]
    assert float(value["--dense-dropout"]) == PAPER_CONFIG["dense_dropout"]
    assert ("--batch-norm" in options) == PAPER_CONFIG["batch_norm"]
