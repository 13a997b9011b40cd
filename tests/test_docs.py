"""The Python examples of docs/scaling.md, performance.md, migration.md, optax.md,
flax_equinox.md and writing_an_optimizer.md run, in order, on the 8 simulated devices of
conftest.py; their asserts check what the page says. A block after a
``<!-- not run: ... -->`` line is left out (it needs a cluster, or MXNet)."""

import pathlib
import re

import pytest

import mxopt

DOCS = pathlib.Path(__file__).parent.parent / "docs"
BLOCK = re.compile(r"(<!-- not run: [^>]*-->\n)?```python\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("page", ["scaling.md", "performance.md", "migration.md", "optax.md",
                                  "flax_equinox.md", "writing_an_optimizer.md"])
def test_examples_run(page, monkeypatch):
    monkeypatch.chdir(DOCS.parent)  # pages name files from the repository's root
    monkeypatch.setattr(mxopt.registry, "_DECLARATIONS", dict(mxopt.registry._DECLARATIONS))
    text = (DOCS / page).read_text()
    namespace: dict = {}
    for block in BLOCK.finditer(text):
        skip, code = block.groups()
        if not skip:
            # Blank lines first, so that a traceback gives the line of the page.
            first_line = text.count("\n", 0, block.start(2))
            exec(compile("\n" * first_line + code, f"docs/{page}", "exec"), namespace)
