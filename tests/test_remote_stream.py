"""`check --remote` never holds the report whole: it downloads it to a file, checks the service's signature over the
bytes as they come, and reads it back a host at a time. The streamed reading gives what the whole document gives,
and a download that is cut short or does not match its signature leaves no report behind and exits 2."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from preflight import remote, signing, vantages
from preflight.render import terminal
from preflight.render.json import write_document
from tests.vantage_reports import demo_report, two_vantages


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return demo_report(tmp_path_factory.mktemp("demo"))


def written(document: dict[str, Any]) -> bytes:
    """The document as the service writes it: hosts first, one at a time (render.json.write_document)."""
    pieces: list[str] = []
    rest = {key: value for key, value in document.items() if key not in ("schema_version", "hosts")}
    write_document(pieces.append, document["schema_version"], iter(document["hosts"]), lambda: rest)
    return "".join(pieces).encode("utf-8")


def _documents(demo: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"v1": demo, "v2": two_vantages(demo)}


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 16])
def test_a_report_read_a_host_at_a_time_is_the_whole_document(
    demo: dict[str, Any], version: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks cut numbers, strings and multi-byte characters across reads.
    monkeypatch.setattr(remote, "DOWNLOAD_CHUNK", chunk)
    document = _documents(demo)[version]
    document = {**document, "warnings": ["naïve ✓ warning", 12345678901234567890]}
    report = remote.DownloadedReport(io.BytesIO(written(document)))
    assert report.schema_version() == document["schema_version"]
    assert list(report.hosts()) == document["hosts"]
    assert report.read_fields() == {key: value for key, value in document.items() if key != "hosts"}
    # Read again from the first host: the HTML page reads its hosts twice.
    assert [host["name"] for host in report.hosts()] == [host["name"] for host in document["hosts"]]


def test_a_report_of_no_host_is_read_too(demo: dict[str, Any]) -> None:
    document = {**demo, "hosts": [], "summary": {"hosts": 0, "ready": 0, "not_ready": 0}}
    report = remote.DownloadedReport(io.BytesIO(written(document)))
    assert list(report.hosts()) == []
    assert report.read_fields()["summary"] == {"hosts": 0, "ready": 0, "not_ready": 0}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda text: text[: len(text) // 2], "ends too soon|Expecting|Unterminated"),
        (lambda text: text + b"{}", "more after the end"),
        (lambda text: text.replace(b'"hosts": [', b'"hosts": {', 1), "expected one of"),
    ],
)
def test_a_damaged_report_is_refused_where_the_whole_one_reads(demo: dict[str, Any], damage: Any, message: str) -> None:
    whole = written(demo)
    assert len(list(remote.DownloadedReport(io.BytesIO(whole)).hosts())) == len(demo["hosts"])  # control
    with pytest.raises(ValueError, match=message):
        remote.DownloadedReport(io.BytesIO(damage(whole))).read_fields()


def test_the_streamed_terminal_view_of_a_v2_report_is_the_whole_ones(demo: dict[str, Any]) -> None:
    # Both vantages see what the demo's servers answer: its ready host comes first, and is shown last.
    document = vantages.combine([("eu", copy.deepcopy(demo)), ("us", copy.deepcopy(demo))])
    assert [host["ready"] for host in document["hosts"]] == [True, False]
    report = remote.DownloadedReport(io.BytesIO(written(document)))
    assert list(terminal.streamed_document_lines(report.hosts, report.read_fields)) == terminal.document_lines(document)


def test_a_digest_verifies_only_the_bytes_that_were_signed(demo: dict[str, Any]) -> None:
    key = Ed25519PrivateKey.generate()
    data = written(demo)
    signature = signing.sign(data, key)
    digest = signing.new_digest()
    for start in range(0, len(data), 1000):
        digest.update(data[start : start + 1000])
    signing.verify_digest(digest, signature, key.public_key())  # control: the bytes that were signed
    changed = signing.new_digest()
    changed.update(data.replace(b'"ready": true', b'"ready": false', 1))
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify_digest(changed, signature, key.public_key())
    other = signing.new_digest()
    other.update(data)
    with pytest.raises(signing.SignatureError, match="not by the trusted key"):
        signing.verify_digest(other, signature, Ed25519PrivateKey.generate().public_key())


# A stand-in for the service on loopback: it answers the four requests the client makes, with a report as given.
class StandIn:
    def __init__(self, report: bytes, signature: bytes, key_line: str, truncate: bool = False) -> None:
        self.report, self.signature, self.key_line, self.truncate = report, signature, key_line, truncate


def _handler(stand_in: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, length: int | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._send(202, json.dumps({"status_url": "/api/v1/checks/1"}).encode())

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/api/v1/checks/1":
                links = {"report_json": "/api/v1/checks/1/report.json", "signature": "/api/v1/checks/1/report.json.sig"}
                state = {"state": "done", "progress": {"done": 1, "total": 1}, "report": None, "links": links}
                self._send(200, json.dumps(state).encode())
            elif path == "/api/v1/signing-key":
                self._send(200, stand_in.key_line.encode())
            elif path == "/api/v1/checks/1/report.json.sig":
                self._send(200, stand_in.signature)
            elif path == "/api/v1/checks/1/report.json" and stand_in.truncate:
                # Promises the whole report, sends half, and hangs up.
                self._send(200, stand_in.report[: len(stand_in.report) // 2], length=len(stand_in.report))
            elif path == "/api/v1/checks/1/report.json":
                self._send(200, stand_in.report)
            else:
                self._send(404, b"{}")

    return Handler


@pytest.fixture
def stand_in() -> Iterator[tuple[StandIn, str]]:
    serving = StandIn(b"", b"", "")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(serving))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield serving, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _check(folder: Path, url: str, *outputs: str) -> subprocess.CompletedProcess[str]:
    inventory = folder / "inventory.yaml"
    inventory.write_text(
        "hosts:\n  - name: pbx\n    product: pbxware\n    address: 127.0.0.2\n"
        "    gui:\n      username: admin\n      password: ${GUI_PW}\n    ssh:\n      root_password: ${ROOT_PW}\n"
    )
    env = {**os.environ, "GUI_PW": "gui-secret", "ROOT_PW": "root-secret", "PREFLIGHT_TOKEN": "token"}
    return subprocess.run(
        [sys.executable, "-m", "preflight", "check", str(inventory), "--remote", url, *outputs],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def _serve_signed(serving: StandIn, document: dict[str, Any]) -> None:
    """The stand-in serves `document` as the service writes it, signed by a key of its own."""
    key = Ed25519PrivateKey.generate()
    serving.report = written(document)
    serving.signature = signing.sign(serving.report, key)
    serving.key_line = signing.public_key_line(key)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_verified_download_is_written_byte_for_byte_and_shown_as_a_whole_report(
    demo: dict[str, Any], stand_in: tuple[StandIn, str], tmp_path: Path, version: str
) -> None:
    serving, url = stand_in
    document = _documents(demo)[version]
    _serve_signed(serving, document)
    run = _check(tmp_path, url, "--json", "out.json", "--html", "out.html", "--junit", "out.xml")
    assert run.returncode == (0 if document["summary"]["not_ready"] == 0 else 1), run.stderr
    assert (tmp_path / "out.json").read_bytes() == serving.report
    assert (tmp_path / "out.json.sig").read_bytes() == serving.signature
    host_names = [host["name"] for host in document["hosts"]]
    for output in ("out.html", "out.xml"):
        assert all(name in (tmp_path / output).read_text() for name in host_names)
    if version == "v2":
        assert run.stdout.splitlines()[: len(terminal.document_lines(document))] == terminal.document_lines(document)
    else:
        whole = remote.from_document(document)
        expected = [line for host in whole.hosts for line in terminal.host_lines(host)]
        assert run.stdout.splitlines()[: len(expected) + 1] == [*expected, terminal.summary_line(whole.summary)]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "inventory.yaml", "out.html", "out.json", "out.json.sig", "out.xml"
    ]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_quiet_shows_the_summary_line_alone_and_writes_the_same_report(
    demo: dict[str, Any], stand_in: tuple[StandIn, str], tmp_path: Path, version: str
) -> None:
    serving, url = stand_in
    document = _documents(demo)[version]
    _serve_signed(serving, document)
    run = _check(tmp_path, url, "--json", "out.json", "--quiet")
    assert run.returncode == (0 if document["summary"]["not_ready"] == 0 else 1), run.stderr
    assert (tmp_path / "out.json").read_bytes() == serving.report
    if version == "v2":
        assert run.stdout.splitlines() == [terminal.document_summary_line(document)]
    else:
        assert run.stdout.splitlines() == [terminal.summary_line(remote.from_document(document).summary)]


@pytest.mark.parametrize("fault", ["changed", "other key", "truncated"])
def test_a_download_that_does_not_verify_leaves_no_report_and_exits_2(
    demo: dict[str, Any], stand_in: tuple[StandIn, str], tmp_path: Path, fault: str
) -> None:
    serving, url = stand_in
    key = Ed25519PrivateKey.generate()
    report = written(demo)
    serving.report = report
    serving.signature = signing.sign(report, key)
    serving.key_line = signing.public_key_line(key)
    if fault == "changed":
        serving.report = report.replace(b'"ready": false', b'"ready": true ', 1)
        assert serving.report != report
    elif fault == "other key":
        serving.signature = signing.sign(report, Ed25519PrivateKey.generate())
    else:
        serving.truncate = True
    (tmp_path / "out.json").write_text("the old report\n")
    run = _check(tmp_path, url, "--json", "out.json", "--html", "out.html")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert (tmp_path / "out.json").read_text() == "the old report\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["inventory.yaml", "out.json"]


def test_the_good_download_is_the_control_of_the_faults(demo: dict[str, Any], stand_in: tuple[StandIn, str],
                                                        tmp_path: Path) -> None:
    serving, url = stand_in
    key = Ed25519PrivateKey.generate()
    serving.report = written(copy.deepcopy(demo))
    serving.signature = signing.sign(serving.report, key)
    serving.key_line = signing.public_key_line(key)
    (tmp_path / "out.json").write_text("the old report\n")
    run = _check(tmp_path, url, "--json", "out.json", "--html", "out.html")
    assert run.returncode in (0, 1), run.stderr
    assert (tmp_path / "out.json").read_bytes() == serving.report


def test_json_to_stdout_is_the_signed_bytes_and_the_people_lines_go_to_stderr(
    demo: dict[str, Any], stand_in: tuple[StandIn, str], tmp_path: Path
) -> None:
    serving, url = stand_in
    key = Ed25519PrivateKey.generate()
    serving.report = written(demo)
    serving.signature = signing.sign(serving.report, key)
    serving.key_line = signing.public_key_line(key)
    run = _check(tmp_path, url, "--json", "-", "--quiet")
    assert run.returncode in (0, 1), run.stderr
    assert run.stdout.encode() == serving.report
    assert run.stderr.strip().splitlines()[-1].startswith(f"{len(demo['hosts'])} host")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["inventory.yaml"]
