"""What each command of `python -m fer_utils` does, once fer_utils.cli has parsed its arguments.

One function per command (`cmd_*`), given the parsed arguments, returning the exit status; the errors it raises for
a bad input or setting are those fer_utils.cli turns into one `error: ...` line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from .config import SPLITS


def import_keras_quietly() -> None:
    """Import Keras (TensorFlow under it) without TensorFlow's C++ start-up lines ("Could not find cuda drivers...").

    TensorFlow 2.21 writes them to file descriptor 2 before its logging starts, whatever TF_CPP_MIN_LOG_LEVEL says,
    so the import runs with descriptor 2 pointed at a temporary file, whose lines are shown if the import fails.
    TF_CPP_MIN_LOG_LEVEL is set to 3 unless the user set it; a user who set 0 (show everything) sees the lines.
    """
    if "keras" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        import keras  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import keras  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def load_data_once(path: str | None, **kwargs):
    """`data.load_data(path, **kwargs)` for a command: the synthetic-data banner, when it applies, printed once on
    stderr (not also as a Python warning)."""
    from .data import load_data, synthetic_banner

    data = load_data(path, quiet=True, **kwargs)
    if data.synthetic:
        print(synthetic_banner(path), file=sys.stderr)
    return data


def cmd_data_check(args: argparse.Namespace) -> int:
    """Load and validate the data; print counts and every problem found (no FER2013 found is one)."""
    from .data import SYNTHETIC, DataError, format_counts, load_data

    try:  # the synthetic stand-in only when asked for by name: with nothing found, there is nothing to check
        data = load_data(args.path, synthetic_fallback=args.path == SYNTHETIC, quiet=True)
        report = {"source": data.source, "synthetic": data.synthetic, "counts": data.counts(), "problems": []}
    except DataError as err:
        report = {"source": None if args.path is None else str(args.path), "synthetic": False, "counts": None,
                  "problems": err.problems}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"source: {report['source'] or '(none given or found)'}"
              + ("  (SYNTHETIC stand-in, not FER2013)" if report["synthetic"] else ""))
        if report["counts"]:
            print(format_counts(report["counts"]))
        print(f"{len(report['problems'])} problem(s)" + "".join(f"\n  {p}" for p in report["problems"]))
    return 1 if report["problems"] else 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train one model and write its run folder."""
    import_keras_quietly()
    from .runfolder import command_line
    from .callbacks import TrainingInterrupted
    from .training import train

    data = load_data_once(args.data, per_class=args.subset, seed=args.seed)
    out = Path(args.out or f"runs/{args.model}")
    try:
        metrics = _train(train, args, data, out)
    except TrainingInterrupted as stop:
        again = command_line(["python", "-m", "fer_utils", *(word for word in args.argv if word != "--fresh")])
        print(f"{stop}: {again}", file=sys.stderr)
        return 130
    print(f"run folder: {out}")
    for split in (*SPLITS, "test_all"):
        print(f"{split:>9}: loss {metrics[f'{split}_loss']:.4f}  accuracy {metrics[f'{split}_accuracy']:.4f}")
    return 0


def _train(train, args: argparse.Namespace, data, out: Path) -> dict:
    """`train` with the CLI's options."""
    return train(args.model, data, out, epochs=args.epochs, seed=args.seed, protocol=args.protocol,
                 precision=args.precision, schedule=args.schedule, verbose=1 if sys.stdout.isatty() else 2,
                 dense_dropout=args.dense_dropout, flip=args.flip, batch_norm=args.batch_norm,
                 filters=args.filters, dense_units=args.dense_units, augment=args.augment,
                 label_smoothing=args.label_smoothing, weight_decay=args.weight_decay, fresh=args.fresh,
                 **_attention_options(args))


