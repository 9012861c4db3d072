"""One module per ``qorgau`` subcommand.

Each module exposes ``register(subparsers)``, which adds its parser and sets ``handler`` to a
function ``(args: argparse.Namespace) -> int``. Heavy imports happen inside the handler so that
``qorgau --help`` and the edge agent stay fast and light.
"""
