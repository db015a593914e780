"""Hostile HTTP and HTTPS servers for the lab: one misbehaviour per address, on the GUI ports 80, 81 and 443.

Runs inside a lab container (Debian's python3, standard library only):
    python3 http_server.py CONFIG.json
CONFIG names each address's variant, the TLS files and the accepted logins. Every socket is bound with
IP_FREEBIND, so the test may add the addresses to the container after the server has started. Each connection
lives at most CONNECTION_SECONDS and at most MAX_CONNECTIONS are served at once: a run that never ends its
connections cannot keep this server busy forever.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import selectors
import socket
import ssl
import sys
import threading
import time
import zlib
from collections.abc import Callable
from urllib.parse import parse_qs

CONNECTION_SECONDS = 60.0
MAX_CONNECTIONS = 256
REQUEST_LIMIT = 64 * 1024
# Linux's IP_FREEBIND: Python names it only from 3.12, and the lab image has 3.11.
IP_FREEBIND = 15
GIB = 1 << 30
MIB = 1 << 20

LOGIN_FORM = (
    '<form method="post" action="/login"><label>User <input name="username"></label>'
    '<label>Password <input type="password" name="password"></label><button>Log in</button></form>'
)
LOGIN_PAGE = f"<!doctype html><html><head><title>PBX login</title></head><body>{LOGIN_FORM}</body></html>"
HOME_PAGE = "<!doctype html><html><body><h1>Dashboard</h1><p>Welcome.</p></body></html>"
# The variant's ports: TLS variants serve 443 and 81 (HTTPS) and a redirect on 80; plain variants serve 80 and 81
# and leave 443 closed, so a login falls back to plain HTTP.
TLS_VARIANTS = {
    "well-behaved",
    "tls-stall",
    "chain-100",
    "body-1g",
    "gzip-bomb",
    "headers-10k",
    "redirect-loop",
    "drip",
    "drip-headers",
    "forms-50k",
}
PLAIN_VARIANTS = {"plain-http", "http09-garbage", "no-status-line", "content-length-lie"}


class Connection:
    """One accepted connection: its socket (TLS or not), and a bounded reader of one request."""

    def __init__(self, sock: socket.socket, logins: dict[str, str], where: str) -> None:
        self.sock = sock
        self.logins = logins
        self.where = where
        self.ends_at = time.monotonic() + CONNECTION_SECONDS

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_request(self) -> tuple[str, str, dict[str, str], bytes]:
        """(method, path, headers, body) of one request; ("", "", {}, data) when the bytes are not HTTP."""
        data = b""
        while b"\r\n\r\n" not in data and len(data) < REQUEST_LIMIT:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            data += chunk
            # A TLS ClientHello (or other non-HTTP) on a plain port: answer at once, as a real web server does.
            if not data[:1].isalpha():
                return "", "", {}, data
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path = ([*lines[0].split(" "), "", ""])[:2]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = min(int(headers.get("content-length", "0") or 0), REQUEST_LIMIT)
        while len(body) < length:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            body += chunk
        return method, path, headers, body

    def reply(self, status: str, body: bytes = b"", headers: tuple[str, ...] = ()) -> None:
        head = [f"HTTP/1.1 {status}", "Content-Type: text/html", f"Content-Length: {len(body)}", "Connection: close"]
        self.send(("\r\n".join([*head, *headers]) + "\r\n\r\n").encode() + body)

    def login_app(self, method: str, path: str, body: bytes, page: Callable[[], None] | None = None) -> None:
        """The GUI: GET / is the login page (or `page`), POST /login checks the credentials, /home is behind it."""
        if method == "POST" and path.startswith("/login"):
            form = parse_qs(body.decode("latin-1"))
            user, password = form.get("username", [""])[0], form.get("password", [""])[0]
            right = user in self.logins and secrets.compare_digest(self.logins[user], password)
            # Which login came where, never the password: a test proves from this what crossed plain HTTP.
            print(f"login {self.where} user={user} password={'right' if right else 'wrong'}", flush=True)
            if right:
                cookie = f"Set-Cookie: session={secrets.token_hex(8)}; Path=/; HttpOnly"
                self.reply("302 Found", headers=("Location: /home", cookie))
            else:
                self.reply("200 OK", LOGIN_PAGE.replace("<form", "<p>Login failed.</p><form").encode())
        elif path.startswith("/home"):
            self.reply("200 OK", HOME_PAGE.encode())
        elif page is not None:
            page()
        else:
            self.reply("200 OK", LOGIN_PAGE.encode())


def stream(conn: Connection, head: bytes, pieces: Callable[[], bytes | None]) -> None:
    """Send `head`, then each piece until `pieces` returns None, the peer goes or the connection's time is up."""
    conn.send(head)
    while time.monotonic() < conn.ends_at:
        piece = pieces()
        if piece is None:
            return
        conn.send(piece)


