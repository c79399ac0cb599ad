"""`python -m distrodebug` runs the CLI."""

from distrodebug.entry import main

main()
