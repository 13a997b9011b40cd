"""Sphinx configuration of mxopt's documentation: ``sphinx-build -W -b html docs docs/_build``."""

import pathlib
import re
import sys

DOCS = pathlib.Path(__file__).parent
sys.path[:0] = [str(DOCS.parent), str(DOCS / "_ext")]  # mxopt from this checkout; mxopt_docs

import mxopt  # noqa: E402

project = "mxopt"
author = "The mxopt authors"
copyright = "The mxopt authors, Apache-2.0"
release = version = mxopt.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "mxopt_docs",  # the optimizer pages, the tutorials and the mxopt-api directive
]
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints", "_generated"]
templates_path = []

# Docstrings are Google-style ("Args:", "Returns:", "Raises:").
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# Signatures name these aliases instead of spelling out their unions. chex's
# ArrayTree must be named so: it is recursive, through forward references that
# resolve only in chex, and without it a signature's hints stay unresolved strings.
autodoc_type_aliases = {
    "chex.ArrayTree": "chex.ArrayTree",
    "MultiplierSpec": "mxopt.multipliers.MultiplierSpec",
    "Schedule": "mxopt.schedules.Schedule",
}
autosummary_generate = False  # mxopt-api writes the entries on the page itself

myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# The tutorials run top to bottom at every build: this is how CI runs the notebooks.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 180
nb_merge_streams = True



def _alias_names(app, what, name, obj, options, signature, return_annotation):
    """Prints ``name`` where Sphinx 9 prints ``TypeAliasForwardRef('name')`` (in a union)."""
    def fix(text):
        return text and re.sub(r"TypeAliasForwardRef\('([^']+)'\)", r"\1", text)
    return fix(signature), fix(return_annotation)


def setup(app):
    app.connect("autodoc-process-signature", _alias_names)


html_theme = "sphinx_book_theme"
html_title = "mxopt"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
