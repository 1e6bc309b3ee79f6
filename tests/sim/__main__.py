"""Run the Atlassian simulator.

    python -m tests.sim --host 127.0.0.1 --port 0 [--specs DIR] [--consent-page]

--specs defaults to $ATLASSIAN_SPECS_DIR, else ../shared/specs (beside the repository).

Prints exactly one line `READY http://<host>:<port>` on stdout once listening; logs go to
stderr. SIGTERM / SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web

from .app import build_app
from .spec import SPECS_DIR_VAR, default_specs_dir


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = let the OS pick")
    p.add_argument("--specs", default=str(default_specs_dir()),
                   help=f"directory with Atlassian's OpenAPI files (default: ${SPECS_DIR_VAR}, else "
                        "../shared/specs)")
    p.add_argument("--consent-page", action="store_true",
                   help="show an Accept/Deny consent page instead of auto-consenting")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args) -> None:
    app = build_app(args.specs, consent_page=args.consent_page)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    sock = site._server.sockets[0]  # type: ignore[union-attr]
    port = sock.getsockname()[1]
    host = args.host if ":" not in args.host else f"[{args.host}]"
    sys.stdout.write(f"READY http://{host}:{port}\n")
    sys.stdout.flush()
    logging.getLogger("sim").info("listening on http://%s:%s (consent page: %s)", host, port,
                                  args.consent_page)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        logging.getLogger("sim").info("stopping")
        await runner.cleanup()


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:  # pragma: no cover - signal handler normally wins
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
