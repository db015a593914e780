"""Inputs nobody thought of: for any bytes, any YAML or JSON document and any damage to a good file, `preflight
validate`, `render` and `verify` give a result or one-line errors with exit 2; never a traceback, never a hang.

Most runs are in-process (cli.main) under an alarm, for speed; the nastiest files (alias bombs, deep nesting, huge
numbers, huge files, 10^6-element arrays) run as a user runs them, in a process with a memory limit and a timeout.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import markupsafe
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preflight import cli, signing
from tests.lab import REPO
from tests.vantage_reports import demo_report, two_vantages

# Each in-process run must end within this; the slowest seen on a busy 2-core machine was well under a second.
RUN_SECONDS = 20
# One error line names the file, the place and the problem; nothing a user wrote is echoed at length.
LONGEST_LINE = 1000
EXAMPLE = (REPO / "inventory.example.yaml").read_text()
EXAMPLE_ENV = {
    name: f"secret-value-{name.lower()}"
    for name in (
        "PBX1_GUI_PASSWORD",
        "PBX1_ROOT_PASSWORD",
        "PBX1_WIZARD_PASSWORD",
        "SW1_GUI_PASSWORD",
        "SW1_ROOT_PASSWORD",
        "SW1_KEY_PASSPHRASE",
        "SW1_ROOT_PASSWORD_2222",
    )
}

FEW = settings(
    # 60 keeps the file under a minute; PREFLIGHT_FUZZ_EXAMPLES=1000 looks harder (run before a release).
    max_examples=int(os.environ.get("PREFLIGHT_FUZZ_EXAMPLES", "60")),
    deadline=None,  # bounded by RUN_SECONDS per run instead: a shared CI machine makes Hypothesis' deadline flaky
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


class _RunTooLong(BaseException):
    """Raised by the alarm; a BaseException, so that nothing in preflight can swallow it."""


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def ring(signum: int, frame: FrameType | None) -> None:
        raise _RunTooLong(f"did not end within {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(capsys: pytest.CaptureFixture[str], args: Sequence[str]) -> Outcome:
    """`preflight ARGS` in this process, within RUN_SECONDS; an exception escaping main fails the test."""
    capsys.readouterr()
    with _alarm(RUN_SECONDS):
        try:
            code = cli.main(list(args))
        except SystemExit as exit_:  # argparse's own exit, with its own one-line message
            code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def assert_clean(outcome: Outcome, codes: Sequence[int]) -> None:
    """An expected exit code; with exit 2, only `preflight: error:` lines, each short; never a traceback."""
    assert outcome.code in codes, outcome
    assert "Traceback" not in outcome.stderr, outcome.stderr
    lines = outcome.stderr.splitlines()
    assert all(len(line) <= LONGEST_LINE for line in lines), [len(line) for line in lines]
    if outcome.code == 2:
        assert lines and lines[0].startswith("preflight: error: "), outcome.stderr
        assert all(line.startswith(("preflight: error: ", "preflight: warning: ")) for line in lines), lines


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)


# ---- the inventory: `preflight validate` ----


def validate(capsys: pytest.CaptureFixture[str], path: Path, data: bytes) -> Outcome:
    path.write_bytes(data)
    path.chmod(0o600)  # a plaintext password in a file others can read is a warning, not what is tested here
    outcome = run_cli(capsys, ["validate", str(path)])
    assert_clean(outcome, (0, 2))
    if outcome.code == 0:
        assert outcome.stdout.endswith(" host(s), valid\n"), outcome
    else:
        # Every error names the file (and, from the file's own parse on, the line).
        assert all(path.name in line for line in outcome.stderr.splitlines() if " error: " in line), outcome
    return outcome


def test_the_example_inventory_is_valid_as_the_control(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in EXAMPLE_ENV.items():
            patch.setenv(name, value)
        assert validate(capsys, tmp_path / "inventory.yaml", EXAMPLE.encode()).code == 0


@FEW
@given(data=st.binary(max_size=4096))
def test_any_bytes_as_an_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes) -> None:
    validate(capsys, tmp_path / "inventory.yaml", data)


# Text made of what YAML gives meaning to, so that most examples reach the parser's corners, not its first line.
YAML_PIECES = st.sampled_from(
    [*"{}[]:,-?&*!|>'\"#%@`\\ \t\n", "\n  ", "\n- ", ": ", "&a ", "*a", "<<: ", "!!str ", "!!binary ", "!!int ",
     "!!float ", "!!timestamp ", "!!set ", "!!omap ", "!!python/object ", "!<tag:x> ", "---\n", "...\n", "%YAML 1.1\n",
     "hosts:", "defaults:", "name: a", "address: 192.0.2.1", "product: pbxware", "ssh:", "per_port:", "2020:",
     "root_password:", "${X}", "$$", "0x7e4", "1e400", "9" * 5000, ".nan", "~", "null", "yes", "\ufeff", "\x00",
     "\x85", "\u2028", "\ud7ff", "é"]
)  # fmt: skip


@FEW
@given(pieces=st.lists(YAML_PIECES, max_size=60))
def test_any_yaml_ish_text_as_an_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pieces: list[str]
) -> None:
    validate(capsys, tmp_path / "inventory.yaml", "".join(pieces).encode("utf-8", "surrogatepass"))


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**4000), max_value=10**4000)
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["pbxware", "serverware", "192.0.2.1", "::1", "${PBX1_ROOT_PASSWORD}", "$NOPE", "${", "a #b"])
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12) | st.integers(), children),
    max_leaves=30,
)
HOST_KEYS = ["name", "address", "product", "require_public_ip", "gui", "ssh", "setup_wizard", "profiles", "x"]
SECTION_KEYS = ["username", "password", "root_password", "key_file", "key_passphrase", "certificate_file", "host_key",
                "per_port", "allow_plain_http", "port"]  # fmt: skip
HOSTS = st.dictionaries(
    st.sampled_from(HOST_KEYS),
    DOCUMENTS | st.dictionaries(st.sampled_from(SECTION_KEYS) | st.integers(1, 70000), DOCUMENTS, max_size=4),
    max_size=8,
)
INVENTORIES = st.fixed_dictionaries(
    {"hosts": st.lists(HOSTS, max_size=3)}, optional={"defaults": HOSTS, "other": DOCUMENTS}
)


def _dump(document: Any, as_json: bool) -> bytes:
    if as_json:
        # JSON is YAML too; a user may well write the inventory that way.
        return json.dumps(document, default=str).encode()
    return yaml.safe_dump(document, allow_unicode=True).encode("utf-8", "surrogatepass")


@FEW
@given(document=DOCUMENTS | INVENTORIES, as_json=st.booleans())
def test_any_yaml_or_json_document_as_an_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], environ: None, document: Any, as_json: bool
) -> None:
    validate(capsys, tmp_path / "inventory.yaml", _dump(document, as_json))


def _damaged(original: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """`original` with each (position, bytes to cut, bytes to put) applied in turn."""
    data = bytearray(original)
    for position, cut, put in edits:
        at = position % (len(data) + 1)
        data[at : at + cut] = put
    return bytes(data)


EDITS = st.lists(
    st.tuples(st.integers(0, 10**6), st.integers(0, 40), st.binary(max_size=8) | YAML_PIECES.map(str.encode)),
    min_size=1,
    max_size=6,
)


@FEW
@given(edits=EDITS)
def test_any_damage_to_the_example_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], environ: None, edits: list[tuple[int, int, bytes]]
) -> None:
    validate(capsys, tmp_path / "inventory.yaml", _damaged(EXAMPLE.encode(), edits))


# ---- saved reports: `preflight render` ----


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A real report of each version: the demo's (version 1) and one from two vantages (version 2)."""
    demo = demo_report(tmp_path_factory.mktemp("demo"))
    return {"1": json.dumps(demo).encode(), "2": json.dumps(two_vantages(demo)).encode()}


