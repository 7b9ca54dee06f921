"""Query plans: reading EXPLAIN JSON, advice from it, and regressions against a baseline.

Pure code only (no I/O): the sidecar's ``regressions`` collector and the in-process plan
capture fetch the plans and counters, these modules decide what they mean.

- :mod:`dbpulse.plans.tree`: walk a plan, hash its shape, say it in one line, scrub it;
- :mod:`dbpulse.plans.advice`: findings with a fix, in the seed handbook's checklist;
- :mod:`dbpulse.plans.regressions`: per-statement time per call against its own past.
"""
