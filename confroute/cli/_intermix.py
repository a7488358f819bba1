"""Options anywhere: reorder a command line so that options come before positional arguments.

argparse reads a positional with `nargs="*"` (e.g. `route ARTIFACT PROMPT ...`) as one run, so
`route ART "a" --threshold 0.5 "b"` fails with "unrecognized arguments: b". argparse's own fix,
`parse_intermixed_args`, runs `parse_known_args`, which jsonargparse refuses (an unknown key in
a config file would pass unnoticed). So the command line is reordered first, with the parser's
own table of options (which option takes how many values): options keep their order (a flag
after `--config` still overrides the file) and the positionals follow after a `--`, so one that
starts with "-" stays a positional. Unknown options stay options, so the parser names them.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")  # argparse's own pattern


def intermix(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """`argv` with every option (and its values) first, then `--` and the positionals in the
    order given; `argv` unchanged when it (or the command) has no positionals. Arguments
    after a `--` in `argv` are positionals. Raises nothing: what the parser cannot read, it
    reports itself."""
    args = list(argv)
    sub = _subcommands(parser)
    if sub is not None:  # `logs export ...`: the subcommand's own parser orders its options,
        for i, arg in enumerate(args):  # those written before the subcommand's name included
            if arg in sub.choices:
                before = [a for a in args[:i] if _action(parser, a.split("=")[0]) is None]
                mine = [a for a in args[:i] if a not in before]
                return [*mine, arg, *intermix(sub.choices[arg], [*before, *args[i + 1:]])]
        return args
    options: list[str] = []
    positionals: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            positionals += args[i + 1:]
            break
        if not _looks_like_option(parser, arg):
            positionals.append(arg)
            i += 1
            continue
        taken = _values_taken(parser, arg, args[i + 1:])
        options += args[i:i + 1 + taken]
        i += 1 + taken
    if not positionals or all(a.option_strings for a in parser._actions):
        return args  # (a command without positionals: its parser names the stray argument)
    return [*options, "--", *positionals]


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return found[0] if found else None


def _looks_like_option(parser: argparse.ArgumentParser, arg: str) -> bool:
    if not arg.startswith(tuple(parser.prefix_chars)) or arg == "-":
        return False
    return not _NEGATIVE_NUMBER.match(arg) or bool(parser._has_negative_number_optionals)


def _values_taken(parser: argparse.ArgumentParser, arg: str, rest: list[str]) -> int:
    """How many of the following arguments the option `arg` reads as its values."""
    if "=" in arg:
        return 0
    action = _action(parser, arg)
    if action is None or type(action).__name__ == "_ActionPrintConfig":
        return 0  # unknown (the parser names it), or jsonargparse's --print_config[=flags]
    nargs = action.nargs
    values = 0
    while values < len(rest) and not _looks_like_option(parser, rest[values]):
        values += 1
    if nargs is None:
        return min(values, 1)
    if isinstance(nargs, int):
        return min(values, nargs)
    if nargs == "?":
        return min(values, 1)
    if nargs in ("*", "+"):
        return values
    return 0  # argparse.REMAINDER and friends: none of our commands use them


def _action(parser: argparse.ArgumentParser, arg: str) -> argparse.Action | None:
    """The option's action: an exact name, jsonargparse's `--list+` (append), or a unique
    prefix (argparse's abbreviations); None when unknown or ambiguous."""
    table = parser._option_string_actions
    name = arg[:-1] if arg.endswith("+") and arg[:-1] in table else arg
    if name in table:
        return table[name]
    if not parser.allow_abbrev:
        return None
    matches = {table[o] for o in table if o.startswith(name)}
    return matches.pop() if len(matches) == 1 else None


def expected(parser: argparse.ArgumentParser) -> str:
    """What a command takes, for an "unrecognized arguments" error, e.g. "takes ARTIFACT
    [PROMPTS ...] and options"."""
    shown = []
    for action in parser._actions:
        if action.option_strings:
            continue
        name = (action.metavar if isinstance(action.metavar, str) else action.dest).upper()
        shown.append({"?": f"[{name}]", "*": f"[{name} ...]", "+": f"{name} [...]"}.get(
            str(action.nargs), name))
    return f"takes {' '.join(shown)} and options" if shown else "takes options only"
