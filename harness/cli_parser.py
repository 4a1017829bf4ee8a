"""The command line's argument parser: a mistake is one line with a "did
you mean", not argparse's usage dump."""
from __future__ import annotations

import argparse
import difflib
import re

from .errors import ConfigError


class Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, not argparse's usage dump; main() adds the "harness: error:" prefix.
        where = "" if self.prog == "harness" else f"{self.prog.removeprefix('harness ')}: "
        raise ConfigError(f"{where}{message}{_did_you_mean(self, message)} (see {self.prog} --help)")


def _options(parser):
    """Every flag of ``parser`` and of its subcommands."""
    flags = []
    for action in parser._actions:
        flags += [o for o in action.option_strings if o.startswith("--")]
        choices = getattr(action, "choices", None)
        for sub in choices.values() if isinstance(choices, dict) else ():  # a tuple of values is no subcommand
            if isinstance(sub, argparse.ArgumentParser):
                flags += _options(sub)
    return flags


def _did_you_mean(parser, message):
    """"; did you mean --jobs?" for a mistyped flag in argparse's message."""
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        hint = difflib.get_close_matches(choice[1], re.findall(r"'([^']*)'", choice[2]), n=1)
        return f"; did you mean {hint[0]!r}?" if hint else ""
    if "unrecognized arguments:" not in message:
        return ""
    for word in message.split("unrecognized arguments:", 1)[1].split():
        hint = difflib.get_close_matches(word.split("=")[0], sorted(set(_options(parser))), n=1)
        if word.startswith("-") and hint:
            return f"; did you mean {hint[0]}?"
    return ""
