"""The parts of mxopt's docs that are written from the code at build time.

* ``optimizers/``: a page per registered optimizer (its docstring, keyword
  arguments with mxopt's and MXNet 1.9.1's defaults, an example, and what the
  recorded MXNet fixtures check of it) and an overview table.
* ``tutorials/``: the notebooks of ``notebooks/``, copied in (Sphinx reads only
  its source folder) for myst-nb to execute.
* the ``mxopt-api`` directive: a summary table of the names it lists, then
  each one's autodoc entry, so a name is written once per API page.
* ``_generated/``: for each benchmark run recorded in ``benchmarks/*.json``
  (``python -m benchmarks --json``), its table (``<run>.md``), its targets
  (``<run>-targets.md``) and a plot of step time against the number of leaves
  (``<run>-leaves.png``), which ``performance.md`` includes.

The generated folders are git-ignored, and rewritten on every build, so they
cannot go stale.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import pathlib
import re
import shutil
import sys
import warnings

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

DOCS = pathlib.Path(__file__).parent.parent
ROOT = DOCS.parent
FIXTURES = ROOT / "tests" / "fixtures"
# The tutorials in reading order; other notebooks follow, sorted.
TUTORIALS = ["quickstart", "flax_and_equinox", "porting_mxnet", "porting_recipes", "schedules",
             "data_parallel"]


def _write(path: pathlib.Path, text: str) -> None:
    """Writes only changed files, so Sphinx rereads only what changed."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _prune(folder: pathlib.Path, keep: set[str]) -> None:
    """Removes generated files of optimizers or notebooks that are gone."""
    for path in folder.iterdir():
        if path.is_file() and path.name not in keep:
            path.unlink()


# -- optimizer pages -------------------------------------------------------


def _plain(rst: str) -> str:
    """A docstring line as Markdown: roles such as :func:`sgd` become code."""
    return re.sub(r":\w+:`~?([^`]+)`", r"`\1`", rst).replace("``", "`")


def _differences(name: str, class_name: str) -> list[str]:
    """The table rows and bullets of mxnet_differences.md about an optimizer (not MXNet.jl's)."""
    mentions = re.compile(rf"`({re.escape(name)}|{re.escape(class_name)})`|\b{class_name}\b")
    rows, bullets, section, in_bullet = [], [], "", False
    for line in (DOCS / "mxnet_differences.md").read_text().splitlines():
        if line.startswith("## "):
            section = line
        elif "MXNet.jl" in section:
            continue
        elif line.startswith("| ") and not line.startswith(("| Case", "| ---")):
            if mentions.search(line.split("|")[1]):  # the "Case" column names the optimizer
                rows.append(line)
        elif line.startswith("* "):
            bullets.append(line)
        elif line.startswith("  ") and in_bullet:
            bullets[-1] += "\n" + line
        in_bullet = line.startswith(("* ", "  ")) and bool(bullets)
    table = ["| Case | MXNet 1.9.1 | mxopt |", "| --- | --- | --- |", *rows, ""] if rows else []
    return table + [b for b in bullets if mentions.search(b)]


@functools.cache
def _fixture(path: str):
    return json.loads((FIXTURES / path).read_text())


def _parity(name: str) -> dict:
    """What the recorded MXNet 1.9.1 fixtures check of an optimizer, by kind."""
    from mxnet_fixtures import trajectories, trajectories_of

    cases = trajectories(name)
    kinds = {kind: sum(c["optimizer"] == name for c in trajectories_of(kind))
             for kind in ("same", "divergent", "raises")}
    runs, amp = _fixture("mxnet_runs/runs.json"), _fixture("mxnet_amp.json")
    return {
        "cases": len(cases), **kinds,
        "not_compared": len(cases) - sum(kinds.values()),
        "resumed": sum(c["optimizer"] == name for c in runs["resume"]),
        "gluon": [k for k, c in runs["gluon"]["cases"].items() if c["optimizer"] == name],
        "module": runs["module"]["optimizer"] == name,
        "amp": [c["id"] for c in amp["cases"] if c["optimizer"] == name],
    }


