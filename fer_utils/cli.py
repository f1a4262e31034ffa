"""Command line: `python -m fer_utils {data check, train, evaluate, calibrate, run, publish, predict}`.

The contract other tools rely on; each command prints plain text (or JSON) and exits non-zero on failure. Every
known error (a missing or unusable file, bad data, a model that is not one of ours, a run folder started with other
settings) ends a command with one line, `error: ...`, naming the file or setting, and exit status 2; `data check`
exits 1 when it finds problems, `predict` 1 when an input or the model cannot be used, `train` 130 when stopped by a
signal. Anything else is a bug, and shows its traceback.

The options and that contract are here; what each command does is in fer_utils.commands.
"""

from __future__ import annotations

import argparse
import sys

from .commands import cmd_calibrate, cmd_data_check, cmd_evaluate, cmd_predict, cmd_publish, cmd_run, cmd_train
from .config import DENSE_DROPOUT, DENSE_UNITS, FILTERS, MAX_EPOCHS, MODELS, PRECISION, PRECISIONS, PROTOCOL, PROTOCOLS
from .config import (AUGMENTATIONS, FACE_MARGIN, LABEL_SMOOTHING, PUBLISH_TARGETS, PUBLISHED_MODEL, SCHEDULE, SCHEDULES,
                     SPLITS)
from .config import ATTENTIONS, PROFILES, PUBLISHED_DIR, REPO_ROOT, WEIGHT_DECAY


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


KNOWN_ERRORS = {"fer_utils.data": "DataError", "fer_utils.media": "InputError", "fer_utils.runfolder": "RunFolderError"}
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


def _positive(text: str) -> int:
    """'3' -> 3; argparse turns the ValueError into a one-line usage error."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def profile_train_options(profile: str) -> dict:
    """A `run` profile's settings as defaults of `train`'s options (per_class becomes --subset).

    Args:
        profile: a name in config.PROFILES.

    Returns:
        {option dest: value}, for `set_defaults` of the train parser (options given explicitly still win).
    """
    return {"subset" if name == "per_class" else name: tuple(value) if isinstance(value, list) else value
            for name, value in PROFILES[profile].items()}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all commands (`parse_args` also gives train a --profile's settings as defaults)."""
    return _parsers()[0]


def _parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The argument parser for all commands, and its train parser (whose defaults a --profile replaces)."""
    parser = argparse.ArgumentParser(prog="python -m fer_utils", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_data_parser(sub)
    train = _add_train_parser(sub)
    _add_evaluate_parser(sub)
    _add_calibrate_parser(sub)
    _add_run_parser(sub)
    _add_predict_parser(sub)
    _add_publish_parser(sub)
    return parser, train


def _add_data_parser(sub) -> None:
    """`data check`: load, validate and count the data."""
    data = sub.add_parser("data", help="inspect the data").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="load, validate and count the data")
    check.add_argument("path", nargs="?", default=None)
    check.add_argument("--json", action="store_true", help="print {source, counts, problems} as JSON")
    check.set_defaults(func=cmd_data_check)


def _add_train_parser(sub) -> argparse.ArgumentParser:
    """`train`: the paper's recipe and every option beyond it; returns its parser (a --profile sets its defaults)."""
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
    tr.add_argument("--attention", choices=ATTENTIONS, default=None,
                    help="attention in each block beyond the paper's (notebook 09): se (the paper's SE-CNN), se_every, "
                         "eca, cbam or spatial; default: none for baseline, se for se")
    tr.add_argument("--se-ratio", type=_positive, default=None, metavar="R",
                    help="reduction ratio r of the SE or CBAM blocks (default config.SE_RATIO; --model se only)")
    tr.add_argument("--fresh", action="store_true",
                    help="discard an interrupted run in --out and start afresh (without it, an interrupted run "
                    "resumes, if started with the same settings and data, and is refused otherwise)")
    tr.set_defaults(func=cmd_train)
    return tr


def _add_evaluate_parser(sub) -> None:
    """`evaluate`: a saved model's loss and accuracy on one split."""
    ev = sub.add_parser("evaluate", help="recompute loss and accuracy of a saved model")
    ev.add_argument("model", help="a .keras file")
    _add_data_args(ev)
    ev.add_argument("--split", choices=(*SPLITS, "test_all"), default="test")
    ev.add_argument("--tta", action="store_true", help="average each image's prediction with its mirror image's")
    ev.set_defaults(func=cmd_evaluate)


