"""``dbpulse doctor``: fetch facts about a database once, then judge them with pure checks.

``facts`` holds the data shapes, ``fetch`` the only I/O, ``checks`` the pure judgement
(each finding carries its explanation and fix), ``render`` the table and JSON output and
``command`` the exit codes.
"""
