"""Command files (`vnet switch -f`, `vnet wirefilter --rcfile`): one command per line."""

from __future__ import annotations


class RcFileError(Exception):
    """The file cannot be read; the message says which and why, in one line."""


def command_lines(path: str) -> list[tuple[int, list[str]]]:
    """(line number, words) of each command line; blank lines and `#` comments skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise RcFileError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise RcFileError(f"{path} is not a text file of commands") from None
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if words:
            out.append((no, words))
    return out
