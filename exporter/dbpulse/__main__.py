"""`python -m dbpulse` is the same as the `dbpulse` console script."""

from __future__ import annotations

from dbpulse.cli import main

raise SystemExit(main())
