"""``harness train``: one network from flags (every :class:`RunConfig`
field is one), its progress bar and its final figures."""
from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

from .config import HELP, RunConfig, check_exclusive, coerce
from .errors import ConfigError
from .status import parse


def _flag(name):
    return "--" + name.replace("_", "-")


def _parse_flag_value(key, text):
    """Turn a flag's text into a RunConfig value, with the flag named in errors."""
    kind = {f.name: f.type for f in fields(RunConfig)}[key]
    where = f"flag {_flag(key)}"
    try:
        if kind == "tuple[int, ...]":
            value = [int(part) for part in text.replace("-", ",").split(",") if part.strip()]
        elif kind == "int":
            value = int(text)
        elif kind == "float":
            value = float(text)
        elif kind == "str | float":
            value = text if text == "test" else float(text)
        else:
            value = text
    except ValueError:
        raise ConfigError(f"{where}: cannot read {text!r} as {kind.replace('tuple[int, ...]', 'a layer list like 784,10,10')}") from None
    return coerce(key, value, where)


def add_parser(sub):
    p = sub.add_parser("train", help="train one network from flags",
                       description="Train one network and write config.json, metrics.csv and params.npz.")
    defaults = RunConfig()
    for f in fields(RunConfig):
        default = getattr(defaults, f.name)
        if f.type == "bool":
            p.add_argument(_flag(f.name), action="store_true", help=f"{HELP[f.name]} (default: off)")
        else:
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            p.add_argument(_flag(f.name), metavar=f.name.upper(), help=f"{HELP[f.name]} (default: {shown!s})")
    p.add_argument("--out", metavar="DIR", help="run folder (default: results/train/<run_id>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(args):
    from tqdm import tqdm

    from . import memory
    from .data import describe_rows
    from .store import refuse_links, writable_folder
    from .train import prepare, run, total_iterations

    values = {}
    for f in fields(RunConfig):
        given = getattr(args, f.name)
        if f.type == "bool":
            if given:
                values[f.name] = True
        elif given is not None:
            values[f.name] = _parse_flag_value(f.name, given)
    try:
        check_exclusive(values)
        cfg = RunConfig(**values)
    except ConfigError as e:
        raise ConfigError(f"flags: {e}") from None
    source, split = prepare(cfg)
    n_rows = sum(0 if y is None else len(y) for y in (split.y_train, split.y_val, split.y_test))
    too_big = memory.refusal(cfg, len(split.y_train), n_rows, "flags")
    if too_big:
        raise ConfigError(too_big)
    out = Path(args.out) if args.out else Path("results") / "train" / cfg.run_id(source.fingerprint)
    refuse_links(out, depth=1)
    writable_folder(out, "run folder")
    if not args.quiet:
        print(f"data: {describe_rows(source, cfg.train_size, cfg.validation)}", file=sys.stderr)
    bar = tqdm(total=total_iterations(cfg, len(split.y_train)), disable=args.quiet, unit="it", desc=cfg.layers_str, file=sys.stderr)
    last_val = [None]

    def on_row(row):
        if row["val_acc"] is not None:
            last_val[0] = row["val_acc"]
        bar.update(1)
        post = {"loss": f"{row['train_loss']:.4f}", "acc": f"{100 * row['train_acc']:.2f}%"}
        if last_val[0] is not None:
            post["val"] = f"{100 * last_val[0]:.2f}%"
        bar.set_postfix(post, refresh=False)

    try:
        status = run(cfg, out, source=source, on_row=on_row)
    finally:
        bar.close()
    line = (f"{status['status']}: {status['iterations_run']} iterations, "
            f"train acc {100 * status['final_train_acc']:.2f}%")
    if status["final_val_acc"] is not None:
        line += f", val acc {100 * status['final_val_acc']:.2f}%"
    print(f"{line}, {status['total_seconds']:.1f} s -> {out}")
    if parse(status["status"]).is_failure():
        print(f"failed: {status['reason']} (traceback in {out / 'error.txt'})", file=sys.stderr)
        return 1
    return 0
