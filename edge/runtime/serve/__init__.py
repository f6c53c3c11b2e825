"""Serve mode: the local HTTP interface of every executable (standard library only)."""
