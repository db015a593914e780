"""A stand-in PBX Web GUI, for the lab image and `preflight demo`: a form login with a CSRF token and a session.

A wrong password returns the login form again with an error; a right one redirects to /dashboard.
Other ways in, chosen by the fourth argument (GUI_AUTH in the entrypoint):
  form-2fa  the right password leads to /verify, which asks for a one-time code (none is ever valid);
  basic     nginx asks for HTTP Basic authentication; this app only serves the dashboard behind it;
  digest    this app asks for HTTP Digest authentication (RFC 7616: SHA-256 and MD5, qop=auth).
Standard library only, because the lab image has no pip.
"""

import hashlib
import hmac
import html
import secrets
import sys
import threading
import urllib.request
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

SESSION_COOKIE = "labsid"
LOGIN_FORM = """<!doctype html>
<html><head><title>PBX Web GUI - Login</title></head>
<body>
<h1>PBX Web GUI</h1>
{error}
<form method="post" action="/login">
  <input type="hidden" name="csrf_token" value="{csrf}">
  <label>Username <input type="text" name="username"></label>
  <label>Password <input type="password" name="password"></label>
  <button type="submit">Log in</button>
</form>
</body></html>
"""
VERIFY_FORM = """<!doctype html>
<html><head><title>PBX Web GUI - Verification</title></head>
<body>
<h1>Two-step verification</h1>
{error}
<form method="post" action="/verify">
  <input type="hidden" name="csrf_token" value="{csrf}">
  <label for="otp">Verification code from your authenticator app</label>
  <input type="text" id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code">
  <button type="submit">Verify</button>
</form>
</body></html>
"""
DIGEST_REALM = "PBX Web GUI"
DIGEST_HASHES = {"SHA-256": "sha256", "MD5": "md5"}
DASHBOARD = """<!doctype html>
<html><head><title>PBX Web GUI - Dashboard</title></head>
<body><h1>Dashboard</h1><p>Logged in as {user}.</p><a href="/logout">Log out</a></body></html>
"""


class Sessions:
    """Server-side sessions: a cookie id maps to a CSRF token and, after login, a user."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, str]] = {}

    def get_or_create(self, sid: str | None) -> tuple[str, dict[str, str]]:
        with self._lock:
            if sid and sid in self._data:
                return sid, self._data[sid]
            sid = secrets.token_urlsafe(24)
            self._data[sid] = {"csrf": secrets.token_urlsafe(16)}
            return sid, self._data[sid]

    def drop(self, sid: str) -> None:
        with self._lock:
            self._data.pop(sid, None)


class DigestNonces:
    """Nonces this server issued, each with the highest request count seen, so a replayed answer is refused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(24)
        with self._lock:
            self._counts[nonce] = 0
        return nonce

    def accept(self, nonce: str, count: int) -> bool:
        with self._lock:
            if nonce not in self._counts or count <= self._counts[nonce]:
                return False
            self._counts[nonce] = count
            return True


def digest_authorized(header: str, method: str, path: str, username: str, password: str, nonces: DigestNonces) -> bool:
    """Whether an Authorization: Digest header answers one of our nonces with the right password (RFC 7616)."""
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "digest":
        return False
    fields = {}
    for item in urllib.request.parse_http_list(rest):
        key, _, value = item.partition("=")
        fields[key.strip().lower()] = value.strip().strip('"')
    algorithm = fields.get("algorithm", "MD5").upper()
    if algorithm not in DIGEST_HASHES or fields.get("qop") != "auth" or fields.get("uri") != path:
        return False

    def digest(text: str) -> str:
        return hashlib.new(DIGEST_HASHES[algorithm], text.encode()).hexdigest()

    try:
        count = int(fields.get("nc", ""), 16)
    except ValueError:
        return False
    secret = digest(f"{username}:{DIGEST_REALM}:{password}")
    request_digest = digest(f"{method}:{path}")
    expected = digest(
        f"{secret}:{fields.get('nonce', '')}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:auth:{request_digest}"
    )
    right = hmac.compare_digest(fields.get("username", ""), username) and hmac.compare_digest(
        fields.get("response", ""), expected
    )
    return right and nonces.accept(fields.get("nonce", ""), count)


