"""The `streamd` command line: one module per command group; every failure is one line."""
