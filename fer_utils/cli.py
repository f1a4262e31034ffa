"""Command line: `python -m fer_utils {data check, train, evaluate, calibrate, run, publish, predict}`.

The contract other tools rely on; each command prints plain text (or JSON) and exits non-zero on failure. Every
known error (a missing or unusable file, bad data, a model that is not one of ours, a run folder started with other
settings) ends a command with one line, `error: ...`, naming the file or setting, and exit status 2; `data check`
exits 1 when it finds problems, `predict` 1 when an input or the model cannot be used, `train` 130 when stopped by a
signal. Anything else is a bug, and shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from .config import DENSE_DROPOUT, DENSE_UNITS, FILTERS, MAX_EPOCHS, MODELS, PRECISION, PRECISIONS, PROTOCOL, PROTOCOLS
from .config import AUGMENTATIONS, FACE_MARGIN, LABEL_SMOOTHING, PUBLISHED_MODEL, SCHEDULE, SCHEDULES, SPLITS
from .config import WEIGHT_DECAY


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="archive.zip, extracted folder, fer2013.csv or 'synthetic' "
                   "(default: $FER2013_PATH, then data/, then the synthetic set)")
    p.add_argument("--subset", type=int, default=None, metavar="N", help="at most N images per class and split")
    p.add_argument("--seed", type=int, default=0)


def _widths(text: str) -> tuple[int, ...]:
    """'64,128,256' -> (64, 128, 256); argparse turns the ValueError into a one-line usage error."""
    widths = tuple(int(w) for w in text.split(","))
    if len(widths) != 3 or min(widths) < 1:
        raise ValueError(text)
    return widths


def _augmentations(text: str) -> tuple[str, ...]:
    """'degrade,photometric' -> ('photometric', 'degrade') (fer_utils.augment's order); unknown names: usage error."""
    from .augment import canonical

    try:
        return canonical(name.strip() for name in text.split(",") if name.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


KNOWN_ERRORS = {"fer_utils.data": "DataError", "fer_utils.faces": "InputError", "fer_utils.runfolder": "RunFolderError"}
"""The package's errors for a bad input or setting, by module: each message names the file or setting."""
OS_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def known_errors() -> tuple[type[Exception], ...]:
    """The error types that end a command with one line: `KNOWN_ERRORS` of the modules imported (an error of a module
    not imported cannot have been raised, and importing it only to compare would slow every command), `OS_ERRORS`."""
    return OS_ERRORS + tuple(getattr(sys.modules[module], name) for module, name in KNOWN_ERRORS.items()
                             if module in sys.modules)


def error_line(err: Exception) -> str:
    """A known error in one line, naming its file or setting.

    Args:
        err: a `known_errors()` instance.

    Returns:
        A DataError's first problem (with how many more, and how to list them), an OSError's "FILE: reason", else
        the message with its lines joined.
    """
    problems = getattr(err, "problems", None)
    if problems:
        more = len(problems) - 1
        return problems[0] + (f" (and {more} more problem(s): `python -m fer_utils data check PATH` lists them)"
                              if more else "")
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror or err}"
    head, *rest = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    return head + (" " + ", ".join(rest) if rest else "")


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
    from .training import TrainingInterrupted, train

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
                 label_smoothing=args.label_smoothing, weight_decay=args.weight_decay, fresh=args.fresh)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Recompute a saved model's loss and accuracy on one split (the model as trained: no calibration)."""
    import_keras_quietly()
    from .evaluation import evaluate_split
    from .faces import load_fer_model

    model = load_fer_model(args.model, calibrated=False)  # InputError naming the file when it is not one of ours
    data = load_data_once(args.data, per_class=args.subset, seed=args.seed)
    scores = evaluate_split(model, data, args.split, args.tta)
    label = f"{args.split} (flip TTA)" if args.tta else args.split
    print(f"{label}: loss {scores['loss']:.4f}  accuracy {scores['accuracy']:.4f}  (n={scores['n']})")
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
    from .faces import load_fer_model

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
    from .pipeline import notebooks, publish

    if not Path(args.runs).is_dir():
        raise FileNotFoundError(2, "no such folder of finished runs", args.runs)
    notebooks()  # before the slow import: an install without the repository has no notebooks to publish
    import_keras_quietly()  # the models are rewritten here, without their optimizer state
    return publish(args.runs, out=args.out, data=args.data, kernel=args.kernel)


