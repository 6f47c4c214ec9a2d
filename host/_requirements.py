"""Environment layer: a plugin's requirements, as PEP 508 names and versions only.

Contract: `parse_requirements(lines)` returns each requirement normalised (`str()` of a
`packaging` `Requirement`) or raises `ValueError` naming the first bad one. Anything that is not a
PEP 508 requirement is refused, and so is a direct reference (`name @ url`): an installer option
(`--target=/x`, `-r /etc/passwd`, `--index-url`, `-e`, `--config-file`) is not a requirement, and
a URL would let the plugin choose where code comes from instead of the operator's index. The
normalised form starts with a project name, so no requirement can ever reach an installer's argv
as an option; installs pass them through a requirements file anyway.
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.requirements import InvalidRequirement, Requirement


def parse_requirement(text: str) -> Requirement:
    """One PEP 508 requirement from an index (no URL); `ValueError` otherwise."""
    stripped = text.strip()
    if stripped.startswith("-"):
        raise ValueError(f"requirement {text!r} is an installer option, not a requirement")
    try:
        requirement = Requirement(stripped)
    except InvalidRequirement as exc:
        raise ValueError(f"requirement {text!r} is not a PEP 508 requirement: {exc}") from None
    if requirement.url is not None:
        raise ValueError(
            f"requirement {text!r} is a direct reference (name @ url); only requirements "
            "resolved from the operator's package index are allowed"
        )
    return requirement


def parse_requirements(lines: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(parse_requirement(line)) for line in lines)
