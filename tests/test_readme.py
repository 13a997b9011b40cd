"""The README as a newcomer follows it: its Python snippets run in order, from the
repository's root, and every install line installs from the clone, with extras that
pyproject.toml declares."""

import pathlib
import re
import tomllib

import pytest

ROOT = pathlib.Path(__file__).parent.parent
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
# `pip install ...` wherever it appears: in README, docs pages and error messages.
PIP_INSTALL = re.compile(r"pip install ([^\n`&#]*)")  # its arguments
EXTRA = re.compile(r"""["']?(?:-e )?\.\[(\w+)\]["']?""")


def install_lines() -> list[tuple[str, str]]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "mxopt").rglob("*.py"))]
    return [(str(page.relative_to(ROOT)), match.group(1).strip())
            for page in pages for match in PIP_INSTALL.finditer(page.read_text())]


def test_the_snippets_run_in_order(monkeypatch):
    monkeypatch.chdir(ROOT)  # the snippets read recorded files from the repository
    text = (ROOT / "README.md").read_text()
    namespace: dict = {}
    blocks = list(BLOCK.finditer(text))
    assert len(blocks) >= 2
    for block in blocks:
        first_line = text.count("\n", 0, block.start(1))
        exec(compile("\n" * first_line + block.group(1), "README.md", "exec"), namespace)
    # What the "Use" example trains: two steps down the loss, the second at momentum 0.95.
    assert float(namespace["loss_fn"](namespace["params"], namespace["batch"])) < 1.0
    assert float(namespace["mxopt"].get_hyperparams(namespace["state"])["momentum"]) == \
        pytest.approx(0.95)


def test_every_install_line_installs_from_the_clone_with_a_declared_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    lines = install_lines()
    assert len(lines) >= 4
    for where, line in lines:
        assert not re.search(r"\bmxopt\b", line), f"{where}: {line!r} asks the package index"
        for extra in EXTRA.findall(line):
            assert extra in extras, (where, line)


def test_the_notebooks_extra_brings_jupyter_and_the_demos_packages():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(dep.startswith("jupyterlab") for dep in extras["notebooks"])
    assert "mxopt[demo]" in extras["notebooks"]
    readme = (ROOT / "README.md").read_text()
    assert '.venv/bin/pip install -e ".[notebooks]" && .venv/bin/jupyter lab notebooks/' in readme
