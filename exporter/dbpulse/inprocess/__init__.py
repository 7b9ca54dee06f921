"""In-process mode: SQLAlchemy engine and pool hooks that feed Prometheus metrics.

Modules, one concern each: ``instrumentation`` (lifecycle), ``metrics`` (the metric set
per registry), ``pool``, ``queries``, ``transactions``, ``nplusone``, ``fingerprint``
(pure), ``scope`` (contextvars, ``query_counter``), ``middleware`` (ASGI/WSGI), ``lint``
(pool configuration), ``guard`` (hooks never raise), ``patching`` (undoable
instance-attribute wrappers), ``callsite``, ``tracing`` (opt-in statement spans and
traceparent comments). Importing this package registers nothing.
"""
