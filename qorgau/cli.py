"""The ``qorgau`` command: one subcommand per service, ``qorgau demo`` for everything at once."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from qorgau import __version__

# Subcommand modules under qorgau.commands, in the order --help lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "edge",
    "sim",
    "devices",
    "ingest",
    "deadletters",
    "assessments",
    "alerts",
    "api",
    "db",
    "tokens",
    "report",
    "dashboards",
    "assess",
    "norms",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qorgau",
        description=(
            "Qorgau streams workplace instrument readings (noise, gas, dust, vibration) over MQTT "
            "into PostgreSQL/TimescaleDB, computes exposure, classes of working conditions and the "
            "harmfulness index В, raises early warnings and serves occupational-risk scoring."
        ),
        epilog="Settings come from QORGAU_* environment variables; each subcommand's --help "
        "lists the ones it reads. A running `qorgau demo` writes its database and broker "
        "addresses to .qorgau/demo/qorgau.env, which every command here reads for what the "
        "environment does not set (QORGAU_ENV_FILE names another file).",
    )
    parser.add_argument("--version", action="version", version=f"qorgau {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"qorgau.commands.{name}")
        except ModuleNotFoundError as exc:
            # An edge-only install lacks the server extras; keep the commands it can run.
            if exc.name and exc.name.startswith("qorgau.commands"):
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    if getattr(args, "reads_env_file", True):
        from qorgau.envfile import load_env_file

        load_env_file()
    command = _command_name(argv if argv is not None else sys.argv[1:])
    with warnings.catch_warnings():
        _keep_warnings_out()
        try:
            result: int = handler(args)
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader went away (`qorgau assess --json | head`): nothing left to say. Point
            # stdout at /dev/null so that the interpreter's own flush at exit stays quiet too.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141  # what a shell reports for a process ended by SIGPIPE
        except Exception as exc:
            message = _user_message(exc)
            if message is None:
                raise
            print(f"qorgau {command}: {message}", file=sys.stderr)
            return 1
    return result


def _command_name(argv: Sequence[str]) -> str:
    """``db prune`` of ``db prune --dry-run``: the command and its action, as messages name it."""
    words = []
    for word in argv[:2]:
        if word.startswith("-") or not word.replace("-", "").isalpha():
            break
        words.append(word)
    return " ".join(words)


def _keep_warnings_out() -> None:
    """numpy's RuntimeWarnings (an empty mean, log10 of 0) name our source files and mean
    nothing to a user; the results already say "—" or "insufficient data" where they matter.
    With QORGAU_LOG_LEVEL=debug they go to the log instead."""
    import logging

    if os.environ.get("QORGAU_LOG_LEVEL", "").lower() == "debug":
        logging.captureWarnings(True)
    else:
        warnings.simplefilter("ignore", RuntimeWarning)


def _user_message(exc: Exception) -> str | None:
    """One line for an error a user can fix (no schema, no server, bad settings), else None."""
    from vocabulary.errors import QorgauError

    message: str | None = None
    try:
        from store.connection import explain
    except ImportError:  # an edge-only install has no database client
        pass
    else:
        message = explain(exc)
    if message is None and isinstance(exc, QorgauError):
        message = str(exc)
    return message


if __name__ == "__main__":
    sys.exit(main())
