"""``dbpulse watch-migration``: follow a running migration live in the terminal.

``rate`` is the pure progress math, ``model`` the pure state (what is in flight, when to
stop), ``steps`` the migration's steps folded from its backends' activity, ``catalog`` the
indexes and constraints compared before and after, ``summary`` the final report and exit
code, ``fetch`` the catalog queries, ``background`` the probe and sampler threads,
``target`` what is followed (a command, an application name, pids), ``render`` and
``screen`` the terminal output, and ``command`` the loop.
"""
