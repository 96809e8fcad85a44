"""`python -m streamd` runs the CLI."""

from streamd.cli import main

main()
