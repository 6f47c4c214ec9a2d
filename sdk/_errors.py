"""Authoring layer: the error an author's definition mistake raises at import time.

Contract: every message names the package (when known), the class (and field), what is wrong and
the fix, in the style of pydantic's `PydanticUserError`.
"""

from __future__ import annotations


class AuthoringError(TypeError):
    """A plugin's node model, spec or package registration is wrong. Raised at import."""

    def __init__(self, problem: str, *, fix: str, owner: str | None = None) -> None:
        where = f"[{owner}] " if owner else ""
        super().__init__(f"{where}{problem}. Fix: {fix}")
        self.problem = problem
        self.fix = fix
        self.owner = owner


def owner_of(cls: type) -> str:
    """`package 'x', class Y` for messages, from the class's module."""
    package = cls.__module__.split(".")[0]
    return f"package {package!r}, class {cls.__qualname__}"
