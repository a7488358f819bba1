"""The `confroute` console script: one subcommand per module in this package.

Each command module defines `HELP` (its line in `confroute --help`), `add_arguments(parser)` and
`run(args) -> int`. The parser is jsonargparse's: a command's settings are the fields of its
dataclasses (`parser.add_class_arguments`), so a setting is declared once, its docstring is its
`--help` text and its default is the field's; `--config FILE` reads the same keys from YAML
(unknown keys are errors) and `--print_config` shows the settings a command would use. Only the
chosen command's parser is built, so `confroute route` does not import torch. Options may come
before, between and after positional arguments (`_intermix`). Library and argument errors
become one line on stderr and exit 2.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from confroute import __version__
from confroute.cli._intermix import expected, intermix
from confroute.errors import ConfigError, ConfrouteError

# Subcommand modules, in the order --help lists them. A new command is a new module + a name here.
COMMANDS = ["train", "export", "route", "calibrate", "datasets", "mmlu-pro", "evaluate",
            "serve", "tune", "label", "judge", "logs", "gate", "drift"]
# The pip extra each command needs beyond the base install (a missing one is named in one line).
EXTRAS = {"train": "train", "export": "train", "evaluate": "train", "mmlu-pro": "train",
          "tune": "train", "label": "label", "judge": "label",
          "serve": "serve", "logs": "train", "gate": "train", "drift": "train"}
DESCRIPTION = "Decide per prompt whether an edge or a cloud LLM should answer it."


def command_module(command: str) -> Any:
    """The module of a subcommand (`mmlu-pro` lives in `mmlu_pro.py`)."""
    return importlib.import_module(f"confroute.cli.{command.replace('-', '_')}")


def build_parser(command: str) -> Any:
    """The jsonargparse parser of one subcommand (`confroute <command> ...`)."""
    from jsonargparse import ArgumentParser, set_parsing_settings

    # Field docstrings (the text under each dataclass field) become the flags' help.
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    module = command_module(command)
    parser = ArgumentParser(prog=f"confroute {command}", exit_on_error=False,
                            description=(module.__doc__ or "").split(":", 1)[-1].strip())
    module.add_arguments(parser)
    return parser


def parse_command(command: str, argv: Sequence[str]) -> Any:
    """The instantiated settings of `confroute <command> <argv>`; options may come before,
    between and after the positionals. Raises jsonargparse's ArgumentError or ConfigError."""
    parser = build_parser(command)
    module = command_module(command)
    try:
        if hasattr(module, "before_parse"):  # e.g. train's --preset: defaults under flags
            module.before_parse(parser, list(argv))
        return parser.instantiate(parser.parse_args(intermix(parser, argv)))
    except UnicodeDecodeError as exc:  # a --config file that is not UTF-8 text
        raise ConfigError(f"a settings file (--config) is not UTF-8 text ({exc.reason} at "
                          f"byte {exc.start}); save it as UTF-8") from exc


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name.ljust(width)}  {command_module(name).HELP}" for name in COMMANDS]
    return (f"usage: confroute [-h] [--version] COMMAND ...\n\n{DESCRIPTION}\n\ncommands:\n"
            + "\n".join(lines) + "\n\n`confroute COMMAND --help` lists a command's settings.\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run `confroute` with `argv` (default sys.argv[1:]); returns the exit code.

    0: done; 2: bad arguments, settings or input (one line on stderr); 130: interrupted.
    `--help` prints and raises SystemExit(0), as argparse does.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), end="", file=sys.stdout if args else sys.stderr)
        if args:
            raise SystemExit(0)
        return 2
    if args[0] == "--version":
        print(f"confroute {__version__}")
        return 0
    args = command_first(args)
    command = args[0]
    if command not in COMMANDS:
        found = f"the option {command!r} before any command" if command.startswith("-") \
            else f"unknown command {command!r}"
        print(f"confroute: error: {found}; write `confroute COMMAND [options]` with a COMMAND "
              f"from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    from jsonargparse import ArgumentError

    from confroute.errors import one_line

    try:
        namespace = parse_command(command, args[1:])
        if command == "serve":  # a reload parses its arguments again (the cascade settings)
            return int(command_module(command).run(namespace, args[1:]) or 0)
        return int(command_module(command).run(namespace) or 0)
    except ArgumentError as exc:
        message = _config_named(one_line(str(exc)), args)
        if message.startswith("unrecognized arguments"):  # a surplus positional or a typo
            message += f" (confroute {command} {expected(build_parser(command))}; see --help)"
        print(f"confroute {command}: error: {message}", file=sys.stderr)
        return 2
    except ConfrouteError as exc:
        print(f"confroute {command}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"confroute {command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a path of the user's that cannot be read or written (a folder that
        if exc.filename is None:  # is a file, no permission, a full disk): one line naming it
            raise
        print(f"confroute {command}: error: {os_error(exc)}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if command not in EXTRAS or not exc.name or exc.name.startswith("confroute"):
            raise
        print(f"confroute {command}: error: {missing_extra(command, exc.name)}", file=sys.stderr)
        return 2


def os_error(exc: OSError) -> str:
    """One line for an OSError on a user's path: what failed, where, and what to check."""
    where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    hint = {FileExistsError: "a file stands where a folder is needed; choose another path",
            NotADirectoryError: "a part of the path is a file, not a folder; choose another path",
            IsADirectoryError: "a folder stands where a file is needed; choose another path",
            PermissionError: "check the permissions, or choose a path you can write"}
    return f"{exc.strerror or type(exc).__name__}: {where}; " + hint.get(
        type(exc), "check the path and the free disk space")


def missing_extra(command: str, module: str) -> str:
    """The one line for a command whose extra is not installed (`module` failed to import)."""
    extra = EXTRAS[command]
    return (f"this command needs the '{extra}' extra: the Python package "
            f"'{module.split('.')[0]}' is not installed. Install it with: "
            f"pip install 'confroute[{extra}]'")


def command_first(args: list[str]) -> list[str]:
    """`confroute --threshold 0.5 route ART` as `confroute route --threshold 0.5 ART`: options
    written before the command are the command's, when exactly one argument names a command
    (with two, which is the command and which an option's value is ambiguous)."""
    named = [i for i, arg in enumerate(args) if arg in COMMANDS]
    if args[0] in COMMANDS or not args[0].startswith("-") or len(named) != 1:
        return args
    return [args[named[0]], *args[:named[0]], *args[named[0] + 1:]]


def _config_named(message: str, args: list[str]) -> str:
    """Name the --config file in errors that come from one (jsonargparse names none): invalid
    YAML, an unknown key (an unknown flag is an "unrecognized argument" instead), or a file
    whose YAML is not a mapping (empty, a list, a number: jsonargparse says "Unexpected config")."""
    not_mapping = message.startswith("Unexpected config")
    from_file = "Problems parsing config" in message or "unknown setting" in message
    if not (from_file or not_mapping) or "--config" not in args:
        return message
    files = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--config"]
    if not_mapping:
        found = message.removeprefix("Unexpected config").lstrip(":").strip()
        return (f"config file {' or '.join(files)} must hold settings as `key: value` lines "
                f"(e.g. `port: 0`); found {repr(found) if found else 'an empty file'}; "
                "fill it in, or leave out --config")
    return f"config file {' or '.join(files)} is not valid: {message}"
