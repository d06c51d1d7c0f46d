"""One module per ``tokprof`` subcommand (``<name>_cmd.py`` with a ``register(subparsers)`` function)."""
