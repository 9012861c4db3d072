"""The ``qorgau`` command: one subcommand per service, ``qorgau demo`` for everything at once."""

from __future__ import annotations

import argparse
import importlib
import sys
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
        epilog="Settings come from QORGAU_* environment variables; "
        "each subcommand's --help lists them.",
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
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
