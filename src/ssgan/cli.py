"""The `ssgan` command: parse -> Config -> call. No training logic lives here.

Every config field is settable as a dotted option (`--optim.lr=3e-4` or `--optim.lr 3e-4`); the
most used ones also have short aliases (`--labels 100`, `--epochs 5`). Unknown options fail with
the nearest valid ones.
"""
from __future__ import annotations

import argparse
import difflib
import sys
import time
from pathlib import Path

from . import config as C
from .errors import ConfigError, SsganError

# Short aliases of the most used config keys: (flag, key, metavar).
ALIASES = [
    ("--dataset", "data.dataset", "NAME"), ("--data", "data.dataset", "SOURCE"),
    ("--data-root", "data.root", "DIR"), ("--image-size", "data.image_size", "PX"),
    ("--channels", "data.channels", "C"), ("--labels", "data.labels", "N"),
    ("--labels-per-class", "data.labels_per_class", "N"), ("--labeled-rate", "data.labeled_rate", "R"),
    ("--split-seed", "data.split_seed", "S"), ("--val-size", "data.val_size", "N"),
    ("--method", "method.name", "NAME"), ("--net", "model.net", "NAME"), ("--width", "model.width", "W"),
    ("--epochs", "train.epochs", "E"), ("--batch-size", "train.batch_size", "B"), ("--seed", "train.seed", "S"),
    ("--ema", "train.ema", "DECAY"), ("--amp", "train.amp", "MODE"), ("--device", "train.device", "DEV"),
    ("--lr", "optim.lr", "LR"), ("--max-steps", "train.max_steps", "N"),
]


def _config_epilog() -> str:
    lines = ["every config key (set with --KEY=VALUE; YAML files hold the same keys by section):"]
    for key, default, help_ in C.help_lines():
        lines.append(f"  --{key} (default {default})\n      {help_}")
    return "\n".join(lines)


def parse_overrides(rest: list[str]) -> dict[str, str]:
    """Dotted options left over by argparse: --a.b=v or --a.b v."""
    out, i = {}, 0
    valid = [f"--{k}" for k in C.all_keys()] + [a[0] for a in ALIASES]
    while i < len(rest):
        arg = rest[i]
        if not arg.startswith("--") or "." not in arg.split("=")[0]:
            near = difflib.get_close_matches(arg.split("=")[0], valid, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(near)}?" if near else "; see --help"
            raise ConfigError(f"unknown option '{arg}'{hint}")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(rest):
                raise ConfigError(f"option --{key} needs a value")
            value, i = rest[i + 1], i + 1
        C.coerce(key, value)  # unknown keys and bad values fail here, naming the key
        out[key] = value
        i += 1
    return out


def add_config_args(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    p.add_argument("-c", "--config", action="append", default=[], metavar="YAML",
                   help="YAML file of config changes (repeatable; later files win)")
    for flag, key, metavar in ALIASES:
        if flag in skip:
            continue
        p.add_argument(flag, dest=f"alias:{key}", metavar=metavar, default=None, help=f"same as --{key}")


def config_from_args(args, rest: list[str], base: C.Config | None = None) -> C.Config:
    overrides = {}
    for flag, key, _ in ALIASES:
        value = getattr(args, f"alias:{key}", None)
        if value is not None:
            overrides[key] = value
    overrides.update(parse_overrides(rest))
    if getattr(args, "no_report", False):
        overrides["train.report"] = False
    if base is None:
        return C.build(args.config, overrides)
    cfg = base
    for path in args.config:
        C.apply(cfg, C.load_yaml(path), source=path)
    C.apply(cfg, overrides, source="command line")
    C.validate(cfg)
    return cfg


# ------------------------------------------------------------------------------------------ commands
def cmd_train(args, rest) -> int:
    from .training.loop import train
    from .training.run_folder import load_config, new_run_dir
    if args.resume:
        run_dir = Path(args.resume)
        cfg = config_from_args(args, rest, base=load_config(run_dir))
        summary = train(cfg, run_dir, resume=True)
    else:
        cfg = config_from_args(args, rest)
        run_dir = Path(args.run_dir) if args.run_dir else new_run_dir(cfg)
        if (run_dir / "checkpoints" / "last.pt").exists():
            raise ConfigError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or pick a new "
                             "--run-dir")
        summary = train(cfg, run_dir)
    acc = summary.get("test_acc")
    if acc is not None:
        print(f"final test accuracy {acc:.4f} ({summary['test_errors']} errors) after {summary['epochs']} epochs; "
              f"run folder {run_dir}")
    if "best_val" in summary:
        b = summary["best_val"]
        print(f"best validation epoch {b['epoch']}: val acc {b['val_acc']:.4f}, test acc {b['test_acc']:.4f}")
    return 0


