"""Reads a trace file written by flock-rs with stock DuckDB (the PyPI package) and runs
the user guide's query verbatim: the flushes of `payment_batching --fast` must all be
there, with their sizes and reasons."""

import sys

import duckdb

path = sys.argv[1] if len(sys.argv) > 1 else ".flock/traces.duckdb"
conn = duckdb.connect(path, read_only=True)
batches = conn.execute("""
    SELECT
        name,
        attributes->'$.batch_size' as size,
        attributes->'$.flush_reason' as reason,
        duration_ms
    FROM spans
    WHERE name LIKE '%batch%'
    ORDER BY start_time DESC
    LIMIT 20
""").fetchall()
for name, size, reason, duration in batches:
    print(f"{name}: {size} items, {reason} trigger, {duration}ms")

reasons = {reason.strip('"') for _, _, reason, _ in batches}
total = sum(int(size) for _, size, _, _ in batches)
assert reasons == {"size", "timeout", "shutdown"}, reasons
assert total == 110, total
print(f"stock DuckDB {duckdb.__version__}: {len(batches)} flushes, {total} transactions, reasons {sorted(reasons)}")
