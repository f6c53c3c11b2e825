"""The --serve flags every executable has, and starting the server from them."""

from __future__ import annotations

import os
import sys
import time

from edge.runtime.notify import NOTIFIER

from .http import MAX_BODY, AddressError, Server, parse_address

TOKEN_ENV = "EDGEPACK_SERVE_TOKEN"


def add_flags(p) -> None:
    g = p.add_argument_group("serving (a local HTTP interface; docs/serve.md)")
    g.add_argument("--serve", metavar="[HOST:]PORT|unix:PATH",
                   help="keep the model loaded and answer HTTP requests (a bare PORT binds to 127.0.0.1 only)")
    g.add_argument("--serve-token", metavar="T",
                   help=f"every request needs 'Authorization: Bearer T' (default: ${TOKEN_ENV} if set)")
    g.add_argument("--serve-max-body", type=int, default=MAX_BODY, metavar="BYTES",
                   help="largest request body accepted (default %(default)s); larger ones get 413")


def check(args, error) -> None:
    """Flag errors before anything is loaded; `error` is the CLI's InputError."""
    if args.serve is None:
        if args.serve_token:
            raise error("--serve-token goes with --serve")
        return
    try:
        parse_address(args.serve)
    except AddressError as e:
        raise error(str(e)) from None
    if not 1 <= args.serve_max_body <= 1 << 31:
        raise error(f"--serve-max-body {args.serve_max_body}: give 1..{1 << 31} bytes")


def start(args, routes: dict, name: str, error) -> Server:
    """Bind and start serving in background threads; a bind failure is the user's to fix (InputError)."""
    address = parse_address(args.serve)
    token = args.serve_token or os.environ.get(TOKEN_ENV) or None
    try:
        server = Server(address, routes, token, args.serve_max_body).start()
    except (OSError, AddressError) as e:
        raise error(f"--serve {args.serve}: cannot listen there ({getattr(e, 'strerror', None) or e})") from None
    if not address.loopback:
        print(f"{name}: warning: serving on {server.url}, reachable from other machines"
              + ("" if token else "; anyone there can use it (set --serve-token)"), file=sys.stderr, flush=True)
    print(f"{name}: serving on {server.url}" + (" (token required)" if token else ""), file=sys.stderr, flush=True)
    return server


def wait_for_stop(server: Server) -> None:
    """Until Ctrl-C or SIGTERM (edge/runtime/stop.py turns both into KeyboardInterrupt here); systemd's watchdog
    hears from us while the server's thread runs."""
    try:
        while True:
            if server.serving:
                NOTIFIER.alive()
            time.sleep(NOTIFIER.interval or 3600)
    except KeyboardInterrupt:
        NOTIFIER.stopping()
        return