def _add_calibrate_parser(sub) -> None:
    """`calibrate`: a run folder's temperature."""
    cal = sub.add_parser("calibrate", help="fit a run folder's temperature on PublicTest (calibration.json, used by "
                         "predict)")
    cal.add_argument("run", help="a run folder holding model.keras")
    cal.add_argument("--data", default=None, help="FER2013: archive.zip, extracted folder or fer2013.csv "
                     "(default: $FER2013_PATH, then data/)")
    cal.add_argument("--seed", type=int, default=0)
    cal.set_defaults(func=cmd_calibrate)


def _add_run_parser(sub) -> None:
    """`run`: the notebook sequence."""
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


def _add_predict_parser(sub) -> None:
    """`predict`: the emotions of the faces in photos and videos."""
    pr = sub.add_parser("predict", help="find the faces in photos or videos and predict their emotions",
                        description="Find the faces (OpenCV's Haar cascade), crop each as FER2013 was made (48x48 "
                        "grayscale) and classify it. Writes OUT/predictions.csv (one row per face; 'no face' and "
                        "'error' rows too) and OUT/<name>_faces.png per photo. Exit 0 when every input was read and "
                        "a face was found; 1 when an input could not be read, no face was found, or the model is "
                        "not one of ours.")
    pr.add_argument("inputs", nargs="+", metavar="INPUT", help="a photo, a folder of photos or a video file")
    pr.add_argument("--model", default=None, help="a .keras model of this course (default "
                    f"{PUBLISHED_MODEL.relative_to(REPO_ROOT)})")
    pr.add_argument("--out", default="runs/predict", help="output folder (default runs/predict)")
    pr.add_argument("--json", action="store_true", help="print the per-face rows as JSON on standard output")
    pr.add_argument("--every", type=_positive, default=1, metavar="N", help="in videos, analyse every N-th frame")
    pr.add_argument("--margin", type=float, default=FACE_MARGIN,
                    help=f"crop margin per side, fraction of the face box (default {FACE_MARGIN}: FER2013's framing)")
    pr.set_defaults(func=cmd_predict)


def _add_publish_parser(sub) -> None:
    """`publish`: two finished runs as a reports folder."""
    pub = sub.add_parser("publish", help="publish two finished runs (baseline/, se/) as a reports folder")
    pub.add_argument("runs", help="folder holding the finished baseline/ and se/ run folders")
    pub.add_argument("--out", default=PUBLISHED_DIR.name, help=f"where to publish (default: {PUBLISHED_DIR.name})")
    pub.add_argument("--data", default=None, help="the data the runs were trained on, named in the README's commands")
    pub.add_argument("--kernel", default=None, help="Jupyter kernel name (default: this Python)")
    pub.add_argument("--targets", choices=PUBLISH_TARGETS, default=None,
                     help="the targets README judges the runs against (default: robust for runs trained with the "
                          "robust profile, else paper: Table 1's)")
    pub.set_defaults(func=cmd_publish)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse a command line; `train --profile NAME` takes the profile's settings where no option is given.

    Args:
        argv: the arguments after `python -m fer_utils`.

    Returns:
        The parsed arguments, with `argv` kept (for the command to record).

    Raises:
        ValueError when the profile has a setting that train has no option for (config.PROFILES is wrong).
    """
    parser, train = _parsers()
    args = parser.parse_args(argv)
    if args.command == "train" and args.profile:  # again, the profile's settings now the train options' defaults
        defaults = profile_train_options(args.profile)
        unknown = set(defaults) - set(vars(args))
        if unknown:
            raise ValueError(f"train has no option for the profile setting(s) {', '.join(sorted(unknown))}")
        train.set_defaults(**defaults)
        args = parser.parse_args(argv)
    if args.command == "train" and args.se_ratio and args.model == "baseline":
        train.error(f"--se-ratio {args.se_ratio} needs --model se: the baseline's blocks keep config.SE_RATIO")
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
