"""A small HTTP/1.1 server for executables (`--serve`), standard library only: exact routes (no file is ever
served from disk), limits on the request line, headers and body, a read timeout, a bound on open connections,
keep-alive, an optional bearer token, and streamed responses (Server-Sent Events) that a slow client cannot
turn into a stall for anyone else: every connection has its own thread, and a write that does not finish
within the timeout closes that connection only."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import socketserver
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from hmac import compare_digest
from urllib.parse import parse_qs, unquote

MAX_LINE = 8192  # request line and each header line
MAX_HEADERS = 64
MAX_BODY = 64 << 20  # default; `--serve-max-body` changes it
IO_TIMEOUT_S = 10.0  # a request must arrive, and each write complete, within this
MAX_CONNECTIONS = 256
TOKEN_COOKIE = "edgepack_token"
REASONS = {200: "OK", 201: "Created", 204: "No Content", 303: "See Other", 400: "Bad Request",
           401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           409: "Conflict", 411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
           415: "Unsupported Media Type", 422: "Unprocessable Content", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable"}


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class AddressError(ValueError):
    pass


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes = b""


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None  # sent as it comes, then the connection closes

    @classmethod
    def json(cls, value, status: int = 200) -> Response:
        return cls(status, json.dumps(value, allow_nan=False).encode() + b"\n")

    @classmethod
    def error(cls, status: int, message: str, headers: dict | None = None) -> Response:
        r = cls.json({"error": message, "status": status}, status)
        r.headers.update(headers or {})
        return r


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Address:
    family: int
    address: tuple | str
    loopback: bool

    def describe(self, bound=None) -> str:
        if self.family == socket.AF_UNIX:
            return f"unix:{self.address}"
        host, port = (bound or self.address)[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def parse_address(text: str) -> Address:
    """`PORT`, `HOST:PORT`, `[IPv6]:PORT` or `unix:PATH`; a bare port binds to 127.0.0.1 only."""
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise AddressError("--serve unix:PATH needs a path")
        return Address(socket.AF_UNIX, path, True)
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise AddressError(f"--serve {text}: give [HOST:]PORT (PORT 0..65535) or unix:PATH")
    try:
        ip = ipaddress.ip_address(host or "0.0.0.0")
    except ValueError:
        raise AddressError(f"--serve {text}: {host!r} is no IP address (give one, e.g. 127.0.0.1 or 0.0.0.0)") \
            from None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return Address(family, (str(ip), int(port)), ip.is_loopback)


class _Connection(socketserver.StreamRequestHandler):
    timeout = IO_TIMEOUT_S

    def handle(self) -> None:
        server: Server = self.server.owner
        if not server.enter(self):
            self._send(Response.error(503, f"too many connections (at most {MAX_CONNECTIONS})"), keep=False)
            return
        try:
            keep = True
            while keep and not server.closing:
                try:
                    request = self._read_request(server.max_body)
                except HttpError as e:
                    self._send(Response.error(e.status, e.message), keep=False)
                    return
                except (TimeoutError, OSError):
                    return  # an idle keep-alive connection, or a client gone: nothing to answer
                if request is None:
                    return
                keep = request.headers.get("connection", "").lower() != "close"
                response = server.respond(request)
                keep = keep and response.stream is None and not server.closing
                if not self._send(response, keep):
                    return
        finally:
            server.leave(self)

    def _line(self, what: str, status: int) -> str:
        raw = self.rfile.readline(MAX_LINE + 1)
        if len(raw) > MAX_LINE:
            raise HttpError(status, f"{what} longer than {MAX_LINE} bytes")
        return raw.decode("latin-1")  # HTTP's own encoding: any byte decodes

    def _read_request(self, max_body: int) -> Request | None:
        line = self._line("request line", 414)
        if not line:
            return None
        parts = line.strip().split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HttpError(400, "malformed request line (expected METHOD PATH HTTP/1.1)")
        method, target, _ = parts
        headers: dict[str, str] = {}
        for count in range(MAX_HEADERS + 1):
            h = self._line("a header line", 431)
            if h in ("\r\n", "\n", ""):
                break
            if count == MAX_HEADERS:
                raise HttpError(431, f"more than {MAX_HEADERS} headers")
            name, sep, value = h.partition(":")
            if not sep or not name.strip() or name != name.strip():
                raise HttpError(400, "malformed header line")
            headers[name.lower()] = value.strip()
        if "transfer-encoding" in headers:
            raise HttpError(411, "chunked bodies are not accepted: send Content-Length")
        length = headers.get("content-length", "0")
        if not length.isdigit():
            raise HttpError(400, "Content-Length is not a number")
        if int(length) > max_body:
            raise HttpError(413, f"body of {int(length):,} bytes; the limit is {max_body:,}")
        body = self.rfile.read(int(length)) if int(length) else b""
        if len(body) < int(length):
            raise HttpError(400, "body shorter than Content-Length")
        path, _, query = target.partition("?")
        return Request(method, unquote(path), {k: v[-1] for k, v in parse_qs(query).items()}, headers, body)

    def _send(self, r: Response, keep: bool) -> bool:
        head = [f"HTTP/1.1 {r.status} {REASONS.get(r.status, 'Status')}", f"Content-Type: {r.content_type}",
                "Cache-Control: no-store", "X-Content-Type-Options: nosniff",
                *(f"{k}: {v}" for k, v in r.headers.items())]
        if r.stream is None:
            head += [f"Content-Length: {len(r.body)}", f"Connection: {'keep-alive' if keep else 'close'}"]
        else:
            head += ["Connection: close"]
        try:
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + r.body)
            for chunk in r.stream or ():
                self.wfile.write(chunk)
            return True
        except (OSError, ValueError):  # the client went away or stopped reading for IO_TIMEOUT_S
            return False
        finally:
            if r.stream is not None and hasattr(r.stream, "close"):
                r.stream.close()


class _TCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128  # the listen backlog: a burst of clients connecting at once waits, never resets


class _TCP6(_TCP):
    address_family = socket.AF_INET6


class _Unix(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128


def _routes_of(path: str) -> list[str]:
    """The routes a path may answer to, the most specific first: /v1/commands/next/takes →
    itself, /v1/commands/next/*, /v1/commands/*, /v1/*."""
    parts = path.split("/")
    return [path, *("/".join(parts[:i]) + "/*" for i in range(len(parts) - 1, 1, -1))]


class Server:
    """routes: {(METHOD, PATH): handler}; PATH /a/b/* takes every path under /a/b/. Every request needs the token
    when one is set: `Authorization: Bearer T`, or the cookie a browser gets from `GET /?token=T` (EventSource
    cannot send headers)."""

    def __init__(self, address: Address, routes: dict[tuple[str, str], Handler], token: str | None = None,
                 max_body: int = MAX_BODY, log=None):
        self.address, self.routes, self.token, self.max_body = address, routes, token or None, max_body
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.closing = False
        self._lock = threading.Lock()
        self._open: set[_Connection] = set()
        self.errors = 0  # handler failures answered with 500
        self._server = self._bind()
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="edgepack-serve", daemon=True)

    def _bind(self):
        a = self.address
        if a.family == socket.AF_UNIX:
            if os.path.exists(a.address):
                if not stat.S_ISSOCK(os.stat(a.address).st_mode):
                    raise AddressError(f"--serve unix:{a.address}: exists and is not a socket")
                os.unlink(a.address)  # a socket left by an earlier run that did not stop cleanly
            return _Unix(a.address, _Connection)
        return (_TCP6 if a.family == socket.AF_INET6 else _TCP)(a.address, _Connection)

    @property
    def url(self) -> str:
        return self.address.describe(None if self.address.family == socket.AF_UNIX
                                     else self._server.server_address)

    @property
    def serving(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> Server:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting, close every open connection (streams end), remove a unix socket."""
        self.closing = True
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for c in list(self._open):
                try:
                    c.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self.address.family == socket.AF_UNIX:
            try:
                os.unlink(self.address.address)
            except OSError:
                pass

    def enter(self, c: _Connection) -> bool:
        with self._lock:
            if len(self._open) >= MAX_CONNECTIONS:
                return False
            self._open.add(c)
            return True

    def leave(self, c: _Connection) -> None:
        with self._lock:
            self._open.discard(c)

    @property
    def connections(self) -> int:
        return len(self._open)

    def _authorized(self, r: Request) -> bool:
        if self.token is None:
            return True
        given = r.headers.get("authorization", "")
        cookies = dict(p.strip().partition("=")[::2] for p in r.headers.get("cookie", "").split(";") if "=" in p)
        candidates = [given[7:]] if given.startswith("Bearer ") else []
        candidates.append(cookies.get(TOKEN_COOKIE, ""))
        return any(compare_digest(c.encode(), self.token.encode()) for c in candidates if c)

    def respond(self, r: Request) -> Response:
        if self.token and r.method == "GET" and r.path == "/" and "token" in r.query:
            if not compare_digest(r.query["token"].encode(), self.token.encode()):
                return Response.error(401, "wrong token")
            return Response(303, b"", "text/plain", {"Location": "/", "Set-Cookie":
                            f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"})
        if not self._authorized(r):
            return Response.error(401, "needs Authorization: Bearer TOKEN", {"WWW-Authenticate": "Bearer"})
        paths = _routes_of(r.path)
        handler = next((self.routes[(r.method, p)] for p in paths if (r.method, p) in self.routes), None)
        if handler is None:
            if any(path in paths for _, path in self.routes):
                allowed = ", ".join(m for m, p in self.routes if p in paths)
                return Response.error(405, f"use {allowed}", {"Allow": allowed})
            return Response.error(404, f"no such path: {r.path[:200]}")
        try:
            return handler(r)
        except HttpError as e:
            return Response.error(e.status, e.message)
        except Exception as e:  # noqa: BLE001 - the model or a handler failed: answer 500, keep serving
            self.errors += 1
            self.log(f"serve: {r.method} {r.path[:200]} failed: {type(e).__name__}: {e}")
            return Response.error(500, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