def make_handler(username: str, password: str, sessions: Sessions, mode: str = "form") -> type[BaseHTTPRequestHandler]:
    nonces = DigestNonces()

    class Handler(BaseHTTPRequestHandler):
        server_version = "LabGUI/1.0"

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write("gui: " + (format % args) + "\n")

        def _session(self) -> tuple[str, dict[str, str]]:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
            sid = cookie[SESSION_COOKIE].value if SESSION_COOKIE in cookie else None
            return sessions.get_or_create(sid)

        def _send(
            self, status: int, body: str, sid: str | None, location: str | None = None, challenges: tuple[str, ...] = ()
        ) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if sid is not None:
                self.send_header("Set-Cookie", f"{SESSION_COOKIE}={sid}; Path=/; HttpOnly")
            for challenge in challenges:
                self.send_header("WWW-Authenticate", challenge)
            if location:
                self.send_header("Location", location)
            self.end_headers()
            self.wfile.write(data)

        def _behind_http_auth(self) -> None:
            """basic: nginx has checked the password already; digest: check it here, or challenge."""
            if mode == "digest":
                header = self.headers.get("Authorization", "")
                if not digest_authorized(header, self.command, self.path, username, password, nonces):
                    nonce = nonces.issue()
                    challenges = tuple(
                        f'Digest realm="{DIGEST_REALM}", qop="auth", algorithm={algorithm}, nonce="{nonce}"'
                        for algorithm in DIGEST_HASHES
                    )
                    self._send(401, "<h1>401 Authorization Required</h1>", None, challenges=challenges)
                    return
            if self.path in ("/", "/dashboard"):
                self._send(200, DASHBOARD.format(user=html.escape(username)), None)
            else:
                self._send(404, "<h1>Not found</h1>", None)

        def _login_form(self, sid: str, session: dict[str, str], error: str = "") -> None:
            error_html = f'<p class="error">{html.escape(error)}</p>' if error else ""
            self._send(200, LOGIN_FORM.format(error=error_html, csrf=session["csrf"]), sid)

        def do_GET(self) -> None:
            if mode in ("basic", "digest"):
                self._behind_http_auth()
                return
            sid, session = self._session()
            if self.path == "/verify" and "pending" in session:
                self._send(200, VERIFY_FORM.format(error="", csrf=session["csrf"]), sid)
            elif self.path == "/logout":
                sessions.drop(sid)
                self._send(302, "", sid, "/login")
            elif self.path == "/dashboard":
                if "user" in session:
                    self._send(200, DASHBOARD.format(user=html.escape(session["user"])), sid)
                else:
                    self._send(302, "", sid, "/login")
            elif self.path in ("/", "/login"):
                if "user" in session:
                    self._send(302, "", sid, "/dashboard")
                else:
                    self._login_form(sid, session)
            else:
                self._send(404, "<h1>Not found</h1>", sid)

        def do_POST(self) -> None:
            if mode in ("basic", "digest"):
                self._behind_http_auth()
                return
            sid, session = self._session()
            if self.path == "/verify" and "pending" in session:
                # No one-time code is ever right in the lab: preflight must stop at this page.
                error = '<p class="error">Invalid verification code.</p>'
                self._send(200, VERIFY_FORM.format(error=error, csrf=session["csrf"]), sid)
                return
            if self.path != "/login":
                self._send(404, "<h1>Not found</h1>", sid)
                return
            length = min(int(self.headers.get("Content-Length", "0") or 0), 65536)
            form = parse_qs(self.rfile.read(length).decode(errors="replace"))
            given = {key: values[0] for key, values in form.items()}
            if not hmac.compare_digest(given.get("csrf_token", ""), session["csrf"]):
                self._login_form(sid, session, "Your session expired, please try again.")
                return
            user_ok = hmac.compare_digest(given.get("username", ""), username)
            password_ok = hmac.compare_digest(given.get("password", ""), password)
            if user_ok and password_ok and mode == "form-2fa":
                session["pending"] = username
                self._send(302, "", sid, "/verify")
            elif user_ok and password_ok:
                session["user"] = username
                self._send(302, "", sid, "/dashboard")
            else:
                self._login_form(sid, session, "Invalid username or password.")

    return Handler


def main() -> None:
    host, port, credentials_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    mode = sys.argv[4] if len(sys.argv) > 4 else "form"
    if mode not in ("form", "form-2fa", "basic", "digest"):
        sys.exit(f"gui: unknown mode {mode!r}; expected form, form-2fa, basic or digest")
    with open(credentials_path, encoding="utf-8") as credentials:
        username, password = credentials.read().splitlines()[:2]
    server = ThreadingHTTPServer((host, port), make_handler(username, password, Sessions(), mode))
    server.serve_forever()


if __name__ == "__main__":
    main()
