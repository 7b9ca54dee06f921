"""``dbpulse watch-migration``: follow a running migration live in the terminal.

``rate`` is the pure progress math, ``model`` the pure state (what is in flight, when to
stop), ``fetch`` the catalog queries, ``render`` the terminal output and ``command`` the
loop with its exit codes.
"""
