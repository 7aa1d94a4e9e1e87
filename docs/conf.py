"""Sphinx configuration of the airflow-provider-conpeek documentation.

Build with ``make docs`` (warnings are errors). Needs nothing beyond Sphinx itself: the
theme is the built-in alabaster, there is no Markdown parser and nothing is fetched from the
network (no intersphinx).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# autodoc imports the provider, which imports Airflow, which reads its configuration on
# import. Unless AIRFLOW_HOME is set, point it at a throw-away home, so that building the
# docs neither creates ~/airflow nor reads a local airflow.cfg. This must happen before
# anything imports airflow.
_airflow_home = tempfile.mkdtemp(prefix="conpeek-docs-airflow-")
atexit.register(shutil.rmtree, _airflow_home, ignore_errors=True)
os.environ.setdefault("AIRFLOW_HOME", _airflow_home)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
sys.path.insert(0, str(ROOT))

from airflow_provider_conpeek import __version__  # noqa: E402 - needs the path above

# -- Project -----------------------------------------------------------------------------

project = "airflow-provider-conpeek"
author = "airflow-provider-conpeek developers"
copyright = "airflow-provider-conpeek developers"
version = release = __version__

# -- General -----------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]
nitpicky = False
default_role = "literal"
pygments_style = "sphinx"

# -- autodoc -----------------------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autodoc_default_options = {"show-inheritance": True}

# -- HTML --------------------------------------------------------------------------------

html_theme = "alabaster"
html_title = f"{project} {release}"
html_theme_options = {
    "description": "Apache Airflow provider for Conpeek",
    "fixed_sidebar": True,
    "show_relbars": True,
}
html_static_path: list[str] = []
html_show_sourcelink = False

# -- conpeek-extras ----------------------------------------------------------------------
# ``.. conpeek-extras::`` is the table of the connection's extras, generated from their one
# description (airflow_provider_conpeek.connection.EXTRA_FIELDS): no hand-copied table to
# drift. An optional argument lists the extras to show, e.g. ``.. conpeek-extras:: max_pages``.


class ConpeekExtrasDirective(SphinxDirective):
    optional_arguments = 1
    final_argument_whitespace = True

    def run(self) -> list[nodes.Node]:
        from airflow_provider_conpeek import connection
        from airflow_provider_conpeek.connection.reference import extras_table

        source = connection.__file__
        self.env.note_dependency(source)  # rebuild the page when the description changes
        names = self.arguments[0].split() if self.arguments else None
        try:
            lines = extras_table(connection.EXTRA_FIELDS, names)
        except ValueError as error:
            raise self.error(f"conpeek-extras: {error}") from None
        parent = nodes.container()
        self.state.nested_parse(StringList(lines, source), self.content_offset, parent)
        return parent.children


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("conpeek-extras", ConpeekExtrasDirective)
    return {"parallel_read_safe": True}