def _attention_options(args: argparse.Namespace) -> dict:
    """--attention and --se-ratio as `build_cnn` options, each only when given (the paper's runs record neither)."""
    return {k: v for k, v in {"attention": args.attention, "se_ratio": args.se_ratio}.items() if v is not None}


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Recompute a saved model's loss and accuracy on one split (the model as trained, no calibration, evaluated as a
    float32 copy as metrics.json is)."""
    import_keras_quietly()
    from .evaluation import evaluate_split
    from .predict import load_fer_model

    model = load_fer_model(args.model, calibrated=False, float32=True)  # InputError naming the file if not ours
    data = load_data_once(args.data, per_class=args.subset, seed=args.seed)
    scores = evaluate_split(model, data, args.split, args.tta)
    label = f"{args.split} (flip TTA)" if args.tta else args.split
    print(f"{label}: loss {scores['loss']:.4f}  accuracy {scores['accuracy']:.4f}  (n={scores['n']}, float32)")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit a run folder's temperature on PublicTest and write its calibration.json."""
    from .data import DataError, load_data, no_data_found, resolve_data_path

    if not Path(args.run).is_dir():
        raise FileNotFoundError(2, "no such run folder", args.run)
    if not Path(args.run, "model.keras").is_file():
        raise FileNotFoundError(2, "no model.keras in this run folder", args.run)
    if resolve_data_path(args.data) is None:
        raise DataError([f"calibration needs FER2013's PublicTest and PrivateTest: {no_data_found(args.data)}"])
    import_keras_quietly()
    from .calibration import calibrate_run
    from .predict import load_fer_model

    load_fer_model(Path(args.run, "model.keras"), calibrated=False)  # InputError naming the file if not one of ours
    report = calibrate_run(args.run, load_data(args.data, seed=args.seed, quiet=True))
    print(f"{Path(args.run) / 'calibration.json'}: temperature {report['temperature']:.3f}; on PrivateTest, NLL "
          f"{report['nll_before']:.4f} -> {report['nll_after']:.4f}, ECE {report['ece_before']:.4f} -> "
          f"{report['ece_after']:.4f}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the notebook sequence with papermill, once its arguments are checked (before any notebook runs).

    An unknown -p NAME is a usage error (exit 2); a --data or --reuse path that does not exist a known error (exit 2).
    Any other ValueError from the pipeline is a bug, not the user's: it shows its traceback.
    """
    from .data import SYNTHETIC, DataError
    from .pipeline import default_run, notebook_parameters, run_pipeline, unknown_parameters

    extra = dict(args.param or [])
    unknown = unknown_parameters(extra)
    if unknown:
        print(f"error: unknown notebook parameter(s) {', '.join(unknown)}: no notebook declares them (the parameters "
              f"are: {', '.join(sorted(set().union(*notebook_parameters().values())))})", file=sys.stderr)
        return 2
    if args.data not in (None, "", SYNTHETIC) and not Path(args.data).expanduser().exists():
        raise DataError([f"{args.data}: path does not exist (--data)"])
    if args.reuse and not Path(args.reuse).is_dir():
        raise FileNotFoundError(2, "no such folder of finished runs (--reuse)", args.reuse)
    profile, reuse = args.profile, args.reuse
    if profile is None:
        profile, published = default_run(args.data)
        if published is not None:
            reuse = reuse or str(published)
            print(f"FER2013 found: the course on the real data with the published models ({published}, profile "
                  f"{profile}; notebooks 02 and 04 reuse them, nothing is trained). `--profile smoke` runs the small "
                  "smoke run instead.", flush=True)
    return run_pipeline(profile=profile, data=args.data, out=args.out, extra=extra, kernel=args.kernel, reuse=reuse)


def cmd_publish(args: argparse.Namespace) -> int:
    """Publish two finished run folders (baseline/, se/) with figures, notebook 05 and README.md."""
    from .pipeline import notebooks
    from .publish import publish

    if not Path(args.runs).is_dir():
        raise FileNotFoundError(2, "no such folder of finished runs", args.runs)
    notebooks()  # before the slow import: an install without the repository has no notebooks to publish
    import_keras_quietly()  # the models are rewritten here, without their optimizer state
    return publish(args.runs, out=args.out, data=args.data, kernel=args.kernel, targets=args.targets)


def cmd_predict(args: argparse.Namespace) -> int:
    """Find the faces in photos, folders and videos, and predict each one's emotion."""
    from .media import InputError, expand_inputs
    from .predict import load_fer_model, predict_paths, published_model

    files, problems = expand_inputs(args.inputs)
    if not files:  # say so before the slow model load
        print("\n".join(problems + ["error: no photo or video to process"]), file=sys.stderr)
        return 1
    try:  # before the slow import: an install without the repository has no published model
        model_path = args.model or published_model()
    except FileNotFoundError as err:
        raise FileNotFoundError(err.errno, f"{err.strerror}; or name a model: --model PATH", err.filename) from None
    import_keras_quietly()  # TensorFlow's start-up chatter would bury the problems
    try:
        model = load_fer_model(model_path)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    def show(row: dict) -> None:
        if row["status"] != "ok":
            return  # already reported on stderr, one line per file or frame
        where = row["file"] + (f" frame {row['frame']} ({row['time_s']:.2f} s)" if row["frame"] is not None else "")
        print(f"{where}: face {row['face']} at x={row['x']} y={row['y']} {row['w']}x{row['h']}: "
              f"{row['emotion']} {row['confidence']:.0%}", flush=True)

    summary = predict_paths(args.inputs, model, args.out, every=args.every, margin=args.margin,
                            on_row=None if args.json else show)
    if args.json:
        print(json.dumps(summary.rows, indent=1))
    print(f"{summary.faces} face(s) in {summary.read} of {summary.files} file(s) read"
          + (f" ({summary.frames} video frames)" if summary.frames else "")
          + f"; {len(summary.no_face)} without a face; {len(summary.problems)} problem(s); "
          f"{summary.seconds:.1f} s. CSV: {summary.csv}"
          + (f"; annotated photos in {Path(args.out)}" if summary.annotated else ""),
          file=sys.stderr if args.json else sys.stdout)
    return summary.exit_status

