"""The network: :class:`~galviewer.core.nn.restormer.RestormerConfig` and its module, checkpoints
(safetensors with their metadata; never unpickled code) and the shipped models."""
