"""Sphinx configuration of galviewer's documentation (built in CI with warnings as errors)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import galviewer  # noqa: E402

project = "galviewer"
author = "galviewer developers"
release = version = galviewer.__version__
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.intersphinx"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "models/**", "screenshot.py"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_custom_sections = [("Signals", "params_style")]
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections state the types
autodoc_default_options = {"members": True, "show-inheritance": False}
intersphinx_mapping = {}
nitpicky = False
html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"galviewer {release}"
