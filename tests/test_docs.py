"""The Python examples of docs/scaling.md and docs/performance.md run, in order, on
the 8 simulated devices of conftest.py; their asserts check what the page says. A block after a
``<!-- not run: ... -->`` line is left out (it needs a cluster)."""

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).parent.parent / "docs"
BLOCK = re.compile(r"(<!-- not run: [^>]*-->\n)?```python\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("page", ["scaling.md", "performance.md"])
def test_examples_run(page):
    namespace: dict = {}
    for skip, code in BLOCK.findall((DOCS / page).read_text()):
        if not skip:
            exec(compile(code, f"docs/{page}", "exec"), namespace)
