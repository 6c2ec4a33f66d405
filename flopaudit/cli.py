"""The ``flopaudit`` command line.

Each sub-command lives in ``flopaudit/commands/<name>.py`` and exposes
``register(subparsers)`` (adds its parser, with ``--help``) and
``main(args) -> int``. User mistakes raise :class:`~flopaudit.errors.UserError`
and end here as one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from flopaudit import __version__
from flopaudit.errors import Terminated, UserError

COMMANDS = ("run", "cost", "backends", "zoo", "report", "explain", "match", "snapshot", "check", "merge")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise UserError(message if self.prog == "flopaudit" else f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="flopaudit",
        description="Audit PyTorch FLOP/MAC/parameter counters against each other and a reference counter.",
    )
    parser.add_argument("--version", action="version", version=f"flopaudit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"flopaudit.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"flopaudit.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    previous = _stop_on_sigterm()
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if "flopaudit.execution.supervisor" in sys.modules:  # workers were started: leave no process behind
            sys.modules["flopaudit.execution.supervisor"].stop_fork_server()


def _stop_on_sigterm() -> Any:
    """While the command runs, SIGTERM stops it as Ctrl-C does (:class:`~flopaudit.errors.Terminated`),
    where it would otherwise kill this process alone and leave the workers and the fork server
    running; returns the handler to put back (None where none was set: not the main thread, or a
    handler of the host's own)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None

    def terminated(signum: int, frame: Any) -> None:
        raise Terminated

    return signal.signal(signal.SIGTERM, terminated)


def _main(argv: Sequence[str] | None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "handler", None):
            parser.print_help()
            return 2
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"flopaudit: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("\nflopaudit: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("\nflopaudit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): nothing more to say
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
