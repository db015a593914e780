"""HTTP authentication challenges (RFC 7235) and the Basic and Digest (RFC 7616) answers to them.

Digest is our own small client: requests' HTTPDigestAuth retries inside a response hook, past the GUI
origin check, and reads an unbounded 401 body.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.request import parse_http_list

import requests
from requests.auth import AuthBase, HTTPBasicAuth


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # "basic" or "digest", lower case
    params: Mapping[str, str]


def parse_challenges(headers: tuple[str, ...]) -> list[Challenge]:
    """The WWW-Authenticate challenges, one per header line: the scheme lower-cased, parameter names too."""
    challenges = []
    for header in headers:
        scheme, _, rest = header.strip().partition(" ")
        params = {}
        for item in parse_http_list(rest):
            key, _, value = item.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            params[key.strip().lower()] = value
        challenges.append(Challenge(scheme.lower(), params))
    return challenges


class DigestCredentials(AuthBase):
    """HTTP Digest (RFC 7616: MD5 or SHA-256, optionally -sess, qop auth) for one known challenge.

    The Authorization header is computed for each request as it is sent, with no retry of its own: every request
    goes through the origin check first. (requests' HTTPDigestAuth retries inside a response hook.)
    """

    ALGORITHMS: Mapping[str, str] = {"MD5": "md5", "MD5-SESS": "md5", "SHA-256": "sha256", "SHA-256-SESS": "sha256"}

    def __init__(self, username: str, password: str, challenge: Mapping[str, str], cnonce: str | None = None) -> None:
        self._username = username
        self._password = password
        self._challenge = dict(challenge)
        self._cnonce = cnonce
        self._count = 0

    @classmethod
    def supports(cls, challenge: Mapping[str, str]) -> bool:
        qops = _qops(challenge)
        return (
            "nonce" in challenge
            and challenge.get("algorithm", "MD5").upper() in cls.ALGORITHMS
            and (not qops or "auth" in qops)
        )

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(request.url or "/")
        uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request.headers["Authorization"] = self.header(request.method or "GET", uri)
        return request

    def header(self, method: str, uri: str) -> str:
        """The Authorization header value for one request."""
        challenge = self._challenge
        algorithm = challenge.get("algorithm", "MD5").upper()
        hash_name = self.ALGORITHMS[algorithm]

        def digest(text: str) -> str:
            return hashlib.new(hash_name, text.encode(), usedforsecurity=False).hexdigest()

        realm, nonce = challenge.get("realm", ""), challenge["nonce"]
        self._count += 1
        count = f"{self._count:08x}"
        cnonce = self._cnonce or secrets.token_hex(16)
        secret = digest(f"{self._username}:{realm}:{self._password}")
        if algorithm.endswith("-SESS"):
            secret = digest(f"{secret}:{nonce}:{cnonce}")
        request_digest = digest(f"{method}:{uri}")
        fields = {"username": self._username, "realm": realm, "nonce": nonce, "uri": uri}
        if "auth" in _qops(challenge):
            fields["response"] = digest(f"{secret}:{nonce}:{count}:{cnonce}:auth:{request_digest}")
            fields |= {"qop": "auth", "nc": count, "cnonce": cnonce}
        else:
            fields["response"] = digest(f"{secret}:{nonce}:{request_digest}")
        fields["algorithm"] = challenge.get("algorithm", "MD5")
        if "opaque" in challenge:
            fields["opaque"] = challenge["opaque"]
        unquoted = ("qop", "nc", "algorithm")
        return "Digest " + ", ".join(
            f"{key}={value}" if key in unquoted else f'{key}="{_quoted(value)}"' for key, value in fields.items()
        )


def _qops(challenge: Mapping[str, str]) -> list[str]:
    return [qop.strip().lower() for qop in challenge.get("qop", "").split(",") if qop.strip()]


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def http_auth_for(challenges: list[Challenge], username: str, password: str) -> tuple[str, AuthBase] | None:
    """The strongest scheme offered that preflight speaks (Digest over Basic), with its credentials."""
    for challenge in challenges:
        if challenge.scheme == "digest" and DigestCredentials.supports(challenge.params):
            return "digest", DigestCredentials(username, password, challenge.params)
    if any(challenge.scheme == "basic" for challenge in challenges):
        return "basic", HTTPBasicAuth(username, password)
    return None


# --- talking to the GUI -------------------------------------------------------------------------------------------
