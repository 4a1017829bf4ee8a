"""Command line: ``python -m harness COMMAND``.

Bad input is one line on stderr and exit status 2; ``--debug`` shows the
traceback instead.
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from . import __version__, cli_train, signals
from .cli_parser import Parser
from .errors import ConfigError, HarnessError


def _add_sweep(sub):
    p = sub.add_parser("sweep", help="train every run of a TOML grid, in parallel and resumably",
                       description="Train every combination of a grid file. Finished runs are skipped, "
                                   "so the same command resumes an interrupted sweep.")
    p.add_argument("grid", metavar="GRID.toml", help="grid file (see README)")
    p.add_argument("--dry-run", action="store_true",
                   help="show the plan: the runs, what is finished or continues from a checkpoint, each run's "
                        "estimated time and the training wall time; train and write nothing (exit status 2 when "
                        "the estimate exceeds the budget)")
    p.add_argument("--force", action="store_true", help="rerun finished runs too")
    p.add_argument("--quiet", action="store_true", help="no progress bar or tables")
    p.add_argument("--out", metavar="DIR", default="results", help="results root (default: results)")
    p.add_argument("--jobs", type=int, metavar="N", help="parallel workers, overriding [sweep] jobs")
    p.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler, e.g. tcp://host:8786 (implies dask)")
    p.add_argument("--probe", action="store_true", help="with --dry-run: ask the dask scheduler for its workers "
                                                        "(a dry run contacts no scheduler otherwise)")
    p.add_argument("--no-live-report", action="store_true",
                   help="write the report only at the end, not also while runs finish")
    p.add_argument("--budget", metavar="TIME", help="refuse to start when the estimated training wall time exceeds "
                                                    "this, e.g. 45m, 2h or 90s (overrides [sweep] budget)")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args):
    from .grid import load_sweep
    from .progress import for_terminal
    from .sweep import run_sweep

    sweep = load_sweep(args.grid, jobs=args.jobs, scheduler=args.scheduler, budget=args.budget)
    for note in sweep.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.dry_run:
        return _dry_run(sweep, args)
    return run_sweep(sweep, args.out, force=args.force, events=for_terminal(args.quiet),
                     resume_command=_resume_command(args), live_report=not args.no_live_report)


def _dry_run(sweep, args):
    """Print the plan (see :func:`harness.plan.describe`); reads the folder,
    trains and writes nothing (but the machine's calibration, in the user's
    cache folder). Exit status 2 when the estimate exceeds the budget."""
    from .backend import offline
    from .plan import describe, make_plan

    with offline(not args.probe):
        plan = make_plan(sweep, Path(args.out) / sweep.name, force=args.force, say=_note, dry_run=True)
    if sweep.backend == "dask":
        from .remote_runs import shipping_lines
        print("\n".join(shipping_lines(sweep)))
    print("\n".join(describe(plan)))
    if plan.refusal is None:
        return 0
    sys.stdout.flush()
    print("harness: the estimate exceeds the budget: the sweep would refuse to start", file=sys.stderr)
    return 2  # as the sweep itself would: a script can tell


def _resume_command(args):
    """The command that resumes this sweep: the same flags, less --force."""
    words = ["python", "-m", "harness", "sweep", args.grid]
    if args.out != "results":
        words += ["--out", args.out]
    if args.jobs is not None:
        words += ["--jobs", str(args.jobs)]
    if args.scheduler:
        words += ["--scheduler", args.scheduler]
    if args.budget:
        words += ["--budget", args.budget]
    if args.no_live_report:
        words.append("--no-live-report")
    if args.quiet:
        words.append("--quiet")
    return shlex.join(words)


def _add_folder_command(sub, name, func, help, description):
    """A command whose one argument is a sweep's results folder."""
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("folder", metavar="results/NAME", help="a sweep's results folder")
    p.set_defaults(func=func)


def _add_report(sub):
    _add_folder_command(sub, "report", cmd_report, "write plots and reports of a sweep folder from its CSV files",
                        "Regenerate plots/*.png, comparison.csv, report.md and report.html of a sweep folder "
                        "from its CSV files; trains nothing.")


def cmd_report(args):
    from .report import write_report
    from .store import sweep_running

    if sweep_running(args.folder):
        print(f"note: a sweep is still running on {args.folder}; this report is partial", file=sys.stderr)
    print(f"report: {write_report(args.folder, say=_note)}")
    return 0


def _note(text):
    print(text, file=sys.stderr)


def _add_status(sub):
    _add_folder_command(sub, "status", cmd_status, "how far a sweep is: runs done, running and left",
                        "Read a sweep folder (safely, while the sweep runs) and say which runs are done, "
                        "running and left, with each running run's iteration and time left.")


def cmd_status(args):
    from .sweep_status import render

    print(render(args.folder))
    return 0


def _add_compare(sub):
    p = sub.add_parser("compare", help="one report putting several sweeps' variants side by side",
                       description="Compare the variants of several sweep folders in one report (tables, "
                                   "intervals, ties, plots), the sweep as a setting; trains nothing.")
    p.add_argument("folders", nargs="+", metavar="results/NAME", help="sweep results folders (two or more)")
    p.add_argument("--out", metavar="DIR", help="the folder to write the report into (default: compare-A-vs-B "
                                                "beside the sweeps compared)")
    p.add_argument("--allow-different-data", action="store_true",
                   help="compare sweeps trained on different data (the report says so)")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args):
    from .report import compare

    print(f"report: {compare(args.folders, args.out, args.allow_different_data, say=_note)}")
    return 0


