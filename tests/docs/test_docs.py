"""Every code sample in docs/ is a file a test runs."""

from __future__ import annotations

import re
from pathlib import Path

from sdk.testing import check_package

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_authoring_example_meets_the_contract() -> None:
    report = check_package(DOCS / "examples" / "ticket_notes")
    report.raise_for_failures()
    assert {e.name: e.status for e in report.expectations}["runtime snapshot"] == "passed"


def test_the_authoring_guide_shows_the_example_file_verbatim() -> None:
    guide = (DOCS / "authoring.md").read_text()
    source = (DOCS / "examples" / "ticket_notes" / "ticket_notes" / "__init__.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    assert source in blocks
