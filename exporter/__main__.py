"""`python -m exporter` is the same as the `dbpulse` console script."""

from __future__ import annotations

from exporter.cli import main

raise SystemExit(main())
