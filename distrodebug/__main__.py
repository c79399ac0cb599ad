"""`python -m distrodebug` runs the CLI."""

from distrodebug.cli import main

main()
