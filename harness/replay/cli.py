"""The ``replay`` subcommand's flags and handler (the only place it prints)."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("replay", help="how reliable is a strategy's answer? replay it on a recorded full grid")
    p.add_argument("folder", metavar="results/NAME", help="a finished full-grid sweep (packed or not)")
    p.set_defaults(func=cmd_replay)


def cmd_replay(args):
    raise NotImplementedError
