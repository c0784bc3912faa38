"""A response-mutating reverse proxy: one conforming engine behind it, a known defect in front.

``python -m glmverify.faultproxy serve --upstream URL --fault NAME`` runs one proxy in the
foreground until SIGTERM/SIGINT (it prints vLLM's "Application startup complete." line, so the
harness's readiness wait works on it); ``python -m glmverify.faultproxy list`` lists the faults.
``proxy_row`` makes a matrix row whose "engine" is that command, for the reliability and security
tests: the harness launches, probes, stops and records it like any process engine.
"""
from __future__ import annotations

import argparse
import os
import signal
import threading

from .catalogue import FAULTS, leak_secret
from .server import FaultProxy


def proxy_row(row: dict, row_id: str, upstream: str, fault: str = "control_passthrough",
              leak_env: list[str] = (), secret_env: list[str] = ()) -> dict:
    """A matrix row (matrix.yaml shape) whose "engine" is this proxy, launched as a process in front
    of ``upstream``: the harness launches, probes, stops and records it like any process engine, while
    the answers come from the real engine behind it (with ``fault`` applied)."""
    args = ["--upstream", upstream, "--fault", fault, "--host", "{host}", "--port", "{port}"]
    for name in leak_env:
        args += ["--leak-env", name]
    launch = {"launcher": "process", "command": ["{python}", "-m", "glmverify.faultproxy", "serve"], "args": args,
              "startup_timeout": 120}
    if secret_env:
        launch["secret_env"] = list(secret_env)
    return {**row, "id": row_id, "launch": launch,
            "description": f"fault proxy ({fault}) in front of a running engine, launched as a process"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m glmverify.faultproxy", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the faults")
    s = sub.add_parser("serve", help="run one proxy in the foreground")
    s.add_argument("--upstream", required=True, help="base URL of the conforming engine")
    s.add_argument("--fault", default="control_passthrough", choices=sorted(FAULTS))
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--leak-env", action="append", default=[], metavar="NAME",
                   help="test aid: print NAME=value at start and append the values to chat answers, as a "
                        "careless engine would (the harness must redact both)")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for name, f in FAULTS.items():
            print(f"{name:32s} {f.description}")
        return 0
    f = leak_secret(args.leak_env, FAULTS[args.fault]) if args.leak_env else FAULTS[args.fault]
    for name in args.leak_env:
        print(f"environment: {name}={os.environ.get(name, '')}", flush=True)
    proxy = FaultProxy(args.upstream, f, host=args.host, port=args.port).start()
    print(f"fault proxy {f.name} on {proxy.url} -> {args.upstream}", flush=True)
    print("Application startup complete.", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *a: stop.set())
    stop.wait()
    proxy.stop()
    return 0

