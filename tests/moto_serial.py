"""moto's server, handling one AWS request at a time.

moto's backends are plain Python dicts without locks (getmoto/moto#372, "Moto running into
thread-safety issues"): its threaded server answers concurrent DynamoDB writes with a 500
(`RuntimeError: dictionary changed size during iteration`) and can interleave a conditional
write's check with another's update — the atomicity per item that our ledger's conditional claims
rely on, and that DynamoDB itself guarantees. Our jobs write to the table concurrently, so the dev
stack serializes the requests: connections are still accepted in parallel (keep-alive works), and
each request runs under one lock, which is what DynamoDB's per-item atomicity looks like from
outside.

    python -m tests.moto_serial -H 127.0.0.1 -p 5000
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class Serialized:
    """A WSGI app that lets one request at a time into `app`, its response body included."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            # Materialize the body under the lock: moto may build it lazily from its dicts.
            return list(self.app(environ, start_response))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, Serialized(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
