"""Lab Web GUI: a form login with a CSRF token and a server-side session, like a PBX admin panel.

A wrong password returns the login form again with an error; a right one redirects to /dashboard.
Standard library only, because the lab image has no pip.
"""

import hmac
import html
import secrets
import sys
import threading
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


def make_handler(username: str, password: str, sessions: Sessions) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "LabGUI/1.0"

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write("gui: " + (format % args) + "\n")

        def _session(self) -> tuple[str, dict[str, str]]:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
            sid = cookie[SESSION_COOKIE].value if SESSION_COOKIE in cookie else None
            return sessions.get_or_create(sid)

        def _send(self, status: int, body: str, sid: str, location: str | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Set-Cookie", f"{SESSION_COOKIE}={sid}; Path=/; HttpOnly")
            if location:
                self.send_header("Location", location)
            self.end_headers()
            self.wfile.write(data)

        def _login_form(self, sid: str, session: dict[str, str], error: str = "") -> None:
            error_html = f'<p class="error">{html.escape(error)}</p>' if error else ""
            self._send(200, LOGIN_FORM.format(error=error_html, csrf=session["csrf"]), sid)

        def do_GET(self) -> None:
            sid, session = self._session()
            if self.path == "/logout":
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
            sid, session = self._session()
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
            if user_ok and password_ok:
                session["user"] = username
                self._send(302, "", sid, "/dashboard")
            else:
                self._login_form(sid, session, "Invalid username or password.")

    return Handler


def main() -> None:
    host, port, credentials_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(credentials_path, encoding="utf-8") as credentials:
        username, password = credentials.read().splitlines()[:2]
    server = ThreadingHTTPServer((host, port), make_handler(username, password, Sessions()))
    server.serve_forever()


if __name__ == "__main__":
    main()