def huge_body(conn: Connection) -> None:
    """A login page inside a 1 GiB body: the form first, then padding."""
    start = LOGIN_PAGE.encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {GIB}\r\nConnection: close\r\n\r\n"
    # Text, not markup: this variant is about size; the cost of parsing markup is forms-50k's.
    padding = b"padding " * 8192
    sent = [0]

    def pieces() -> bytes | None:
        piece = start if sent[0] == 0 else padding[: GIB - sent[0]]
        sent[0] += len(piece)
        return piece or None

    stream(conn, head.encode(), pieces)


def gzip_bomb(conn: Connection) -> None:
    """`Content-Encoding: gzip`: about 10 MiB on the wire that expand to the login page and 10 GiB of zeros.

    Deflate turns each further MiB of zeros into the same block of about 1 KiB, so the body is that block repeated;
    only the checksum in the gzip trailer is computed as the body goes out. Nothing of 10 GiB is ever held.
    """
    page = LOGIN_PAGE.encode()
    zeros = bytes(MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(page) + compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    if compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH) != block:
        raise RuntimeError("deflate did not repeat its block of zeros")
    final = compressor.flush(zlib.Z_FINISH)
    blocks = 10 * 1024
    gzip_header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    length = len(gzip_header) + len(first) + len(block) * (blocks - 1) + len(final) + 8
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    state = {"sent": 0, "crc": zlib.crc32(zeros, zlib.crc32(page))}
    run = 64

    def pieces() -> bytes | None:
        sent = state["sent"]
        if sent == 0:
            state["sent"] = 1
            return gzip_header + first
        if sent < blocks:
            count = min(run, blocks - sent)
            for _ in range(count):
                state["crc"] = zlib.crc32(zeros, state["crc"])
            state["sent"] = sent + count
            return block * count
        if sent == blocks:
            state["sent"] = sent + 1
            size = (len(page) + blocks * MIB) & 0xFFFFFFFF
            return final + state["crc"].to_bytes(4, "little") + size.to_bytes(4, "little")
        return None

    stream(conn, head.encode(), pieces)


def drip(conn: Connection) -> None:
    """A chunked response whose body comes one byte a second."""
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    page = LOGIN_PAGE.encode()
    for index in range(len(page)):
        if time.monotonic() >= conn.ends_at:
            return
        conn.send(b"1\r\n" + page[index : index + 1] + b"\r\n")
        time.sleep(1)


