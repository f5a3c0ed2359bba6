"""Python Flock's side of `benches/python_side_by_side.rs`: a Flock user's program
with `BatchSpec(size=100)` and the bundled `SimpleBatchEngine`.

Publishes N `BatchItem`s from outside, lets the `simple_batch` agent summarize them
100 at a time into `BatchSummary` artifacts, waits until idle, checks that every
item was summarized once, and prints the seconds it took (publish to idle) as its
last line.

    python3 -m venv /tmp/flockpy && /tmp/flockpy/bin/pip install flock-core
    FLOCK_AUTO_TRACE=false /tmp/flockpy/bin/python \
        crates/flock/benches/python/simple_batch.py 10000

`FLOCK_AUTO_TRACE=false` turns off Python Flock's default DEBUG logging and span
recording, as flock-rs's side runs without traces.

(See docs/performance.md for installing flock-core 0.5.7 when pip's resolver
refuses its dependencies.)
"""

import asyncio
import sys
import time

from flock import Flock
from flock.engines.examples.simple_batch_engine import (
    BatchItem,
    BatchSummary,
    SimpleBatchEngine,
)
from flock.subscription import BatchSpec


async def main(n: int) -> None:
    # Python Flock's circuit breaker counts every artifact an agent is scheduled
    # for (1,000 by default, then it drops the rest): a program that batches more
    # items raises it.
    flock = Flock(max_agent_iterations=2 * n)
    (
        flock.agent("simple_batch")
        .consumes(BatchItem, batch=BatchSpec(size=100))
        .publishes(BatchSummary)
        .with_engines(SimpleBatchEngine())
    )
    start = time.perf_counter()
    for value in range(n):
        await flock.publish(BatchItem(value=value))
    await flock.run_until_idle()
    elapsed = time.perf_counter() - start
    summaries = await flock.store.get_by_type(BatchSummary)
    items = sum(summary.batch_size for summary in summaries)
    assert items == n, f"{items} of {n} items summarized"
    print(f"python flock: {n} items, {len(summaries)} summaries, {n / elapsed:.0f} items/s")
    print(f"{elapsed:.6f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
