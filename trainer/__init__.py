"""Training tools for galviewer models (``galviewer-train``); imports galviewer.core, never galviewer.qt."""
