"""Unit: pure code (builds, selection, settings, parsing, rendering), no server."""
