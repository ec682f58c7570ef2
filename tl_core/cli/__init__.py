"""The command line: one module per command (add_parser + run), `main` dispatches. Exports: main."""
