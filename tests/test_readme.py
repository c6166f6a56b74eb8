"""The README's first flow runs as pasted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_first_python_block_runs_and_prints_its_promised_output() -> None:
    """The first ``python`` block of the README runs and prints what its comment says."""
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 15
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.strip() == "HELLO PENGUINS"


def test_examples_run_to_completion() -> None:
    """Each bundled example runs and prints its result."""
    root = README.parent
    quick = subprocess.run(
        [sys.executable, str(root / "examples/quickstart/flow.py")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert quick.returncode == 0, quick.stderr
    assert "HELLO PENGUINS!" in quick.stdout
    roadmap = subprocess.run(
        [sys.executable, str(root / "examples/roadmap_status_updates/flow.py")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert roadmap.returncode == 0, roadmap.stderr
    lines = roadmap.stdout.strip().splitlines()
    assert lines[0] == "[chunk 0] reading the roadmap"
    assert lines[-1] == "[final] Roadmap: 3 steps for 'Q3 roadmap'"