def _positive(text: str) -> int:
    """'3' -> 3; argparse turns the ValueError into a one-line usage error."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def cmd_predict(args: argparse.Namespace) -> int:
    """Find the faces in photos, folders and videos, and predict each one's emotion."""
    from .faces import InputError, expand_inputs, load_fer_model, predict_paths, published_model

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


def profile_train_options(profile: str) -> dict:
    """A `run` profile's settings as defaults of `train`'s options (per_class becomes --subset).

    Args:
        profile: a name in config.PROFILES.

    Returns:
        {option dest: value}, for `set_defaults` of the train parser (options given explicitly still win).
    """
    from .config import PROFILES

    return {"subset" if name == "per_class" else name: tuple(value) if isinstance(value, list) else value
            for name, value in PROFILES[profile].items()}


def build_parser(train_defaults: dict | None = None) -> argparse.ArgumentParser:
    """The argument parser for all commands; `train_defaults` replace the train options' defaults (its --profile)."""
    from .pipeline import PROFILES

    parser = argparse.ArgumentParser(prog="python -m fer_utils", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect the data").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="load, validate and count the data")
    check.add_argument("path", nargs="?", default=None)
    check.add_argument("--json", action="store_true", help="print {source, counts, problems} as JSON")
    check.set_defaults(func=cmd_data_check)

    tr = sub.add_parser("train", help="train a model and write a run folder")
    tr.add_argument("--model", choices=tuple(MODELS), required=True)
    tr.add_argument("--profile", choices=sorted(PROFILES), default=None,
                    help="train with a `run` profile's settings, e.g. paper or robust (options given too win)")
    _add_data_args(tr)
    tr.add_argument("--epochs", type=int, default=MAX_EPOCHS)
    tr.add_argument("--out", default=None, help="run folder (default runs/<model>)")
    tr.add_argument("--protocol", choices=sorted(PROTOCOLS), default=PROTOCOL,
                    help="validate on PublicTest (clean) or on all 7,178 test images (paper)")
    tr.add_argument("--precision", choices=PRECISIONS, default=PRECISION,
                    help="auto: bf16 where the CPU or GPU computes it natively, float16 on GPUs with fast float16 only "
                    "(T4, V100, P100), else float32")
    tr.add_argument("--schedule", choices=SCHEDULES, default=SCHEDULE,
                    help="plateau: the paper's ReduceLROnPlateau; cosine: warm-up then cosine decay over --epochs")
    tr.add_argument("--dense-dropout", type=float, default=DENSE_DROPOUT, metavar="RATE",
                    help=f"dropout after the dense layer (default {DENSE_DROPOUT:g}; 0 turns it off)")
    tr.add_argument("--flip", action=argparse.BooleanOptionalAction, default=False,
                    help="add random horizontal flips (beyond the paper's shifts)")
    tr.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=False,
                    help="batch norm after each conv, before its ReLU (the paper describes none)")
    tr.add_argument("--filters", type=_widths, default=FILTERS, metavar="N,N,N",
                    help=f"conv filters per block (default {','.join(map(str, FILTERS))}; the paper gives none)")
    tr.add_argument("--dense-units", type=int, default=DENSE_UNITS, metavar="N",
                    help=f"units of the dense layer (default {DENSE_UNITS}; the paper gives none)")
    tr.add_argument("--augment", type=_augmentations, default=(), metavar="NAME,...",
                    help=f"training-only augmentations beyond the paper's shift: some of {','.join(AUGMENTATIONS)} "
                         "(strengths: config.AUGMENT; notebook 08)")
    tr.add_argument("--label-smoothing", type=float, default=LABEL_SMOOTHING, metavar="EPS",
                    help=f"label smoothing of the cross-entropy (default {LABEL_SMOOTHING:g}, the paper's)")
    tr.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY, metavar="WD",
                    help=f"decoupled weight decay: > 0 trains with AdamW (default {WEIGHT_DECAY:g}: the paper's Adam)")
    tr.add_argument("--fresh", action="store_true",
                    help="discard an interrupted run in --out and start afresh (without it, an interrupted run "
                    "resumes, if started with the same settings and data, and is refused otherwise)")
    tr.set_defaults(func=cmd_train)
    unknown = set(train_defaults or {}) - {action.dest for action in tr._actions}
    if unknown:
        raise ValueError(f"train has no option for the profile setting(s) {', '.join(sorted(unknown))}")
    tr.set_defaults(**(train_defaults or {}))

    ev = sub.add_parser("evaluate", help="recompute loss and accuracy of a saved model")
    ev.add_argument("model", help="a .keras file")
    _add_data_args(ev)
    ev.add_argument("--split", choices=(*SPLITS, "test_all"), default="test")
    ev.add_argument("--tta", action="store_true", help="average each image's prediction with its mirror image's")
    ev.set_defaults(func=cmd_evaluate)

    cal = sub.add_parser("calibrate", help="fit a run folder's temperature on PublicTest (calibration.json, used by "
                         "predict)")
    cal.add_argument("run", help="a run folder holding model.keras")
    cal.add_argument("--data", default=None, help="FER2013: archive.zip, extracted folder or fer2013.csv "
                     "(default: $FER2013_PATH, then data/)")
    cal.add_argument("--seed", type=int, default=0)
    cal.set_defaults(func=cmd_calibrate)

    run = sub.add_parser("run", help="run the notebook sequence with papermill")
    run.add_argument("--profile", choices=sorted(PROFILES), default=None,
                     help="the notebooks' parameters (config.PROFILES); default: with FER2013 found, the published "
                     "models on it (paper, reusing reports/), else smoke on the synthetic set")
    run.add_argument("--data", default=None, help="as for train; 'synthetic' forces the synthetic stand-in")
    run.add_argument("--out", default=None, help="run folder (default runs/<profile>)")
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="a notebook parameter, passed to every notebook that has it (a list: 64,128,256); "
                     "repeat for more; `make run PARAMS=\"-p NAME VALUE\"`")
    run.add_argument("--kernel", default=None, help="Jupyter kernel name (default: this Python)")
    run.add_argument("--reuse", default=None, metavar="DIR",
                     help="a folder of finished baseline/ and se/ runs (e.g. reports) to reuse instead of training")
    run.set_defaults(func=cmd_run)

    pr = sub.add_parser("predict", help="find the faces in photos or videos and predict their emotions",
                        description="Find the faces (OpenCV's Haar cascade), crop each as FER2013 was made (48x48 "
                        "grayscale) and classify it. Writes OUT/predictions.csv (one row per face; 'no face' and "
                        "'error' rows too) and OUT/<name>_faces.png per photo. Exit 0 when every input was read and "
                        "a face was found; 1 when an input could not be read, no face was found, or the model is "
                        "not one of ours.")
    pr.add_argument("inputs", nargs="+", metavar="INPUT", help="a photo, a folder of photos or a video file")
    pr.add_argument("--model", default=None, help=f"a .keras model of this course (default {PUBLISHED_MODEL})")
    pr.add_argument("--out", default="runs/predict", help="output folder (default runs/predict)")
    pr.add_argument("--json", action="store_true", help="print the per-face rows as JSON on standard output")
    pr.add_argument("--every", type=_positive, default=1, metavar="N", help="in videos, analyse every N-th frame")
    pr.add_argument("--margin", type=float, default=FACE_MARGIN,
                    help=f"crop margin per side, fraction of the face box (default {FACE_MARGIN}: FER2013's framing)")
    pr.set_defaults(func=cmd_predict)

    pub = sub.add_parser("publish", help="publish two finished runs (baseline/, se/) as a reports folder")
    pub.add_argument("runs", help="folder holding the finished baseline/ and se/ run folders")
    pub.add_argument("--out", default="reports", help="where to publish (default: reports)")
    pub.add_argument("--data", default=None, help="the data the runs were trained on, named in the README's commands")
    pub.add_argument("--kernel", default=None, help="Jupyter kernel name (default: this Python)")
    pub.set_defaults(func=cmd_publish)
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse a command line; `train --profile NAME` takes the profile's settings where no option is given.

    Args:
        argv: the arguments after `python -m fer_utils`.

    Returns:
        The parsed arguments, with `argv` kept (for the command to record).
    """
    args = build_parser().parse_args(argv)
    if args.command == "train" and args.profile:
        args = build_parser(profile_train_options(args.profile)).parse_args(argv)
    args.argv = argv
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse `argv` (default: sys.argv[1:]) and run the command.

    Returns:
        The exit status: the command's; 2 after a known error (`known_errors`), said in one line on stderr.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        if not isinstance(err, known_errors()):
            raise
        print(f"error: {error_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