def render(capsys: pytest.CaptureFixture[str], folder: Path, data: bytes) -> Outcome:
    report, html, junit = folder / "report.json", folder / "r.html", folder / "r.xml"
    report.write_bytes(data)
    for old in (html, junit):
        old.unlink(missing_ok=True)
    outcome = run_cli(capsys, ["render", str(report), "--html", str(html), "--junit", str(junit)])
    assert_clean(outcome, (0, 2))
    if outcome.code == 0:
        # A report that loads renders whole: a page that names each host, and JUnit XML that parses.
        page = html.read_text()
        assert all(str(markupsafe.escape(host["name"])) in page for host in json.loads(data)["hosts"])
        ElementTree.fromstring(junit.read_bytes())  # noqa: S314 - preflight's own output
    else:
        assert not html.exists() and not junit.exists()
    return outcome


def test_the_real_reports_render_as_the_control(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reports: dict[str, bytes]
) -> None:
    for data in reports.values():
        assert render(capsys, tmp_path, data).code == 0


@FEW
@given(data=st.binary(max_size=4096))
def test_any_bytes_as_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes) -> None:
    render(capsys, tmp_path, data)


JSON_VALUES = st.recursive(
    # Half a surrogate pair is valid JSON text ("\\ud800") and no valid Unicode: json.dumps writes it escaped.
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["\ud800", "a\udfffb", "\U0001f600"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from _paths(child, (*at, key))


def _replace_at(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    changed = copy.deepcopy(document)
    parent = changed
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return changed


@FEW
@given(data=st.data(), version=st.sampled_from(["1", "2"]), new=JSON_VALUES)
def test_any_value_anywhere_in_a_real_report(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    reports: dict[str, bytes],
    data: st.DataObject,
    version: str,
    new: Any,
) -> None:
    document = json.loads(reports[version])
    path = data.draw(st.sampled_from(list(_paths(document))))
    render(capsys, tmp_path, json.dumps(_replace_at(document, path, new)).encode())


@FEW
@given(edits=EDITS, version=st.sampled_from(["1", "2"]))
def test_any_damage_to_a_real_report(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    reports: dict[str, bytes],
    edits: list[tuple[int, int, bytes]],
    version: str,
) -> None:
    render(capsys, tmp_path, _damaged(reports[version], edits))


# ---- signatures: `preflight verify` ----

SIGNER = Ed25519PrivateKey.generate()
SIGNED = b'{"schema_version": "1"}\n'


def verify(capsys: pytest.CaptureFixture[str], folder: Path, report: bytes, signature: bytes, key: bytes) -> Outcome:
    for name, content in (("r.json", report), ("r.json.sig", signature), ("key.pub", key)):
        (folder / name).write_bytes(content)
    outcome = run_cli(capsys, ["verify", str(folder / "r.json"), "--key", str(folder / "key.pub")])
    assert_clean(outcome, (0, 1, 2))
    if outcome.code == 1:
        assert outcome.stderr.count("\n") == 1 and ": INVALID: " in outcome.stderr, outcome.stderr
    return outcome


def test_a_good_signature_verifies_as_the_control(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = signing.public_key_line(SIGNER).encode()
    assert verify(capsys, tmp_path, SIGNED, signing.sign(SIGNED, SIGNER), key).code == 0
    assert verify(capsys, tmp_path, SIGNED + b" ", signing.sign(SIGNED, SIGNER), key).code == 1


@FEW
@given(edits=EDITS, what=st.sampled_from(["report", "signature", "key"]))
def test_any_damage_to_a_signed_report_its_signature_or_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edits: list[tuple[int, int, bytes]], what: str
) -> None:
    files = {
        "report": SIGNED,
        "signature": signing.sign(SIGNED, SIGNER),
        "key": signing.public_key_line(SIGNER).encode(),
    }
    damaged = _damaged(files[what], edits)
    outcome = verify(capsys, tmp_path, **{**files, what: damaged})
    if what == "report" and damaged != SIGNED:
        assert outcome.code == 1  # any change to the signed bytes is caught


@FEW
@given(blob=st.binary(max_size=600), armored=st.booleans(), key=st.binary(max_size=300))
def test_any_bytes_as_a_signature_or_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], blob: bytes, armored: bool, key: bytes
) -> None:
    encoded = base64.b64encode(blob)
    signature = b"-----BEGIN SSH SIGNATURE-----\n" + encoded + b"\n-----END SSH SIGNATURE-----\n" if armored else blob
    verify(capsys, tmp_path, SIGNED, signature, signing.public_key_line(SIGNER).encode())
    verify(capsys, tmp_path, SIGNED, signing.sign(SIGNED, SIGNER), b"ssh-ed25519 " + base64.b64encode(key))


# ---- the nastiest files, run as a user runs them: a process with a memory limit and a deadline ----

# Address space for the whole process: the interpreter with preflight's libraries takes about a third of it.
MEMORY_LIMIT = 1024 * 2**20
PROCESS_SECONDS = 60
# Measured peak RSS of these runs: at most 200 MB (a list of 10^6 strings; 189 MB for the billion laughs).
PEAK_MB = 300
_MEASURE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from preflight.cli import main
code = main(sys.argv[1:])
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, from the pytest process that forked this one.
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")).split()[1]
print(peak, file=open({rss_file!r}, "w"))
sys.exit(code)
"""


def _laughs(levels: int = 9) -> bytes:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, levels + 1)]
    return ("\n".join(lines) + "\nhosts: *a9\n").encode()


def _host(**fields: str) -> str:
    values = {"name": "a", "address": "192.0.2.1", "product": "pbxware", "require_public_ip": "false", **fields}
    return "hosts:\n  - " + "\n    ".join(f"{key}: {value}" for key, value in values.items()) + "\n"


def _huge_report(write: Callable[[Any], bytes]) -> Callable[[dict[str, bytes]], bytes]:
    return lambda reports: write(json.loads(reports["1"]))


def _with(key: str, value: Any) -> Callable[[Any], bytes]:
    def build(document: Any) -> bytes:
        document[key] = value
        return json.dumps(document).encode()

    return build


NASTY_INVENTORIES: dict[str, tuple[Callable[[], bytes], str]] = {
    "billion-laughs": (_laughs, "expands to more than 1000000 values"),
    "self-alias": (lambda: b"hosts: &a [*a]\n", "used inside its own value"),
    "nested-flow-100k": (lambda: b"hosts: " + b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "nested-block-5000": (lambda: "".join(" " * n + "a:\n" for n in range(5000)).encode(), "nested too deeply"),
    "integer-100k-digits": (lambda: _host(require_public_ip="9" * 100_000).encode(), "is not a valid !!int value"),
    "port-key-1000-digits": (
        lambda: _host(ssh="{per_port: {" + "9" * 1000 + ": {root_password: x}}}").encode(),
        "per_port",
    ),
    "three-million-values-in-6-MB": (lambda: b"hosts: [" + b"1," * 3_000_000 + b"1]\n", "more than 1000000 values"),
    "file-of-65-MB": (lambda: b"# " + b"x" * (65 * 2**20) + b"\n" + _host().encode(), "larger than 64 MB"),
    "invalid-utf-8": (lambda: _host().encode() + b"\xff\xfe\n", "not UTF-8 text"),
    "utf-16": (lambda: _host().encode("utf-16"), "not UTF-8 text"),
    "nul-byte": (lambda: _host(name="a\x00b").encode(), "unacceptable character #x0000"),
    "duplicate-json-keys": (lambda: b'{"hosts": [], "hosts": []}', "duplicate key"),
}


def run_measured(tmp_path: Path, args: Sequence[str]) -> tuple[subprocess.CompletedProcess[str], int, float]:
    """`preflight ARGS` in a process of its own under MEMORY_LIMIT; it, its peak RSS in MB, and its seconds."""
    rss_file = tmp_path / "rss"
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", _MEASURE.format(limit=MEMORY_LIMIT, rss_file=str(rss_file)), *args],
        capture_output=True, text=True, timeout=PROCESS_SECONDS, cwd=tmp_path, env={**os.environ, **EXAMPLE_ENV},
    )  # fmt: skip
    elapsed = time.monotonic() - started
    peak_mb = int(rss_file.read_text()) // 1024 if rss_file.exists() else -1
    return completed, peak_mb, elapsed


def assert_one_line_refusal(completed: subprocess.CompletedProcess[str], words: str) -> None:
    assert "Traceback" not in completed.stderr and "MemoryError" not in completed.stderr, completed.stderr[-3000:]
    assert completed.returncode == 2, completed.stderr[-3000:]
    lines = completed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("preflight: error: ") and len(lines[0]) <= LONGEST_LINE, lines
    assert words in lines[0], lines[0]


@pytest.mark.parametrize("name", list(NASTY_INVENTORIES))
def test_a_nasty_inventory_is_refused_in_one_line_within_bounds(tmp_path: Path, name: str) -> None:
    make, words = NASTY_INVENTORIES[name]
    inventory = tmp_path / "inventory.yaml"
    inventory.write_bytes(make())

    completed, peak_mb, elapsed = run_measured(tmp_path, ["validate", str(inventory)])

    assert_one_line_refusal(completed, words)
    assert 0 < peak_mb <= PEAK_MB, peak_mb
    print(f"{name}: {elapsed:.1f} s, peak RSS {peak_mb} MB")


def test_an_inventory_of_a_million_values_just_under_the_cap_stays_within_bounds(tmp_path: Path) -> None:
    # The worst a file may hold: every value composed and checked. Measured: about 15 s and 700 MB on a busy machine.
    inventory = tmp_path / "inventory.yaml"
    inventory.write_bytes(b"hosts: [" + b"1," * 999_990 + b"1]\n")

    completed, peak_mb, elapsed = run_measured(tmp_path, ["validate", str(inventory)])

    assert "Traceback" not in completed.stderr and completed.returncode == 2, completed.stderr[-2000:]
    lines = completed.stderr.splitlines()
    assert lines[0] == "preflight: error: inventory.yaml:1: hosts[0]: must be a mapping, not a number", lines[0]
    assert lines[-1].endswith("more error(s) not shown; fix these first") and len(lines) == 51
    assert 0 < peak_mb <= 900, peak_mb
    print(f"a million values: {elapsed:.1f} s, peak RSS {peak_mb} MB")


def test_a_bom_before_a_good_inventory_is_accepted_as_the_control(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_bytes("\ufeff".encode() + _host().encode())

    completed, _, _ = run_measured(tmp_path, ["validate", str(inventory)])

    assert (completed.returncode, completed.stderr) == (0, ""), completed.stderr


NASTY_REPORTS: dict[str, tuple[Callable[[dict[str, bytes]], bytes], str]] = {
    "nested-100k": (lambda _: b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "integer-100k-digits": (lambda _: b'{"schema_version": ' + b"1" * 100_000 + b"}", "integer string conversion"),
    "duplicate-keys": (lambda r: r["1"].replace(b'"hosts":', b'"hosts": [], "hosts":', 1), 'duplicate key "hosts"'),
    "nan": (lambda r: r["1"].replace(b'"duration_ms": ', b'"duration_ms": NaN, "x": ', 1), "NaN is not a JSON number"),
    "hosts-10^6-numbers": (_huge_report(_with("hosts", [0] * 10**6)), "]: 0 is not of type 'object'"),
    "warnings-10^6-numbers": (_huge_report(_with("warnings", [7] * 10**6)), "]: 7 is not of type 'string'"),
    "top-level-list-of-10^6": (lambda _: json.dumps(["x" * 10] * 10**6).encode(), "top level: ['xxxxxxxxxx'"),
    "invalid-utf-8": (lambda r: r["1"][:100] + b"\xff" + r["1"][100:], "not a JSON report"),
    "nul-byte": (lambda r: b"\x00" + r["1"], "not a JSON report"),
    "lone-surrogate": (lambda r: r["1"].replace(b'"demo-pbx"', b'"\\ud83d"', 1), "half of a UTF-16 surrogate pair"),
}


@pytest.mark.parametrize("name", list(NASTY_REPORTS))
def test_a_nasty_report_is_refused_in_one_line_within_bounds(
    tmp_path: Path, reports: dict[str, bytes], name: str
) -> None:
    make, words = NASTY_REPORTS[name]
    report = tmp_path / "report.json"
    report.write_bytes(make(reports))

    completed, peak_mb, elapsed = run_measured(tmp_path, ["render", str(report), "--html", str(tmp_path / "r.html")])

    assert_one_line_refusal(completed, words)
    assert not (tmp_path / "r.html").exists()
    assert 0 < peak_mb <= PEAK_MB, peak_mb
    print(f"{name}: {elapsed:.1f} s, peak RSS {peak_mb} MB")


def test_a_signature_of_a_million_lines_and_a_key_file_of_10_mb_are_refused_within_bounds(tmp_path: Path) -> None:
    report, signature, key = tmp_path / "r.json", tmp_path / "r.json.sig", tmp_path / "key.pub"
    report.write_bytes(SIGNED)
    key.write_text(signing.public_key_line(SIGNER) + "\n")
    signature.write_bytes(b"-----BEGIN SSH SIGNATURE-----\n" + b"AAAA\n" * 10**6 + b"-----END SSH SIGNATURE-----\n")

    completed, _, _ = run_measured(tmp_path, ["verify", str(report), "--key", str(key)])

    assert completed.returncode == 1 and completed.stderr.count("\n") == 1, completed.stderr[-2000:]
    assert ": INVALID: " in completed.stderr and "Traceback" not in completed.stderr
    signature.write_bytes(signing.sign(SIGNED, SIGNER))
    key.write_bytes(b"ssh-ed25519 " + b"A" * 10 * 2**20 + b"\n")
    completed, _, _ = run_measured(tmp_path, ["verify", str(report), "--key", str(key)])
    assert_one_line_refusal(completed, "malformed ssh-ed25519 public key")