def _parity_summary(p: dict) -> str:
    """One table cell: how many recorded trajectories agree with MXNet, and how."""
    parts = [f"{p['same']}/{p['cases']} exact"]
    if p["divergent"]:
        parts.append(f"{p['divergent']} follow MXNet's docs")
    if p["raises"]:
        parts.append(f"{p['raises']} MXNet raises")
    if p["resumed"]:
        parts.append(f"{p['resumed']} resumed runs")
    if p["amp"]:
        parts.append("AMP")
    return " · ".join(parts)


def _parity_section(name: str, p: dict) -> list[str]:
    from mxnet_divergences import PURE_FLOAT16_NOT_COMPARED

    kinds = [
        (p["same"], "give MXNet's numbers (float32: rtol 1e-5, atol 1e-6 at every step; float16 "
                    "with `multi_precision`: one ulp; pure float16: 2^-7)"),
        (p["divergent"], "follow MXNet's documentation where MXNet 1.9.1 contradicts it (the "
                         "test checks that MXNet's recorded output really differs there)"),
        (p["raises"], "are cases where MXNet raises and mxopt computes the documented formula"),
        (p["not_compared"], "update float16 weights without master copies, not compared with "
                            f"MXNet: {_plain(PURE_FLOAT16_NOT_COMPARED.get(name, ''))}"),
    ]
    lines = [
        "## Parity with MXNet 1.9.1", "",
        f"Recorded from MXNet 1.9.1 by `tools/record_mxnet.py` and replayed without MXNet by "
        f"`tests/test_parity.py`: **{p['cases']} trajectories** "
        f"(`tests/fixtures/trajectories/{name}.json`: random hyperparameters, schedulers, "
        "multipliers and dtypes), of which", "",
        *(f"* {count} {what};" for count, what in kinds if count),
    ]
    lines[-1] = lines[-1][:-1] + "."
    runs = []
    if p["resumed"]:
        runs.append(f"{p['resumed']} MXNet runs saved after 3 steps and continued from MXNet's "
                    "files (`tests/fixtures/mxnet_runs/runs.json`, `tests/test_mxnet_runs.py`)")
    if p["gluon"]:
        runs.append(f"a Gluon `Trainer` run resumed from its checkpoint ({', '.join(p['gluon'])})")
    if p["module"]:
        runs.append("a Module run resumed from its checkpoint")
    if p["amp"]:
        ids = ", ".join(f"`{i}`" for i in p["amp"])
        runs.append(f"Gluon runs under AMP's dynamic loss scaling (`tests/fixtures/mxnet_amp.json`"
                    f": {ids})")
    if runs:
        lines += ["", "Also replayed: " + "; ".join(runs) + "."]
    return lines


def _value(value) -> str:
    return "—" if value is inspect.Parameter.empty else f"`{value!r}`"


def _arguments(name: str, constructor, built, mxnet: dict) -> list[str]:
    """The argument table: the optimizer's own, then MXNet's base ones, in signature order."""
    from mxopt.base import BASE_ARGS

    mxnet_defaults = {**mxnet["base"], **mxnet["optimizers"].get(name, {})}
    parameters = inspect.signature(constructor).parameters
    own = {n: p.default for n, p in parameters.items() if n not in BASE_ARGS}
    base = {n: p.default for n, p in parameters.items() if n in BASE_ARGS}
    if base["learning_rate"] is None and built.learning_rate != 0.01:
        base["learning_rate"] = built.learning_rate  # an own default, such as FTRL's 0.1
    lines = ["| Argument | mxopt default | MXNet 1.9.1 default | Kind |",
             "| --- | --- | --- | --- |"]
    for kind, args in (("own", own), ("base", base)):
        for arg, default in args.items():
            theirs = _value(mxnet_defaults[arg]) if arg in mxnet_defaults else "not an argument"
            lines.append(f"| `{arg}` | {_value(default)} | {theirs} | {kind} |")
    return lines


