"""One module per ``gexflow`` command, each with ``configure_parser(subparsers)`` (its options, light: it runs at
every start) and ``execute(args) -> int`` (parse, call the jobs or the engine, print; heavy imports inside)."""