def cmd_evaluate(args, rest) -> int:
    from .evaluate import evaluate_checkpoint
    result = evaluate_checkpoint(args.checkpoint, which=args.which, use_ema=not args.no_ema,
                                 data_root=args.data_root, out=args.output, device=args.device)
    print(f"test accuracy {result['accuracy']:.4f} ({result['errors']} errors of {result['n']})")
    print("per-class accuracy: " + " ".join(f"{c}:{a:.3f}" for c, a in
                                            zip(result["classes"], result["per_class_accuracy"])))
    print(f"wrote {result['json']} and {result['png']}")
    return 0


def cmd_sample(args, rest) -> int:
    from .samples import sample_checkpoint
    sample_checkpoint(args.checkpoint, args.n, args.output, args.seed, args.which)
    print(f"wrote {args.n} samples to {args.output}")
    return 0


def cmd_bench(args, rest) -> int:
    from .bench import parse_int_list, run_grid, write_results
    base = config_from_args(args, rest)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    labels = parse_int_list(args.labels, "--labels")
    seeds = parse_int_list(args.seeds, "--seeds")
    out = Path(args.out)
    rows = run_grid(base, methods, labels, seeds, out, jobs=args.jobs)
    budget = (f"{base.train.epochs} epochs per run" if base.train.epochs else "the default budget of 6,000 steps per run") + (f", {base.train.max_steps} steps per epoch"
                                                      if base.train.max_steps else "")
    write_results(rows, out, {"budget": budget, "dataset": base.data.dataset, "config": base.to_dict(), "methods": methods,
                              "labels": labels, "seeds": seeds})
    print((out / "results.md").read_text(), end="")
    print(f"wrote {out / 'results.csv'}, {out / 'results.json'}, {out / 'results.md'}")
    return 0


def cmd_report(args, rest) -> int:
    from .report import write_report
    t0 = time.time()
    path = write_report(args.path, args.output)
    print(f"wrote {path} ({path.stat().st_size:,} bytes in {time.time() - t0:.1f} s)")
    return 0


def cmd_predict(args, rest) -> int:
    from .predict import predict
    rows = predict(args.checkpoint, args.paths, args.output, args.batch_size, args.device)
    if args.output:
        print(f"wrote {len(rows)} predictions to {args.output}")
    return 0


def cmd_suggest(args, rest) -> int:
    from .predict import suggest
    rows = suggest(args.checkpoint, [args.path], args.n, args.output, args.copy_to, args.batch_size, args.device)
    if args.output:
        print(f"wrote the {len(rows)} least certain images to {args.output}")
    if args.copy_to:
        print(f"copied them to {args.copy_to}")
    return 0


def cmd_export(args, rest) -> int:
    from .export import export
    meta = export(args.checkpoint, args.format, args.output)
    print(f"wrote {args.format} classifier to {args.output}: input {meta['input']}, {len(meta['classes'])} classes")
    print(f"preprocessing: {meta['preprocessing']}")
    return 0