def _example(name: str, constructor, class_name: str) -> str:
    """Building the optimizer by name and as MXNet's object, its defaults spelled out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ccsgd's
        rate = constructor().learning_rate
    from mxopt.base import BASE_ARGS

    own = [f"{p.name}={p.default!r}" for p in inspect.signature(constructor).parameters.values()
           if p.name not in (*BASE_ARGS, "lazy_update")]
    # AdaDelta and Test step without a learning rate.
    args = ", ".join(own if name in ("adadelta", "test") else [f"learning_rate={rate!r}", *own])
    return (f"import mxopt\n\n"
            f"tx = mxopt.create({name!r}{', ' * bool(args)}{args})\n"
            f"# MXNet's object (mx.optimizer.{class_name}):\n"
            f"opt = mxopt.optimizer.{class_name}({args})\n")


def _optimizer_page(name: str, mxnet: dict) -> tuple[str, str]:
    """An optimizer's page, and its row of the overview table."""
    import mxopt

    constructor = mxopt.registry.lookup(name)
    class_name = mxopt.optimizer.Optimizer.opt_registry[name].__name__
    example = _example(name, constructor, class_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ccsgd's
        namespace: dict = {}
        exec(example, namespace)  # the example on the page runs
    summary = _plain(inspect.getdoc(constructor).splitlines()[0])
    parity = _parity(name)
    differences = _differences(name, class_name)
    lines = [
        f"(optimizer-{name})=", f"# {name}", "", summary, "",
        f"```python\n{example}```", "",
        "## Update formula and arguments", "",
        "```{eval-rst}", f".. autofunction:: mxopt.{constructor.__name__}", "```", "",
        "## Keyword arguments", "",
        "Its own arguments (from its signature) and the base arguments every MXNet optimizer "
        "takes (`mxopt.optimizers.Base`). A `learning_rate` of `None` is the scheduler's "
        "`base_lr`, or 0.01 without one.", "",
        *_arguments(name, constructor, namespace["tx"], mxnet), "",
        *_parity_section(name, parity), "",
    ]
    if differences:
        lines += ["### Where mxopt and MXNet 1.9.1 differ", "",
                  "From [Where mxopt and MXNet 1.9.1 differ](../mxnet_differences.md):", "",
                  *differences, ""]
    row = (f"| [`{name}`](optimizer-{name}) | `mxopt.optimizer.{class_name}` | {summary} "
           f"| {_parity_summary(parity)} |")
    return "\n".join(lines), row


def write_optimizer_pages(folder: pathlib.Path) -> None:
    import mxopt

    folder.mkdir(exist_ok=True)
    mxnet = _fixture("mxnet_registry.json")
    names = mxopt.registered_names()
    rows = []
    for name in names:
        page, row = _optimizer_page(name, mxnet)
        _write(folder / f"{name}.md", page)
        rows.append(row)
    index = [
        "# Optimizers", "",
        "Every optimizer of MXNet 1.9.1's registry, by the name `mxopt.create` and "
        "`mxopt.optimizer.create` take. Each page gives the update formula, the keyword "
        "arguments with mxopt's and MXNet's defaults, and what the trajectories recorded from "
        "MXNet 1.9.1 check (see [Where mxopt and MXNet 1.9.1 differ](../mxnet_differences.md) "
        "for the documented divergences).", "",
        "| Name | MXNet class | Summary | Parity with MXNet 1.9.1 |",
        "| --- | --- | --- | --- |", *rows, "",
        "```{toctree}", ":hidden:", "", *names, "```", "",
    ]
    _write(folder / "index.md", "\n".join(index))
    _prune(folder, {f"{n}.md" for n in names} | {"index.md"})


# -- tutorials -------------------------------------------------------------


def copy_tutorials(folder: pathlib.Path) -> None:
    """Copies the notebooks in; a missing one is left out of the toctree, not an error."""
    folder.mkdir(exist_ok=True)
    found = {p.stem: p for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}
    order = [n for n in TUTORIALS if n in found] + sorted(set(found) - set(TUTORIALS))
    for stem in order:
        target = folder / f"{stem}.ipynb"
        if not target.exists() or target.read_bytes() != found[stem].read_bytes():
            shutil.copyfile(found[stem], target)
    index = [
        "# Tutorials", "",
        "Notebooks from `notebooks/`, executed top to bottom when the docs are built.", "",
        "```{toctree}", ":maxdepth: 1", "", *order, "```", "",
    ]
    _write(folder / "index.md", "\n".join(index))
    _prune(folder, {f"{n}.ipynb" for n in order} | {"index.md"})


# -- the API directive -----------------------------------------------------


def _resolve(name: str):
    """The object a dotted name refers to: the longest importable module, then attributes."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


def _autodoc(name: str) -> list[str]:
    obj = _resolve(name)
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return [f".. autoexception:: {name}"]
    if inspect.isclass(obj):
        # A NamedTuple's members are its fields, "Alias for field number 0".
        members = [] if issubclass(obj, tuple) else ["   :members:"]
        if getattr(obj, "transform", None) is not None:  # its own page documents the function
            members.append("   :exclude-members: transform")
        return [f".. autoclass:: {name}", *members]
    if callable(obj):
        return [f".. autofunction:: {name}"]
    return [f".. autodata:: {name}", "   :no-value:"]


class ApiEntries(SphinxDirective):
    """``.. mxopt-api::`` with one dotted name a line: a summary table, then the entries.

    A module's docstring comes first, and stays out of the table it introduces.
    """

    has_content = True

    def run(self) -> list[nodes.Node]:
        names = [line.strip() for line in self.content if line.strip()]
        modules = [n for n in names if inspect.ismodule(_resolve(n))]
        members = [n for n in names if n not in modules]
        rst = []
        for name in modules:
            rst += [f".. automodule:: {name}", "   :no-members:", ""]
        # Full names throughout: the table must not resolve them against the module
        # an automodule made current.
        rst += [".. py:currentmodule:: None", ""]
        if members:
            rst += [".. autosummary::", "   :nosignatures:", "", *(f"   {n}" for n in members), ""]
        for name in members:
            rst += [*_autodoc(name), ""]
        container = nodes.container()
        self.state.nested_parse(StringList(rst, self.get_source_info()[0]), self.content_offset,
                                container)
        return container.children


def write_benchmark_pages(runs: pathlib.Path, out: pathlib.Path) -> None:
    """For each recorded run ``runs/<run>.json``, its table, its targets table
    (:mod:`benchmarks.targets`) and its leaves plot in ``out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks import suite, targets, trees

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    for recorded in sorted(runs.glob("*.json")):
        run = json.loads(recorded.read_text())
        rows = [suite.Row(**row) for row in run["rows"]]
        (out / f"{recorded.stem}.md").write_text(
            f"`{run['command']}` on {run['machine']}.\n\n{suite.table(rows)}\n")
        (out / f"{recorded.stem}-targets.md").write_text(targets.table(rows) + "\n")
        sweep = [r for r in rows if r.tree.startswith("sweep-")]
        figure, ax = plt.subplots(figsize=(6, 3.5))
        for variant, style in (("optax", "o-"), ("mxopt", "s-"), ("mxopt packed", "^-"),
                               ("roofline", "k--")):
            points = sorted((r.leaves, r.step_ms) for r in sweep if r.variant == variant)
            ax.plot(*zip(*points), style, label=variant)
        ax.set(xscale="log", yscale="log", xlabel=f"leaves ({trees.SWEEP_SIZE:,} values in all)",
               ylabel="Adam step (ms)", title=";".join(run["machine"].split(";")[:2]))
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.legend()
        figure.tight_layout()
        figure.savefig(out / f"{recorded.stem}-leaves.png", dpi=110)
        plt.close(figure)


def _generate(app) -> None:
    # The parity status comes from the tests' own reading of the fixtures.
    if str(ROOT / "tests") not in sys.path:
        sys.path.append(str(ROOT / "tests"))
    write_optimizer_pages(DOCS / "optimizers")
    copy_tutorials(DOCS / "tutorials")
    write_benchmark_pages(DOCS / "benchmarks", DOCS / "_generated")


def setup(app):
    app.add_directive("mxopt-api", ApiEntries)
    app.connect("builder-inited", _generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
