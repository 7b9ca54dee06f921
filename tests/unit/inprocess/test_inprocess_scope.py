"""Query scopes nest and count through context variables (no database needed)."""

from __future__ import annotations

import asyncio
import contextvars
import threading

from dbpulse.inprocess.scope import current_scope, query_counter, record, scope


def test_nested_scopes_count_into_every_enclosing_one() -> None:
    """A statement inside an inner query_counter counts in the outer request scope too."""
    around = current_scope()  # the pytest plugin's scope for this test
    with scope(unit_of_work=True) as outer, query_counter() as inner:
        record(inner, 0.25, "SELECT ?")
    assert (outer.count, inner.count) == (1, 1)
    assert inner.statements == ["SELECT ?"]
    assert outer.statements == []
    assert inner.unit() is outer
    assert current_scope() is around


def test_scope_follows_asyncio_tasks_but_not_plain_threads() -> None:
    """Tasks inherit the scope; a thread without a copied context does not."""
    seen: list[object] = []

    async def child() -> None:
        seen.append(current_scope())

    with query_counter() as counter:
        asyncio.run(child())
        thread = threading.Thread(target=lambda: seen.append(current_scope()))
        thread.start()
        thread.join()
        ctx = contextvars.copy_context()
        ctx.run(lambda: seen.append(current_scope()))
    assert seen == [counter, None, counter]