# ---------------------------------------------------------------------------------------------- main
class NoAbbrevParser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "allow_abbrev": False})


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssgan", allow_abbrev=False, description="Semi-supervised image classification with GANs.",
        epilog="`ssgan COMMAND --help` describes each command; `ssgan train --help` lists every config key.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    debug_help = "on an error, show the full traceback instead of one line"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    # No abbreviations: `--epoch 2` must fail, not quietly mean --epochs.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=NoAbbrevParser)
    sub.required = True

    p = sub.add_parser("train", help="train a run (or resume one)", epilog=_config_epilog(),
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train a semi-supervised GAN classifier. Config: defaults < YAML files < options.")
    add_config_args(p)
    p.add_argument("--run-dir", metavar="DIR", help="run folder (default: a new folder under --train.out)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--no-report", action="store_true", help="write no report.html at the end (same as "
                                                              "--train.report=false)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="the paper protocol: methods x label counts x seeds on identical splits",
                       epilog=_config_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Run every combination (split seed = seed), skip finished runs, resume "
                                   "unfinished ones, and write results.csv/json/md.")
    add_config_args(p, skip=("--labels", "--method", "--seed", "--split-seed"))
    p.add_argument("--methods", default="fm,kplus1,supervised", help="comma-separated methods")
    p.add_argument("--labels", default="100", help="label counts, e.g. 20,50,100,200")
    p.add_argument("--seeds", default="0-2", help="seeds (split seed = training seed), e.g. 0-4 or 0,3")
    p.add_argument("--out", default="runs/bench", help="folder for the runs and the results files")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="runs at once, each in its own process pinned to its share of the CPUs with as many "
                        "threads (more runs than CPUs: one thread each, unpinned; --train.threads overrides); "
                        "each run's log goes to OUT/runs/NAME.log")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix on the test set")
    p.add_argument("checkpoint", metavar="CKPT_OR_RUN_DIR")
    p.add_argument("--which", default="last", choices=["last", "best"], help="checkpoint of a run folder")
    p.add_argument("--no-ema", action="store_true", help="evaluate D itself, not its moving average")
    p.add_argument("--data-root", default=None, metavar="DIR", help="where the dataset lies, if not where it was")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:K or mps")
    p.add_argument("-o", "--output", default=None, metavar="JSON",
                   help="report path (default: RUN_DIR/evaluation.json, with a confusion PNG beside it)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sample", help="a grid of generated images")
    p.add_argument("checkpoint", metavar="CKPT_OR_RUN_DIR")
    p.add_argument("-n", type=positive_int, default=64, help="number of images")
    p.add_argument("-o", "--output", default="samples.png", metavar="PNG")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--which", default="last", choices=["last", "best"])
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("report", help="one self-contained HTML page for a run folder or a bench folder",
                       description="A run's summary, config changes, curves, sample grids, confusion matrix and "
                                   "most confidently wrong test images; for a bench folder the method x labels "
                                   "table, every run's numbers and curves, linked to each run's own page.")
    p.add_argument("path", metavar="RUN_OR_BENCH_DIR")
    p.add_argument("-o", "--output", default=None, metavar="HTML", help="default: PATH/report.html")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("predict", help="class probabilities of image files, as CSV")
    p.add_argument("checkpoint", metavar="CKPT_OR_RUN_DIR")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    p.add_argument("-o", "--output", default=None, metavar="CSV", help="CSV file (default: stdout)")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("suggest", help="the images the classifier is least sure of: what to label next")
    p.add_argument("checkpoint", metavar="CKPT_OR_RUN_DIR")
    p.add_argument("path", metavar="PATH", help="folder of unlabeled images")
    p.add_argument("-n", type=positive_int, default=50, help="how many images to suggest")
    p.add_argument("-o", "--output", default=None, metavar="CSV", help="CSV file (default: stdout)")
    p.add_argument("--copy-to", default=None, metavar="DIR", help="copy the suggested images here, ranked")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_suggest)

    p = sub.add_parser("export", help="the classifier alone as ONNX or TorchScript, preprocessing in metadata")
    p.add_argument("checkpoint", metavar="CKPT_OR_RUN_DIR")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.set_defaults(func=cmd_export)
    for p in sub.choices.values():  # `ssgan train --debug` as well as `ssgan --debug train`
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        if rest and args.command not in ("train", "bench"):
            raise ConfigError(f"unknown option(s) for '{args.command}': {' '.join(rest)}")
        return args.func(args, rest)
    except SsganError as e:  # a user's error: one clean line; anything else is a bug and keeps its traceback
        if args.debug:
            raise
        print(f"ssgan: {'' if e.exit_code == 130 else 'error: '}{e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
