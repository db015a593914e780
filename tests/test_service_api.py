"""`preflight serve` as a process on loopback, driven over its JSON API: submissions, refusals, limits, signed
reports, restarts, secrets at rest, and `preflight check --remote` as its client."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.lab import new_secret
from tests.service_process import ServiceProcess, host, running_service, silent_listener

# 127.0.0.2 and 127.0.0.3 are this machine's loopback: nothing but what a test starts there answers.
TARGET, SLOW_TARGET = "127.0.0.2", "127.0.0.3"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    state = tmp_path_factory.mktemp("service")
    args = ["--allow-targets", f"{TARGET}/32", "--timeout", "3", "--max-hosts", "3", "--limit-per-client", "1000",
            "--max-body-token", "128", "--limit-per-target", "1000"]
    with running_service(state, args) as running:
        yield running


def submit_and_wait(service: ServiceProcess, body: dict[str, object]) -> dict[str, object]:
    answer = service.post_check(body)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status_url"] == f"/api/v1/checks/{answer.json()['id']}"
    return service.wait_done(answer.json()["id"])


def test_a_check_runs_the_cli_checks_and_its_report_verifies_with_ssh_keygen(service: ServiceProcess,
                                                                            tmp_path: Path) -> None:
    state = submit_and_wait(service, {"ticket": "T-100", "inventory": {"hosts": [host(TARGET)]}})
    assert state["state"] == "done"
    report = state["report"]
    assert isinstance(report, dict)
    checks = {check["id"]: check for check in report["hosts"][0]["checks"]}
    # The same checks as `preflight check` makes of a PBXware host, and nothing listens on 127.0.0.2.
    assert {"public-ip", "vantage", "tcp/80", "tcp/81", "tcp/443", "tcp/2020", "ssh-root/2020"} <= set(checks)
    assert checks["tcp/2020"]["evidence"]["state"] == "closed"
    assert state["progress"] == {"done": len(checks), "total": len(checks)}
    assert sorted(result["id"] for result in state["results"]) == sorted(checks)

    body = service.get(f"/api/v1/checks/{state['id']}/report.json").content
    signature = service.get(f"/api/v1/checks/{state['id']}/report.json.sig").content
    public_key = service.get("/api/v1/signing-key").text
    assert json.loads(body) == report
    assert re.fullmatch(r"ssh-ed25519 [A-Za-z0-9+/=]+ preflight\n", public_key)
    (tmp_path / "report.json").write_bytes(body)
    (tmp_path / "report.json.sig").write_bytes(signature)
    (tmp_path / "allowed_signers").write_text(f'preflight namespaces="preflight-report" {public_key}')
    (tmp_path / "service.pub").write_text(public_key)
    verified = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", "allowed_signers", "-I", "preflight", "-n", "preflight-report",
         "-s", "report.json.sig"], input=body, cwd=tmp_path, capture_output=True, timeout=30, check=False)
    assert verified.returncode == 0, verified.stderr
    ours = subprocess.run([sys.executable, "-m", "preflight", "verify", "report.json", "--key", "service.pub"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
    assert ours.returncode == 0, ours.stderr
    # Control: the same bytes with one byte changed do not verify.
    (tmp_path / "report.json").write_bytes(body.replace(b'"closed"', b'"opened"', 1))
    tampered = subprocess.run([sys.executable, "-m", "preflight", "verify", "report.json", "--key", "service.pub"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
    assert tampered.returncode == 1

    page = service.get(f"/checks/{state['id']}/report.html")
    assert page.status_code == 200 and "tcp/2020" in page.text
    assert "script-src" not in page.headers["content-security-policy"]


def test_the_keys_are_created_private(service: ServiceProcess) -> None:
    for name in ("signing_key", "service.key", "service.db"):
        assert (service.state / name).stat().st_mode & 0o777 == 0o600, name
    pub = (service.state / "signing_key.pub").read_text().split()[:2]
    assert service.get("/api/v1/signing-key").text.split()[:2] == pub


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is loopback: this service checks only public addresses"),
        ("::1", "::1 is loopback"),
        ("10.0.0.1", "10.0.0.1 is private (RFC 1918)"),
        ("192.168.1.1", "192.168.1.1 is private (RFC 1918)"),
        ("100.64.0.1", "100.64.0.1 is carrier-grade NAT"),
        ("169.254.169.254", "169.254.169.254 is link-local"),
        ("fd00::1", "fd00::1 is unique-local"),
        ("224.0.0.1", "224.0.0.1 is multicast"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1 is IPv4-mapped 127.0.0.1, loopback"),
        ("::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254, link-local"),
        ("2130706433", "another way of writing the IPv4 address 127.0.0.1"),
        ("0x7f.1", "another way of writing the IPv4 address 127.0.0.1"),
        ("017700000001", "another way of writing the IPv4 address 127.0.0.1"),
        ("127.1", "another way of writing the IPv4 address 127.0.0.1"),
        ("localhost", "localhost resolves to"),
    ],
)
def test_targets_outside_the_public_internet_are_refused_before_any_probe(
    service: ServiceProcess, address: str, reason: str
) -> None:
    before = service.probed()
    answer = service.post_check({"ticket": "T-1", "inventory": {"hosts": [host(address)]}})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error.startswith("hosts[0].address: ") and reason in error and "\n" not in error
    assert service.probed() == before


def test_an_allowed_range_is_probed_and_recorded(service: ServiceProcess) -> None:
    """The control of the refusals: the same path accepts an address the operator allowed, and records it."""
    state = submit_and_wait(service, {"ticket": "T-2", "inventory": {"hosts": [host(TARGET)]}})
    assert state["state"] == "done"
    assert service.probed()[-1] == TARGET


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "the body is not JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"ticket": "T", "inventory": {"hosts": []}, "extra": 1}', 422, "extra: unknown key"),
        (b'{"inventory": {"hosts": []}}', 422, "ticket: must be the ticket reference"),
        (b'{"ticket": "T"}', 422, "inventory: is required"),
        (b'{"ticket": "T", "inventory": {"hosts": []}}', 422, "hosts: must list at least one host"),
        (b'{"ticket": "T", "inventory": []}', 422, "inventory: must be an object"),
        (b'{"ticket": "T", "inventory": {"hosts": [{"name": "a", "product": "pbx", "address": "127.0.0.2"}]}}',
         422, "hosts[0].product: must be one of: pbxware, serverware"),
        (b'{"ticket": "T", "inventory": {"hosts": [{"name": "a", "product": "pbxware", "address": "a b"}]}}',
         422, "hosts[0].address: must be an IPv4 or IPv6 address or a DNS name"),
        (b'{"ticket": "T", "inventory": {"hosts": [{"name": "a", "product": "pbxware", "address": "127.0.0.2",'
         b' "ssh": {"key_file": "/etc/shadow"}}]}}', 422, "hosts[0].ssh.key_file: this service takes passwords only"),
        (json.dumps({"ticket": "T", "inventory": {"hosts": [host(TARGET, name=f"h{n}") for n in range(4)]}}).encode(),
         422, "hosts: 4 hosts; this service takes at most 3"),
    ],
)
def test_bad_requests_get_a_4xx_with_one_line(service: ServiceProcess, body: bytes, status: int, error: str) -> None:
    answer = service.post_check(body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]
    assert error in message and "\n" not in message and "Traceback" not in message


def test_a_posted_inventory_errs_as_the_cli_does(service: ServiceProcess, tmp_path: Path) -> None:
    """The same loader: the API's message is the CLI's, without the file's line number."""
    inventory = {"hosts": [{"name": "a", "product": "pbxware", "address": "127.0.0.2", "ssh": {"port": 22}}]}
    answer = service.post_check({"ticket": "T", "inventory": inventory})
    (tmp_path / "inventory.yaml").write_text(json.dumps(inventory))
    cli = subprocess.run([sys.executable, "-m", "preflight", "validate", "inventory.yaml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)
    assert answer.status_code == 422 and cli.returncode == 2
    cli_message = cli.stderr.splitlines()[0].split(": ", 3)[-1]  # "preflight: error: inventory.yaml:1: <message>"
    assert answer.json()["error"] == cli_message


@pytest.mark.parametrize("authorization", [None, "Bearer ", "Bearer pft_wrong", "Basic dGVzdHM6eA==", "pft_x"])
def test_submissions_need_a_valid_token(service: ServiceProcess, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    body = {"ticket": "T", "inventory": {"hosts": [host(TARGET)]}}
    answer = requests.post(service.url + "/api/v1/checks", json=body, headers=headers, timeout=30)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_bodies_over_64_kib_are_refused_whether_declared_or_streamed(service: ServiceProcess) -> None:
    big = json.dumps({"ticket": "T", "inventory": {"hosts": [host(TARGET)]}, "pad": "x" * 70_000}).encode()
    json_type = {"Content-Type": "application/json"}
    declared = service.post_check(big, token="pft_not-a-token", headers=json_type)
    assert declared.status_code == 413 and "64 KiB" in declared.json()["error"]
    streamed = service.post_check(iter([big[:40_000], big[40_000:]]), token="pft_not-a-token", headers=json_type)
    assert streamed.status_code == 413
    form = requests.post(service.url + "/", data={"ticket": "x" * 70_000}, timeout=30)
    assert form.status_code == 413
    # Control: the same request under the cap is taken.
    small = service.post_check({"ticket": "T", "inventory": {"hosts": [host(TARGET)]}})
    assert small.status_code == 202


def test_a_token_holder_may_send_a_larger_inventory_up_to_its_own_cap(service: ServiceProcess) -> None:
    """A support desk's inventory of thousands of hosts is larger than 64 KiB; the fixture sets the cap to 128 KiB."""
    json_type = {"Content-Type": "application/json"}
    larger = json.dumps({"ticket": "T", "inventory": {"hosts": [host(TARGET, name="a" * 60_000)]}}).encode()
    taken = service.post_check(larger, headers=json_type)
    assert taken.status_code == 202, taken.text
    too_large = json.dumps({"ticket": "T", "inventory": {"hosts": []}, "pad": "x" * 140_000}).encode()
    refused = service.post_check(too_large, headers=json_type)
    assert refused.status_code == 413 and "128 KiB" in refused.json()["error"]
    streamed = service.post_check(iter([too_large[:70_000], too_large[70_000:]]), headers=json_type)
    assert streamed.status_code == 413


def test_unknown_checks_and_methods_are_4xx(service: ServiceProcess) -> None:
    assert service.get("/api/v1/checks/nope").status_code == 404
    assert service.get("/checks/nope").status_code == 404
    assert service.get("/api/v1/checks/nope/report.json").status_code == 404
    assert requests.delete(service.url + "/api/v1/checks", timeout=30).status_code == 405


def test_openapi_document_describes_every_route(service: ServiceProcess) -> None:
    document = service.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/api/v1/checks", "/api/v1/checks/{check_id}", "/api/v1/checks/{check_id}/report.json",
        "/api/v1/checks/{check_id}/report.json.sig", "/api/v1/checks/{check_id}/report.html",
        "/api/v1/signing-key", "/api/v1/vantages",
    }
    assert set(document["paths"]["/api/v1/checks"]["post"]["responses"]) >= {"202", "400", "401", "413", "422", "429",
                                                                              "503"}
    assert service.get("/api/v1/vantages").json() == {"queue": False, "vantages": []}


def test_rate_limits_answer_429_with_retry_after(tmp_path: Path) -> None:
    args = ["--allow-targets", f"{TARGET}/32,{SLOW_TARGET}/32", "--limit-per-target", "2", "--limit-per-client", "3",
            "--timeout", "2"]
    with running_service(tmp_path, args) as service:
        body = {"ticket": "T", "inventory": {"hosts": [host(TARGET)]}}
        assert [service.post_check(body).status_code for _ in range(2)] == [202, 202]
        over_target = service.post_check(body)
        assert over_target.status_code == 429
        assert f"{TARGET} was checked 2 times in the last hour (limit 2)" in over_target.json()["error"]
        assert 3500 <= int(over_target.headers["Retry-After"]) <= 3600
        other = {"ticket": "T", "inventory": {"hosts": [host(SLOW_TARGET)]}}
        assert service.post_check(other).status_code == 202  # control: another target is still taken
        over_client = service.post_check(other)
        assert over_client.status_code == 429
        assert "this address has asked for 3 checks in the last hour (limit 3)" in over_client.json()["error"]


@pytest.fixture
def silent_sshd() -> Iterator[None]:
    """A silent sshd on 2020: a check of it runs to its deadline, long enough to stop what runs it."""
    with silent_listener(SLOW_TARGET, 2020):
        yield


def test_a_check_running_when_the_service_dies_is_run_again_after_restart(
    tmp_path: Path, silent_sshd: None
) -> None:
    args = ["--allow-targets", f"{TARGET}/32,{SLOW_TARGET}/32", "--timeout", "6", "--workers", "1"]
    gui, root = new_secret("gui"), new_secret("root")
    with running_service(tmp_path, args) as service:
        done_before = submit_and_wait(service, {"ticket": "T-done", "inventory": {"hosts": [host(TARGET)]}})
        slow = service.post_check({"ticket": "T-slow", "inventory": {
            "hosts": [host(SLOW_TARGET, gui_password=gui, root_password=root)]}}).json()["id"]
        give_up = time.monotonic() + 30
        while service.get(f"/api/v1/checks/{slow}").json()["state"] != "running" and time.monotonic() < give_up:
            time.sleep(0.1)
        assert service.get(f"/api/v1/checks/{slow}").json()["state"] == "running"
        # While the check waits on its silent target, its passwords are in the database only sealed.
        assert_no_secret_in_files([gui, root], service.state)
        service.stop(signal.SIGKILL)
        service.start()
        after = service.wait_done(slow, seconds=90)
        assert after["state"] == "done", after
        ids = [result["id"] for result in after["results"]]
        assert len(ids) == len(set(ids)), "a result was reported twice"
        assert service.get(f"/api/v1/checks/{done_before['id']}").json()["report"] == done_before["report"]
        assert "1 check(s) queued again" in service.log()
        assert_no_secret_in_files([gui, root], service.state)


def assert_no_secret_in_files(secrets: list[str], folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"a password is in {path.name} in clear"


def test_passwords_appear_nowhere_the_service_writes_or_answers(service: ServiceProcess) -> None:
    gui, root, second = new_secret("gui"), new_secret("root"), new_secret("root2222")
    inventory = {"hosts": [
        host(TARGET, name="pbx", gui_password=gui, root_password=root),
        {"name": "sw", "product": "serverware", "address": TARGET, "gui": {"username": "admin", "password": gui},
         "ssh": {"root_password": root, "per_port": {"2222": {"root_password": second}}}},
    ]}
    state = submit_and_wait(service, {"ticket": "T-secrets", "inventory": inventory})
    check_id = state["id"]
    answers = [json.dumps(state)] + [
        service.get(path).text
        for path in (f"/checks/{check_id}", f"/api/v1/checks/{check_id}/report.json",
                     f"/api/v1/checks/{check_id}/report.html", f"/api/v1/checks/{check_id}/report.json.sig")
    ]
    for text in [*answers, service.log()]:
        for secret in (gui, root, second):
            assert secret not in text
    assert_no_secret_in_files([gui, root, second], service.state)


def write_inventory(folder: Path, address: str) -> Path:
    path = folder / "inventory.yaml"
    path.write_text(
        "hosts:\n"
        f"  - name: pbx\n    product: pbxware\n    address: {address}\n"
        "    gui:\n      username: admin\n      password: ${GUI_PW}\n"
        "    ssh:\n      root_password: ${ROOT_PW}\n"
    )
    return path


def test_check_remote_writes_the_signed_report_and_exits_as_a_local_run(service: ServiceProcess,
                                                                         tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, TARGET)
    gui, root = new_secret("gui"), new_secret("root")
    env = {**os.environ, "GUI_PW": gui, "ROOT_PW": root, "PREFLIGHT_TOKEN": service.token}
    run = subprocess.run(
        [sys.executable, "-m", "preflight", "check", str(inventory), "--remote", service.url, "--ticket", "T-cli",
         "--json", "out.json", "--html", "out.html", "--junit", "out.xml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False,
    )
    assert run.returncode == 1, run.stderr  # nothing listens on 127.0.0.2: not ready, as a local run says
    for text in (run.stdout, run.stderr, *(p.read_text() for p in tmp_path.glob("out.*"))):
        assert gui not in text and root not in text
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["hosts"][0]["checks"][0]["id"] == "public-ip"
    (tmp_path / "service.pub").write_text(service.get("/api/v1/signing-key").text)
    verified = subprocess.run([sys.executable, "-m", "preflight", "verify", "out.json", "--key", "service.pub"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
    assert verified.returncode == 0, verified.stderr
    assert "tcp/2020" in (tmp_path / "out.html").read_text()
    checks = service.get("/api/v1/checks/" + _newest_id(service)).json()
    assert checks["ticket"] == "T-cli"


def _newest_id(service: ServiceProcess) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{service.state / 'service.db'}")
    with engine.connect() as connection:
        value = connection.execute(text("SELECT id FROM checks ORDER BY created_at DESC LIMIT 1")).scalar_one()
    engine.dispose()
    return str(value)


@pytest.mark.parametrize(
    ("extra", "env_token", "message"),
    [
        ([], False, "--remote needs the service's API token"),
        (["--token", "pft_wrong"], False, "the service refused the check (401)"),
        (["--sign", "key"], True, "--sign: a remote check comes back signed by the service"),
    ],
)
def test_check_remote_usage_errors_exit_2(service: ServiceProcess, tmp_path: Path, extra: list[str],
                                          env_token: bool, message: str) -> None:
    inventory = write_inventory(tmp_path, TARGET)
    env = {**os.environ, "GUI_PW": "x" * 10, "ROOT_PW": "y" * 10}
    env.pop("PREFLIGHT_TOKEN", None)
    if env_token:
        env["PREFLIGHT_TOKEN"] = service.token
    run = subprocess.run(
        [sys.executable, "-m", "preflight", "check", str(inventory), "--remote", service.url, "--json", "o.json",
         *extra], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 2, run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "o.json").exists()


def test_check_remote_refused_target_exits_2_with_the_reason(service: ServiceProcess, tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path, "10.1.2.3")
    env = {**os.environ, "GUI_PW": "x" * 10, "ROOT_PW": "y" * 10, "PREFLIGHT_TOKEN": service.token}
    run = subprocess.run([sys.executable, "-m", "preflight", "check", str(inventory), "--remote", service.url],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "preflight: error: the service refused the check (422): hosts[0].address: 10.1.2.3 is private (RFC 1918): "
        "this service checks only public addresses"
    ]


def test_only_narrows_a_check_to_some_kinds_as_the_cli_does(service: ServiceProcess) -> None:
    state = submit_and_wait(service, {"ticket": "T-only", "inventory": {"hosts": [host(TARGET)]}, "only": ["tcp"]})
    assert [check["id"] for check in state["report"]["hosts"][0]["checks"]] == ["tcp/80", "tcp/81", "tcp/443",
                                                                                "tcp/2020"]
    refused = service.post_check({"ticket": "T", "inventory": {"hosts": [host(TARGET)]}, "only": ["nmap"]})
    assert refused.status_code == 422 and refused.json()["error"].startswith("only: must be a list of check kinds")


def test_an_unknown_key_with_a_newline_is_named_on_one_line(service: ServiceProcess) -> None:
    answer = service.post_check(b'{"\\n": 1}', headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["error"] == '"\\n": unknown key; expected one of: ticket, contact, inventory, vantages, only'


def test_a_poller_gets_only_the_results_it_has_not_seen(service: ServiceProcess) -> None:
    state = submit_and_wait(service, {"ticket": "T-since", "inventory": {"hosts": [host(TARGET)]}})
    every = service.get(f"/api/v1/checks/{state['id']}").json()["results"]
    later = service.get(f"/api/v1/checks/{state['id']}?since=3").json()
    assert later["results_since"] == 3 and later["results"] == every[3:]
    assert service.get(f"/api/v1/checks/{state['id']}?since=999999").json()["results"] == []
    assert service.get(f"/api/v1/checks/{state['id']}?since=-1").status_code == 400
