"""README sections the specs require (runtime.md section 24, telemetry.md section 4.1)."""

from __future__ import annotations

import re
from pathlib import Path

_README = Path(__file__).resolve().parents[1] / "README.md"


def section(title: str) -> str:
    """The text of the README's ``## title`` section, up to the next level-2 heading."""
    text = _README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_migration_section_lists_every_deliberate_fix_with_before_and_after() -> None:
    """The migration table has one row per fix F1-F18, each with a before and an after."""
    rows = re.findall(
        r"^\| (F\d+) [^|]+\| ([^|]+) \| ([^|]+) \|$", section("Migrating from penguiflow"), re.M
    )

    assert [fix for fix, _, _ in rows] == [f"F{number}" for number in range(1, 19)]
    for fix, before, after in rows:
        assert before.strip(), fix
        assert after.strip(), fix
        assert before.strip() != after.strip(), fix


def test_the_telemetry_section_says_early_how_a_flow_joins_the_callers_trace_and_why_it_links() -> None:
    """Early in Telemetry: how to join the caller's trace (headers_from_carrier, traceparent), and why not."""
    telemetry = section("Telemetry")
    paragraphs = [block for block in telemetry.split("\n\n") if block.strip()]
    joining = next(index for index, block in enumerate(paragraphs) if "caller's trace" in block)

    assert joining <= 4
    text = paragraphs[joining]
    assert "headers_from_carrier" in text
    assert "traceparent" in text
    assert "link" in text
    assert "trace_id" in text
