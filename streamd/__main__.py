"""`python -m streamd` runs the CLI."""

from streamd.cli.app import main

main()
