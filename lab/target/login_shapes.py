"""Lab login pages that preflight did not shape: each its own small server with its own conventions.

    python3 login_shapes.py SHAPE PORT CREDENTIALS_FILE [tls]

Shapes (each has a CSRF token or a session that a blind POST cannot fake):
  email-pass          fields email/pass; a refused login is 200 with the form again and an error text
  bracket-names       fields login[user]/login[secret], the action an absolute URL on the same origin; a refused
                      login is 401 with the form again (no WWW-Authenticate)
  query-action        fields user/passwd; the action a different path with a query string, which must be kept
  redirect-chain      / -> /index.php?section=login, the session cookie set on the first response only; the form
                      posts to its own URL (empty action)
  meta-csrf           the CSRF token only in <meta name="csrf-token">, required as a field of the same name
  dashboard-redirect  success shown only by a redirect to /dashboard/ with a new session cookie; a refused login
                      is a redirect back to the login page
Every POST is logged as `shape SHAPE: POST PATH fields=[...] password_in=[...]`: which fields came, and which of
them held the right password, so a test can prove one submission per attempt and where the password went.
Standard library only, because the lab image has no pip.
"""

import hmac
import html
import secrets
import ssl
import sys
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PAGE = "<!doctype html><html><head><title>{title}</title>{head}</head><body><h1>{title}</h1>{error}{form}</body></html>"
DASHBOARD = "<!doctype html><html><head><title>Home</title></head><body><h1>Welcome, {user}</h1></body></html>"


class Shape:
    """One login page's conventions; the handler below asks it what to serve and how to judge a POST."""

    cookie = "sid"
    login_path = "/login"
    user_field = "username"
    password_field = "password"
    action = "/login"
    refused_status = 200

    def __init__(self, name: str) -> None:
        self.name = name

    def form(self, csrf: str, host: str) -> str:
        return (
            f'<form method="post" action="{html.escape(self.action_for(host))}">'
            f'<input type="hidden" name="csrf" value="{csrf}">'
            f'<label>User <input type="text" name="{self.user_field}"></label>'
            f'<label>Password <input type="password" name="{self.password_field}"></label>'
            '<button type="submit">Sign in</button></form>'
        )

    def action_for(self, host: str) -> str:
        return self.action

    def head(self, csrf: str) -> str:
        return ""

    def csrf_given(self, fields: dict[str, str]) -> str:
        return fields.get("csrf", "")

    def accepts_post(self, path: str) -> bool:
        return urlsplit(path).path == urlsplit(self.action).path


class EmailPass(Shape):
    user_field, password_field = "email", "pass"

    def form(self, csrf: str, host: str) -> str:
        return (
            '<form method="post" action="/login" class="signin">'
            f'<input type="hidden" name="csrf" value="{csrf}">'
            '<input type="email" name="email" placeholder="you@example.com">'
            '<input type="password" name="pass" placeholder="Password">'
            '<input type="submit" name="go" value="Sign in"></form>'
        )


class BracketNames(Shape):
    user_field, password_field = "login[user]", "login[secret]"
    action = "/session/create"
    refused_status = 401

    def action_for(self, host: str) -> str:
        return f"https://{host}{self.action}"

    def form(self, csrf: str, host: str) -> str:
        return (
            f'<form method="post" action="{html.escape(self.action_for(host))}">'
            f'<input type="hidden" name="csrf" value="{csrf}">'
            '<input type="text" name="login[user]" autocomplete="username">'
            '<input type="password" name="login[secret]" autocomplete="current-password">'
            '<input type="checkbox" name="login[remember]" value="1">'
            '<button type="submit" name="commit" value="1">Log in</button></form>'
        )


class QueryAction(Shape):
    user_field, password_field = "user", "passwd"
    action = "/cgi-bin/auth.cgi?op=login&lang=en"

    def accepts_post(self, path: str) -> bool:
        parts = urlsplit(path)
        return parts.path == "/cgi-bin/auth.cgi" and parse_qs(parts.query).get("op") == ["login"]


class RedirectChain(Shape):
    cookie = "PHPSESSID"
    login_path = "/index.php?section=login"
    action = ""

    def form(self, csrf: str, host: str) -> str:
        return (
            '<form method="post" action="">'
            f'<input type="hidden" name="csrf" value="{csrf}">'
            '<table><tr><td>Username</td><td><input name="username"></td></tr>'
            '<tr><td>Password</td><td><input type="password" name="password"></td></tr></table>'
            '<input type="submit" value="Login"></form>'
        )

    def accepts_post(self, path: str) -> bool:
        parts = urlsplit(path)
        return parts.path == "/index.php" and parse_qs(parts.query).get("section") == ["login"]


class MetaCsrf(Shape):
    action = "/auth"

    def head(self, csrf: str) -> str:
        return f'<meta name="csrf-token" content="{csrf}"><meta name="viewport" content="width=device-width">'

    def form(self, csrf: str, host: str) -> str:
        return (
            '<form method="post" action="/auth" id="login">'
            '<input type="text" name="username"><input type="password" name="password">'
            '<button type="submit">Log in</button></form>'
        )

    def csrf_given(self, fields: dict[str, str]) -> str:
        return fields.get("csrf-token", "")


