"""The command line: the only package that imports typer (and, through console.py, rich)."""

from distrodebug.cli.app import main

__all__ = ["main"]
