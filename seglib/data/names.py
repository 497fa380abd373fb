"""One rule for structure names, wherever they come from (command line, config.json,
labels.json, manifests, mask folders): they become folder and file names, so only letters,
digits, '_' and '-' are allowed (no '/', '..', spaces or an empty name)."""

from __future__ import annotations

import re

from seglib.data.io import DataError

SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+")


class UnsafeName(DataError):
    """A structure name that could not safely become a folder name."""


def checked_name(name, source: str = "structure name") -> str:
    """`name` if it is safe; else an error naming where it came from (`source`, e.g. a file)."""
    if not isinstance(name, str) or SAFE_NAME.fullmatch(name) is None:
        raise UnsafeName(f"{source}: structure name {name!r} is not allowed; use only letters, digits, _ and -")
    return name


def checked_names(names, source: str = "structure name") -> tuple[str, ...]:
    return tuple(checked_name(name, source) for name in names)
