"""A process that behaves like an engine's lifecycle (not its API): logs, optionally dies, serves /health.

Used only to test launching, readiness and cleanup; the conformance checks run against real vLLM.
usage: slow_server.py PORT [--die-after S] [--ready-after S] [--pidfile F] [--hang]
"""
import argparse
import http.server
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("--die-after", type=float, default=None)
ap.add_argument("--ready-after", type=float, default=0.0)
ap.add_argument("--pidfile", default=None)
args = ap.parse_args()
if args.pidfile:
    with open(args.pidfile, "w") as f:
        f.write(str(os.getpid()))
print("Loading safetensors checkpoint shards: 0% Completed", flush=True)
start = time.time()
if args.die_after is not None:
    time.sleep(args.die_after)
    print("RuntimeError: CUDA out of memory (simulated startup failure)", flush=True)
    sys.exit(3)
time.sleep(args.ready_after)


class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *a):
        pass


print("Application startup complete.", flush=True)
http.server.HTTPServer(("127.0.0.1", args.port), H).serve_forever()
