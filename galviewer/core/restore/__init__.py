"""Restoration: the engine (tiles, flips, batching, device), the one :mod:`~galviewer.core.restore.pipeline`
every path runs, its post-steps (rescaling, anchoring, consistency, point sources), the verdict, batches,
regions and figures."""
