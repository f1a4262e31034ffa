"""Command line: `python -m fer_utils {data check, train, evaluate, run}`.

The contract other tools rely on; each command prints plain text (or JSON) and exits non-zero on failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import MAX_EPOCHS, PRECISIONS, PROTOCOLS, SCHEDULES, SPLITS


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="archive.zip, extracted folder, fer2013.csv or 'synthetic' "
                   "(default: $FER2013_PATH, then data/, then the synthetic set)")
    p.add_argument("--subset", type=int, default=None, metavar="N", help="at most N images per class and split")
    p.add_argument("--seed", type=int, default=0)


def cmd_data_check(args: argparse.Namespace) -> int:
    """Load and validate the data; print counts and every problem found."""
    from .data import DataError, format_counts, load_data

    try:
        data = load_data(args.path, synthetic_fallback=True)
        report = {"source": data.source, "synthetic": data.synthetic, "counts": data.counts(), "problems": []}
    except DataError as err:
        report = {"source": str(args.path), "synthetic": False, "counts": None, "problems": err.problems}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"source: {report['source']}" + ("  (SYNTHETIC stand-in, not FER2013)" if report["synthetic"] else ""))
        if report["counts"]:
            print(format_counts(report["counts"]))
        print(f"{len(report['problems'])} problem(s)" + "".join(f"\n  {p}" for p in report["problems"]))
    return 1 if report["problems"] else 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train one model and write its run folder."""
    from .data import load_data
    from .training import train

    data = load_data(args.data, per_class=args.subset, seed=args.seed)
    out = Path(args.out or f"runs/{args.model}")
    metrics = train(args.model, data, out, epochs=args.epochs, seed=args.seed, protocol=args.protocol,
                    precision=args.precision, schedule=args.schedule, verbose=1 if sys.stdout.isatty() else 2,
                    dense_dropout=args.dense_dropout, flip=args.flip, batch_norm=args.batch_norm)
    print(f"run folder: {out}")
    for split in (*SPLITS, "test_all"):
        print(f"{split:>9}: loss {metrics[f'{split}_loss']:.4f}  accuracy {metrics[f'{split}_accuracy']:.4f}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Recompute a saved model's loss and accuracy on one split."""
    import keras

    from .data import load_data
    from .evaluation import evaluate_split

    model = keras.models.load_model(args.model)
    data = load_data(args.data, per_class=args.subset, seed=args.seed)
    scores = evaluate_split(model, data, args.split, args.tta)
    label = f"{args.split} (flip TTA)" if args.tta else args.split
    print(f"{label}: loss {scores['loss']:.4f}  accuracy {scores['accuracy']:.4f}  (n={scores['n']})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the notebook sequence with papermill."""
    from .pipeline import run_pipeline

    return run_pipeline(profile=args.profile, data=args.data, out=args.out, extra=dict(args.param or []),
                        kernel=args.kernel, reuse=args.reuse)


def cmd_publish(args: argparse.Namespace) -> int:
    """Publish two finished run folders (baseline/, se/) with figures, notebook 05 and README.md."""
    from .pipeline import publish

    return publish(args.runs, out=args.out, data=args.data, kernel=args.kernel)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all commands."""
    from .pipeline import PROFILES

    parser = argparse.ArgumentParser(prog="python -m fer_utils", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect the data").add_subparsers(dest="data_command", required=True)
    check = data.add_parser("check", help="load, validate and count the data")
    check.add_argument("path", nargs="?", default=None)
    check.add_argument("--json", action="store_true", help="print {source, counts, problems} as JSON")
    check.set_defaults(func=cmd_data_check)

    tr = sub.add_parser("train", help="train a model and write a run folder")
    tr.add_argument("--model", choices=("baseline", "se"), required=True)
    _add_data_args(tr)
    tr.add_argument("--epochs", type=int, default=MAX_EPOCHS)
    tr.add_argument("--out", default=None, help="run folder (default runs/<model>)")
    tr.add_argument("--protocol", choices=sorted(PROTOCOLS), default="clean",
                    help="validate on PublicTest (clean) or on all 7,178 test images (paper)")
    tr.add_argument("--precision", choices=PRECISIONS, default="auto",
                    help="auto: bf16 where the CPU or GPU computes it natively, else float32")
    tr.add_argument("--schedule", choices=SCHEDULES, default="plateau",
                    help="plateau: the paper's ReduceLROnPlateau; cosine: warm-up then cosine decay over --epochs")
    tr.add_argument("--dense-dropout", type=float, default=0.5, metavar="RATE",
                    help="dropout after the dense layer (default 0.5; 0 turns it off)")
    tr.add_argument("--flip", action="store_true", help="add random horizontal flips (beyond the paper's shifts)")
    tr.add_argument("--batch-norm", action="store_true",
                    help="batch norm after each conv, before its ReLU (the paper describes none)")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="recompute loss and accuracy of a saved model")
    ev.add_argument("model", help="a .keras file")
    _add_data_args(ev)
    ev.add_argument("--split", choices=(*SPLITS, "test_all"), default="test")
    ev.add_argument("--tta", action="store_true", help="average each image's prediction with its mirror image's")
    ev.set_defaults(func=cmd_evaluate)

    run = sub.add_parser("run", help="run the notebook sequence with papermill")
    run.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    run.add_argument("--data", default=None, help="as for train; 'synthetic' forces the synthetic stand-in")
    run.add_argument("--out", default=None, help="run folder (default runs/<profile>)")
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="a notebook parameter, passed to every notebook that has it")
    run.add_argument("--kernel", default=None, help="Jupyter kernel name (default: this Python)")
    run.add_argument("--reuse", default=None, metavar="DIR",
                     help="a folder of finished baseline/ and se/ runs (e.g. reports) to reuse instead of training")
    run.set_defaults(func=cmd_run)

    pub = sub.add_parser("publish", help="publish two finished runs (baseline/, se/) as a reports folder")
    pub.add_argument("runs", help="folder holding the finished baseline/ and se/ run folders")
    pub.add_argument("--out", default="reports", help="where to publish (default: reports)")
    pub.add_argument("--data", default=None, help="the data the runs were trained on, named in the README's commands")
    pub.add_argument("--kernel", default=None, help="Jupyter kernel name (default: this Python)")
    pub.set_defaults(func=cmd_publish)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse `argv` and run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
