"""The official Python SDK's export rate, for benches/python_peer.rs.

Reads a job from stdin: {"n": N, "payloads": [...]} (the fields of an LLM span, as the Rust
side records them). Creates N finished LLM spans in one trace with `Opik.span`, each with
its start and end time so that one write per span is queued, then `flush`es. Prints one
JSON line: the seconds from the first span to the end of the flush, and the process's CPU
seconds over the same stretch (`time.process_time`, every thread of the process).

Configured by the environment, as users configure the SDK (OPIK_URL_OVERRIDE, ...).
"""
import datetime
import json
import sys
import time

import opik
from opik import id_helpers


def main() -> None:
    job = json.load(sys.stdin)
    n, payloads = job["n"], job["payloads"]
    client = opik.Opik()
    trace_id = id_helpers.generate_id()
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        p = payloads[i % len(payloads)]
        now = datetime.datetime.now(datetime.timezone.utc)
        client.span(
            trace_id=trace_id,
            name=p["name"],
            type="llm",
            start_time=now,
            end_time=now,
            input=p["input"],
            output=p["output"],
            metadata=p["metadata"],
            model=p["model"],
            provider=p["provider"],
            usage=p["usage"],
            tags=p["tags"],
        )
    queued = time.perf_counter() - start
    flushed = client.flush(timeout=600)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu
    client.end()
    print(json.dumps({
        "spans": n,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "queue_seconds": queued,
        "flushed": flushed,
        "trace_id": trace_id,
    }))


if __name__ == "__main__":
    main()
