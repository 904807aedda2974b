"""A Python service that calls a Rust service inside a tracked function.

Usage: python call_rust_service.py URL
Prints one JSON line with the Python span's trace and span ids, then flushes to Opik.
"""
import json
import sys
import urllib.request

import opik
from opik import opik_context, track


@track(name="python caller")
def call(url: str) -> str:
    headers = opik_context.get_distributed_trace_headers()
    request = urllib.request.Request(
        url,
        data=json.dumps({"prompt": "from python"}).encode(),
        headers={**headers, "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read().decode()
    print(json.dumps({"trace_id": headers["opik_trace_id"], "span_id": headers["opik_parent_span_id"]}), flush=True)
    return body


if __name__ == "__main__":
    call(sys.argv[1])
    opik.flush_tracker()
