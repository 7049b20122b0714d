"""Collectors: one module per telemetry format, all feeding the same :class:`Batch`."""