def _add_verify(sub):
    p = sub.add_parser("verify", help="check a sweep folder's records against their manifests",
                       description="Check every run's files against the manifest in its status.json (and its "
                                   "folder name against its config.json), and summary.csv against its "
                                   "checksum. With --seal, give records written before manifests one, "
                                   "when their files are consistent.")
    p.add_argument("folder", metavar="results/NAME", help="a sweep's results folder")
    p.add_argument("--seal", action="store_true", help="add missing manifests to consistent finished runs "
                                                       "and to a summary.csv that agrees with them")
    p.set_defaults(func=cmd_verify)


def cmd_verify(args):
    from .verify import verify_folder

    problems, lines = verify_folder(args.folder, seal=args.seal)
    for line in lines:
        print(line)
    return 1 if problems else 0


def _add_bench(sub):
    p = sub.add_parser("bench", help="measure training speed against the GEMM limit, PyTorch and scikit-learn",
                       description="Medians and ratios measured side by side in one process; writes "
                                   "bench.csv and bench.png.")
    p.add_argument("--repeats", type=int, default=7, metavar="N", help="timed repeats per figure (default 7)")
    p.add_argument("--quick", action="store_true", help="skip the Adam race and shorten the sweep")
    p.add_argument("--race", action="store_true",
                   help="only the sweep race: a small sweep as whole commands against PyTorch and scikit-learn")
    p.add_argument("--cases-only", action="store_true",
                   help="only the full-batch step and lone-minibatch cases (what --kernels runs per kernel)")
    p.add_argument("--kernels", metavar="LIST", help="the step and minibatch cases once per OpenBLAS kernel, "
                   "each in a fresh process (OPENBLAS_CORETYPE), side by side: e.g. Haswell,SkylakeX")
    p.add_argument("--dask", action="store_true", help="only the Dask section: overhead per run on a local "
                                                       "cluster against loky, and bytes shipped per run")
    p.add_argument("--out", metavar="DIR", default="results/bench", help="output folder (default results/bench)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args):
    from .bench import run_bench

    if args.repeats < 1:
        raise ConfigError(f"flag --repeats: {args.repeats} must be at least 1")
    if args.kernels is not None:
        from .kernelbench import run_kernels

        kernels = [k.strip() for k in args.kernels.split(",") if k.strip()]
        bad = [k for k in kernels if not k.isalnum()]
        if not kernels or bad or args.race:
            why = "--race does not go with it" if args.race else f"{(bad or [args.kernels])[0]!r} is not a kernel name"
            raise ConfigError(f"flag --kernels: {why} (a list like Haswell,SkylakeX)")
        run_kernels(kernels, args.out, args.repeats, args.quick, say=print)
        return 0
    run_bench(args.out, args.repeats, args.quick, say=print, race_only=args.race, cases_only=args.cases_only,
              dask_only=args.dask)
    return 0


def _add_pack(sub):
    p = sub.add_parser("pack", help="a compact copy of a sweep folder: its summary and every run's evaluations",
                       description="Write the sweep files (summary.csv, sweep.toml, tuned.csv, with their "
                                   "checksums) and every run's evaluation rows in one gzip file, "
                                   "evaluations.csv.gz; report, verify and replay read the packed folder.")
    p.add_argument("folder", metavar="results/NAME", help="a finished sweep's results folder")
    p.add_argument("--out", metavar="DIR", help="where to write the packed folder (default: NAME-packed beside it)")
    p.set_defaults(func=cmd_pack)


def cmd_pack(args):
    from pathlib import Path

    from .pack import pack

    folder = Path(args.folder)
    out, size = pack(folder, args.out or folder.with_name(folder.name + "-packed"), say=print)
    print(f"packed: {out} ({size / 1e6:.2f} MB compressed)")
    return 0


def _add_replay(sub):
    from .replay.cli import add_parser

    add_parser(sub)


def build_parser():
    p = Parser(prog="harness", description="Compare MLP architectures trained by a NumPy core.")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    cli_train.add_parser(sub)
    _add_sweep(sub)
    _add_report(sub)
    _add_compare(sub)
    _add_status(sub)
    _add_verify(sub)
    _add_pack(sub)
    _add_replay(sub)
    _add_bench(sub)
    return p


def _no_nul(args):
    """No argument may hold a NUL byte: no path can, and the OS would raise."""
    for key, value in vars(args).items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and "\0" in v:
                raise ConfigError(f"{args.command}: argument {key} {v!r} holds a NUL byte, which no path can")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 2
        _no_nul(args)
        with signals.sigterm_as_interrupt():  # SIGTERM stops a command as Ctrl-C does
            code = args.func(args)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here
        return code
    except HarnessError as e:
        if debug:
            raise
        print(f"harness: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted" + (" (SIGTERM)" if signals.terminated() else ""), file=sys.stderr)
        return signals.exit_status()
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as a Unix tool does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
