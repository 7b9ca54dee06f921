"""Plan reading and advice (pure): shape hash, summary, scrubbing, each rule's finding."""

from __future__ import annotations

import json
from typing import Any

from dbpulse.plans.advice import CatalogFacts, ForeignKey, Thresholds, advise
from dbpulse.plans.tree import plan_hash, root, scrubbed, summary


def seq(relation: str, rows: float, filter_: str | None = None, alias: str | None = None) -> Any:
    node: dict[str, Any] = {
        "Node Type": "Seq Scan",
        "Relation Name": relation,
        "Schema": "public",
        "Alias": alias or relation,
        "Plan Rows": rows,
        "Plan Width": 16,
    }
    if filter_:
        node["Filter"] = filter_
    return node


def index_scan(relation: str, index: str, cond: str, alias: str | None = None) -> Any:
    return {
        "Node Type": "Index Scan",
        "Relation Name": relation,
        "Schema": "public",
        "Alias": alias or relation,
        "Index Name": index,
        "Index Cond": cond,
        "Plan Rows": 1,
        "Plan Width": 16,
    }


FACTS = CatalogFacts(table_rows={("public", "orders"): 1_000_000, ("public", "tiny"): 50})


def test_root_accepts_explain_output_as_list_or_text() -> None:
    """EXPLAIN's JSON as psycopg returns it (a list) or as text gives the top node."""
    explained = [{"Plan": seq("orders", 10)}]
    assert root(explained)["Relation Name"] == "orders"
    assert root(json.dumps(explained))["Node Type"] == "Seq Scan"


def test_hash_ignores_estimates_but_not_shape() -> None:
    """Row and cost estimates do not change the hash; a different access path does."""
    a = seq("orders", 10, "(customer_id = $1)")
    b = {**a, "Plan Rows": 99999, "Total Cost": 123.4}
    c = index_scan("orders", "orders_customer_idx", "(customer_id = $1)")
    assert plan_hash(a) == plan_hash(b)
    assert plan_hash(a) != plan_hash(c)


def test_summary_names_access_paths() -> None:
    """A scan is said as EXPLAIN says it; a join lists its scans."""
    assert summary(seq("orders", 10)) == "Seq Scan on orders"
    join = {
        "Node Type": "Hash Join",
        "Plans": [seq("orders", 10), {"Node Type": "Hash", "Plans": [seq("customers", 5)]}],
    }
    assert summary(join) == "Hash Join (Seq Scan on orders, Seq Scan on customers)"


def test_scrubbed_plan_keeps_names_and_drops_constants() -> None:
    """Constants in conditions become placeholders; relation and index names stay."""
    node = index_scan("users", "users_email_idx", "((email)::text = 'alice@example.com'::text)")
    node["Filter"] = "(age > 42)"
    node["Output"] = ["id", "'secret'::text"]
    clean = scrubbed(node)
    text = json.dumps(clean)
    assert "alice" not in text
    assert "42" not in text
    assert "secret" not in text
    assert clean["Index Name"] == "users_email_idx"
    assert clean["Relation Name"] == "users"
    assert clean["Index Cond"] == "((email)::text = '?'::text)"


def test_selective_seq_scan_on_large_table_suggests_the_index() -> None:
    """A selective filter over a large table names the index to build concurrently."""
    findings = advise(seq("orders", 10, "(o.customer_id = $1)", alias="o"), FACTS)
    assert [f.rule for f in findings] == ["seq-scan-large-table"]
    assert findings[0].fix == "CREATE INDEX CONCURRENTLY ON public.orders (customer_id);"


def test_seq_scan_reading_most_rows_or_small_table_is_fine() -> None:
    """No finding for an unselective filter, a small table, or no filter at all."""
    assert advise(seq("orders", 900_000, "(status = $1)"), FACTS) == []
    assert advise(seq("tiny", 1, "(id = $1)"), FACTS) == []
    assert advise(seq("orders", 1_000_000), FACTS) == []
    assert advise(seq("unknown", 1, "(id = $1)"), FACTS) == []


def test_nested_loop_with_many_outer_rows_is_the_n_plus_one_of_sql() -> None:
    """A nested loop whose outer side has many rows is flagged; a Memoize inner is not."""
    outer = seq("orders", 50_000)
    inner = index_scan("customers", "customers_pkey", "(id = orders.customer_id)")
    loop = {"Node Type": "Nested Loop", "Join Type": "Inner", "Plans": [outer, inner]}
    rules = [f.rule for f in advise(loop, CatalogFacts())]
    assert rules == ["nested-loop-many-loops"]
    memo = {**loop, "Plans": [outer, {"Node Type": "Memoize", "Plans": [inner]}]}
    assert advise(memo, CatalogFacts()) == []
    small = {**loop, "Plans": [seq("orders", 10), inner]}
    assert advise(small, CatalogFacts(), Thresholds(nested_loops=1000)) == []


def test_sort_and_hash_beyond_work_mem_spill() -> None:
    """A sort or hash larger than work_mem (hash: x hash_mem_multiplier) is flagged."""
    facts = CatalogFacts(work_mem_bytes=4 * 1024 * 1024, hash_mem_multiplier=2.0)
    big_sort = {"Node Type": "Sort", "Sort Key": ["created_at DESC"], "Plan Rows": 1e6,
                "Plan Width": 100, "Plans": [seq("events", 1e6)]}  # fmt: skip
    found = advise(big_sort, facts)
    assert [f.rule for f in found] == ["sort-spills"]
    assert "created_at DESC" in found[0].fix
    small_sort = {**big_sort, "Plan Rows": 100}
    assert advise(small_sort, facts) == []
    hash_node = {"Node Type": "Hash", "Plan Rows": 60_000, "Plan Width": 100}  # ~5.7 MB
    assert advise(hash_node, facts) == []  # fits in 8 MB
    assert [f.rule for f in advise({**hash_node, "Plan Rows": 200_000}, facts)] == ["hash-spills"]


def test_join_on_unindexed_foreign_key_names_the_index() -> None:
    """A join condition on foreign key columns no index covers suggests that index."""
    join = {
        "Node Type": "Hash Join",
        "Hash Cond": "(i.order_id = o.id)",
        "Plans": [
            seq("order_items", 100_000, alias="i"),
            {"Node Type": "Hash", "Plans": [seq("orders", 10, alias="o")]},
        ],
    }
    fk = ForeignKey("public", "order_items", "order_items_order_id_fkey", ("order_id",))
    found = advise(join, CatalogFacts(unindexed_foreign_keys=(fk,)))
    assert [f.rule for f in found] == ["foreign-key-join-without-index"]
    assert found[0].fix == "CREATE INDEX CONCURRENTLY ON public.order_items (order_id);"
    other = ForeignKey("public", "order_items", "order_items_sku_fkey", ("sku",))
    assert advise(join, CatalogFacts(unindexed_foreign_keys=(other,))) == []