def drip_headers(conn: Connection) -> None:
    """A status line, then a header that comes one byte a second and never ends."""
    conn.send(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while time.monotonic() < conn.ends_at:
        conn.send(b"z")
        time.sleep(1)


def many_headers(conn: Connection) -> None:
    """A login page behind 10,000 header lines."""
    body = LOGIN_PAGE.encode()
    filler = "".join(f"X-Filler-{number}: {number}\r\n" for number in range(10_000))
    conn.send(f"HTTP/1.1 200 OK\r\n{filler}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


def many_forms(conn: Connection) -> None:
    """A login page with 50,000 forms: 49,999 empty ones, then the login form."""
    body = ("<!doctype html><html><body>" + "<form></form>" * 49_999 + LOGIN_FORM + "</body></html>").encode()
    conn.reply("200 OK", body)


def serve_tls(conn: Connection, variant: str) -> None:
    method, path, _, body = conn.read_request()
    if variant == "redirect-loop":
        number = int(path.rsplit("/", 1)[-1]) if path.rsplit("/", 1)[-1].isdigit() else 0
        conn.reply("302 Found", headers=(f"Location: /loop/{number + 1}",))
        return
    pages: dict[str, Callable[[], None]] = {
        "body-1g": lambda: huge_body(conn),
        "gzip-bomb": lambda: gzip_bomb(conn),
        "drip": lambda: drip(conn),
        "drip-headers": lambda: drip_headers(conn),
        "headers-10k": lambda: many_headers(conn),
        "forms-50k": lambda: many_forms(conn),
    }
    conn.login_app(method, path, body, pages.get(variant))


def serve_plain(conn: Connection, variant: str) -> None:
    method, path, _, body = conn.read_request()
    if variant == "http09-garbage":
        # HTTP/0.9 has no status line and no headers: the body alone, here bytes no web page holds.
        conn.send(bytes(range(256)) * 4 + b"\r\n<html>garbage</html>\r\n")
    elif variant == "no-status-line":
        page = LOGIN_PAGE.encode()
        conn.send(b"Content-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (len(page), page))
    elif variant == "content-length-lie":
        page = LOGIN_PAGE.encode()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000000\r\n\r\n" + page)
    else:
        conn.login_app(method, path, body)


def redirect_to_https(conn: Connection) -> None:
    conn.read_request()
    conn.reply("301 Moved Permanently", headers=("Location: https://pbx.lab.invalid/",))


def stall_after_server_hello(sock: socket.socket, context: ssl.SSLContext, ends_at: float) -> None:
    """Read the ClientHello, send only the first TLS record of the answer (the ServerHello), then say nothing."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=True)
    while not outgoing.pending and time.monotonic() < ends_at:
        data = sock.recv(16384)
        if not data:
            return
        incoming.write(data)
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
    answer = outgoing.read()
    length = int.from_bytes(answer[3:5], "big")
    record = answer[: 5 + length]
    if record[0] != 0x16 or record[5] != 0x02:
        raise RuntimeError("the first record of the server's answer is not a ServerHello")
    sock.sendall(record)
    while time.monotonic() < ends_at and sock.recv(4096):
        pass


class Server:
    def __init__(self, config: dict[str, object]) -> None:
        self.variants: dict[str, str] = dict(config["variants"])  # type: ignore[call-overload]
        self.logins: dict[str, str] = dict(config["logins"])  # type: ignore[call-overload]
        tls = dict(config["tls"])  # type: ignore[call-overload]
        self.contexts = {
            "normal": self._context(tls["cert"], tls["key"]),
            "chain": self._context(tls["chain"], tls["chain_key"]),
        }
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    @staticmethod
    def _context(chain: str, key: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain, key)
        return context

    def listeners(self) -> list[socket.socket]:
        sockets = []
        for address, variant in self.variants.items():
            ports = (80, 81, 443) if variant in TLS_VARIANTS else (80, 81)
            for port in ports:
                listener = socket.socket()
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
                listener.bind((address, port))
                listener.listen(128)
                sockets.append(listener)
        return sockets

    def handle(self, sock: socket.socket) -> None:
        address, port = sock.getsockname()[:2]
        variant = self.variants[address]
        where = f"{variant} {'https' if variant in TLS_VARIANTS and port != 80 else 'http'}/{port}"
        ends_at = time.monotonic() + CONNECTION_SECONDS
        sock.settimeout(CONNECTION_SECONDS)
        try:
            if variant in PLAIN_VARIANTS:
                serve_plain(Connection(sock, self.logins, where), variant)
            elif port == 80:
                redirect_to_https(Connection(sock, self.logins, where))
            elif variant == "tls-stall":
                stall_after_server_hello(sock, self.contexts["normal"], ends_at)
            else:
                context = self.contexts["chain" if variant == "chain-100" else "normal"]
                with context.wrap_socket(sock, server_side=True) as tls:
                    serve_tls(Connection(tls, self.logins, where), variant)
        except (OSError, ValueError, RuntimeError) as exc:
            print(f"{address}:{port} {variant}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        finally:
            sock.close()
            self.slots.release()

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        for listener in self.listeners():
            selector.register(listener, selectors.EVENT_READ)
        print("ready", flush=True)
        while True:
            for key, _ in selector.select():
                sock, _ = key.fileobj.accept()  # type: ignore[union-attr]
                if not self.slots.acquire(blocking=False):
                    sock.close()
                    continue
                threading.Thread(target=self.handle, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as config_file:
        Server(json.load(config_file)).run()
