"""Shared test helpers: session fixtures, sidecar processes, clocks, waiting and logging state."""
