"""Errors raised for problems in what the user gave xdistill.

A :class:`XDistillError` carries a message meant for a person: it names the
value, what was expected, what was received and how to fix it. The CLI prints
it on one line and exits with status 2; any other exception is a bug and keeps
its traceback.
"""

from __future__ import annotations


class XDistillError(Exception):
    """A problem with user input (a file, a config value, a name)."""


class ConfigError(XDistillError):
    """A configuration file or override is invalid."""


def join_problems(problems: list[str], header: str) -> str:
    """Format several problems found in one validation pass as one message."""
    if len(problems) == 1:
        return f"{header}: {problems[0]}"
    lines = "\n".join(f"  - {p}" for p in problems)
    return f"{header} ({len(problems)} problems):\n{lines}"
