"""A Python web service whose tracked handler joins the caller's trace.

Usage: python tracked_web_service.py
Listens on 127.0.0.1 (an ephemeral port, printed as `PORT n`), answers POST requests from a
`@track` function given `opik_distributed_trace_headers=request.headers`, flushes after each
request, and stops after one request.
"""
import json
from http.server import BaseHTTPRequestHandler, HTTPServer

import opik
from opik import opik_context, track


@track(name="python handler")
def handle(body: str) -> dict:
    span = opik_context.get_current_span_data()
    return {"echo": body, "span_id": span.id, "trace_id": span.trace_id}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        body = self.rfile.read(length).decode()
        headers = {k.lower(): v for k, v in self.headers.items()}
        result = handle(body, opik_distributed_trace_headers=headers)
        opik.flush_tracker()
        payload = json.dumps(result).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = HTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.handle_request()
