"""Data shipped with galviewer: model weights (models/) and demo data.

This folder is installed as the ``galviewer.resources`` package (see
pyproject.toml), so :func:`galviewer.core.nn.resources.resource_path` finds it from
an editable install and from a wheel alike.
"""
