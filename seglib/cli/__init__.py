"""Command line: python -m seglib COMMAND --help documents every option."""

from seglib.cli.commands import main

__all__ = ["main"]
