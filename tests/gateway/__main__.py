"""python -m tests.gateway --config FILE

Prints ``READY http://HOST:PORT`` on stdout once listening; logs go to stderr. SIGTERM or SIGINT
stops every function instance and exits 0.
"""
from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import sys

from .app import Gateway
from .config import ConfigError, load_config
from .routing import RoutesError


async def serve(config) -> int:
    gateway = Gateway(config)
    try:
        url = await gateway.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            logging.getLogger("gateway").error("Address already in use: %s:%s", config.host, config.port)
        else:
            logging.getLogger("gateway").error("cannot start: %s", exc)
        await gateway.stop()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {url}", flush=True)
    logging.getLogger("gateway").info("listening on %s (functions: %s)", url,
                                      ", ".join(sorted(gateway.pools)) or "none")
    await stop.wait()
    logging.getLogger("gateway").info("stopping")
    await gateway.stop()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.gateway", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="gateway config JSON")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except (ConfigError, RoutesError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
