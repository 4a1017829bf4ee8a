"""The ``replay`` subcommand's flags and handler (the only place it prints)."""
from __future__ import annotations

import sys

from ..errors import ConfigError


def _ints(flag):
    def parse(text):
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"{flag} {text!r}: give whole numbers separated by commas, like 2,3,4") from None
        if not values:
            raise ConfigError(f"{flag} {text!r}: give at least one number")
        return list(dict.fromkeys(values))
    return parse


def add_parser(sub):
    p = sub.add_parser("replay", help="how reliable is a strategy's answer? replay it on a recorded full grid",
                       description="Simulate successive halving (and [tune]'s selection) on a finished full grid's "
                                   "recorded curves, resampling its seeds, against the full sweep's answer; and "
                                   "check the report's test on identical variants (A/A). Trains nothing. Writes "
                                   "replay.csv, replay.md, replay.html and replay.png.")
    p.add_argument("folder", metavar="results/NAME", help="a finished full-grid sweep (packed or not)")
    p.add_argument("--eta", default="2,3,4", help="halving's eta values, comma-separated (default 2,3,4)")
    p.add_argument("--min-iterations", default="100,200,400",
                   help="first rungs, comma-separated (default 100,200,400)")
    p.add_argument("--seeds-per-config", default="1,2", help="seeds per configuration (default 1,2)")
    p.add_argument("--search-seeds", default="",
                   help="for a tuned sweep: search seeds per trial to replay [tune]'s selection on (e.g. 1,2)")
    p.add_argument("--resamples", type=int, default=1000, help="resamples per setting (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="the resampling seed (default 0)")
    p.add_argument("--target", type=float, default=0.95,
                   help="reliability to reach: P(winner in the full sweep's tie set) (default 0.95)")
    p.add_argument("--race", default="", metavar="MIN,MAX",
                   help="also measure racing with these seed bounds (e.g. 2,10) against the fixed design at MAX "
                        "seeds, on the report's variants (a Racing section)")
    p.add_argument("--race-steps", default="", help="racing's steps, comma-separated (default: MIN)")
    p.add_argument("--race-alphas", default="0.05", help="racing's alpha over the race, comma-separated (default 0.05)")
    p.add_argument("--race-mode", default="permute", choices=("permute", "bootstrap"),
                   help="draw the seeds' order (permute, default) or the seeds with replacement (bootstrap)")
    p.add_argument("--out", metavar="DIR", help="where to write the files (default: the sweep folder)")
    p.set_defaults(func=cmd_replay)


def _progress(done, total, what):
    if sys.stderr.isatty():
        print(f"\rreplay: {done}/{total} {what:<48}", end="" if done < total else "\n", file=sys.stderr, flush=True)


def _races(args):
    """The :class:`harness.racing.Race` settings of the --race flags (none without --race)."""
    if not args.race.strip():
        return []
    from .. import racing

    bounds = _ints("--race")(args.race)
    if len(bounds) != 2:
        raise ConfigError(f"--race {args.race!r}: give the race's minimum and maximum seeds, like 2,10")
    steps = _ints("--race-steps")(args.race_steps) if args.race_steps.strip() else [bounds[0]]
    try:
        alphas = [float(a) for a in args.race_alphas.split(",") if a.strip()]
    except ValueError:
        raise ConfigError(f"--race-alphas {args.race_alphas!r}: give numbers in (0, 1), like 0.05,0.2") from None
    if not alphas or not all(0 < a < 1 for a in alphas):
        raise ConfigError(f"--race-alphas {args.race_alphas!r}: give numbers in (0, 1), like 0.05,0.2")
    return [racing.parse({"race": bounds, "step": s}, "--race", alpha=a) for s in steps for a in alphas]


def cmd_replay(args):
    from .output import name
    from .racing import meets
    from .run import replay_folder

    search = _ints("--search-seeds")(args.search_seeds) if args.search_seeds.strip() else []
    out, rows, best, aa, raced = replay_folder(args.folder, _ints("--eta")(args.eta),
                                               _ints("--min-iterations")(args.min_iterations),
                                               _ints("--seeds-per-config")(args.seeds_per_config), search,
                                               args.resamples, args.seed, args.target, args.out, _progress,
                                               races=_races(args), race_mode=args.race_mode)
    for r in rows:
        print(f"{name(r)}: P(tied) {100 * r['p_tied']:.1f}%, P(best) {100 * r['p_best']:.1f}%, "
              f"FLOPs {100 * r['flops_share']:.1f}%")
    print(f"recommended: {name(best)}" if best else f"recommended: none reaches {100 * args.target:g}%")
    print(f"A/A: {aa['different']} of {aa['tests']} splits called different"
          + (f" ({100 * aa['rate']:.1f}%)" if aa["tests"] else ""))
    for r in raced:
        print(f"{r['race']}: same verdict {100 * r['same']:.1f}% [{100 * r['same_lo']:.1f}, {100 * r['same_hi']:.1f}]"
              f", runs {100 * r['runs_share']:.1f}% of the fixed design's"
              + (" (meets the bar)" if meets(r) else ""))
    print(f"replay: {out / 'replay.html'}")
    return 0