class DashboardRedirect(Shape):
    cookie = "session"


SHAPES = {
    "email-pass": EmailPass,
    "bracket-names": BracketNames,
    "query-action": QueryAction,
    "redirect-chain": RedirectChain,
    "meta-csrf": MetaCsrf,
    "dashboard-redirect": DashboardRedirect,
}


def make_handler(shape: Shape, username: str, password: str) -> type[BaseHTTPRequestHandler]:
    sessions: dict[str, dict[str, str]] = {}

    class Handler(BaseHTTPRequestHandler):
        server_version = f"LabShape-{shape.name}/1.0"

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write(f"shape {shape.name}: " + (format % args) + "\n")

        def _sid(self) -> str | None:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
            sid = cookie[shape.cookie].value if shape.cookie in cookie else None
            return sid if sid in sessions else None

        def _new_session(self) -> str:
            sid = secrets.token_hex(16)
            sessions[sid] = {"csrf": secrets.token_urlsafe(16)}
            return sid

        def _send(self, status: int, body: str, cookie: str | None = None, location: str | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if cookie is not None:
                self.send_header("Set-Cookie", f"{shape.cookie}={cookie}; Path=/; HttpOnly")
            if location:
                self.send_header("Location", location)
            self.end_headers()
            self.wfile.write(data)

        def _login_page(self, sid: str, status: int = 200, error: str = "", set_cookie: bool = True) -> None:
            csrf = sessions[sid]["csrf"]
            host = self.headers.get("Host", "")
            body = PAGE.format(
                title=f"Sign in ({shape.name})",
                head=shape.head(csrf),
                error=f'<p class="alert">{html.escape(error)}</p>' if error else "",
                form=shape.form(csrf, host),
            )
            self._send(status, body, sid if set_cookie else None)

        def do_GET(self) -> None:
            sid = self._sid()
            path = self.path
            if isinstance(shape, RedirectChain):
                if path == "/":
                    # The session starts here, on the first response, and is never set again.
                    self._send(302, "", self._new_session(), shape.login_path)
                elif urlsplit(path).path == "/index.php" and sid is not None:
                    if "section=dashboard" in path and "user" in sessions[sid]:
                        self._send(200, DASHBOARD.format(user=html.escape(sessions[sid]["user"])))
                    else:
                        error = "Login failed." if "error=1" in path else ""
                        self._login_page(sid, error=error, set_cookie=False)
                else:
                    self._send(403, "<p>No session: start at /</p>")
                return
            if path.startswith("/dashboard") or path == "/home" or path == "/app":
                if sid is not None and "user" in sessions[sid]:
                    self._send(200, DASHBOARD.format(user=html.escape(sessions[sid]["user"])))
                else:
                    self._send(302, "", None, "/")
                return
            if urlsplit(path).path in ("/", "/login"):
                new = sid is None
                sid = sid or self._new_session()
                error = "Wrong username or password." if "failed=1" in path else ""
                self._login_page(sid, error=error, set_cookie=new)
                return
            self._send(404, "<p>Not found</p>")

        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length", "0") or 0), 65536)
            fields = {key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()}
            holding = sorted(name for name, value in fields.items() if hmac.compare_digest(value, password))
            sys.stderr.write(f"shape {shape.name}: POST {self.path} fields={sorted(fields)} password_in={holding}\n")
            sid = self._sid()
            if sid is None or not shape.accepts_post(self.path):
                self._send(403, "<p>Forbidden</p>")
                return
            session = sessions[sid]
            if not hmac.compare_digest(shape.csrf_given(fields), session["csrf"]):
                self._send(403, "<p>CSRF token missing or wrong</p>")
                return
            ok = hmac.compare_digest(fields.get(shape.user_field, ""), username) and hmac.compare_digest(
                fields.get(shape.password_field, ""), password
            )
            if isinstance(shape, RedirectChain):
                if ok:
                    session["user"] = username
                    self._send(302, "", None, "/index.php?section=dashboard")
                else:
                    self._send(302, "", None, "/index.php?section=login&error=1")
            elif isinstance(shape, DashboardRedirect):
                if ok:
                    del sessions[sid]
                    new = self._new_session()
                    sessions[new]["user"] = username
                    self._send(303, "", new, "/dashboard/")
                else:
                    self._send(303, "", None, "/login?failed=1")
            elif ok:
                session["user"] = username
                self._send(302, "", None, "/home" if isinstance(shape, EmailPass) else "/app")
            else:
                self._login_page(sid, shape.refused_status, "Wrong username or password.", set_cookie=False)

    return Handler


def main() -> None:
    name, port, credentials = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(credentials) as file:
        username, password = file.read().splitlines()[:2]
    tls = len(sys.argv) > 4 and sys.argv[4] == "tls"
    # Plain HTTP only behind the lab's nginx (the Setup Wizard on 81), so on loopback; TLS shapes face the prober.
    address = "0.0.0.0" if tls else "127.0.0.1"
    server = ThreadingHTTPServer((address, port), make_handler(SHAPES[name](name), username, password))
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain("/etc/preflight-lab/tls.crt", "/etc/preflight-lab/tls.key")
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
