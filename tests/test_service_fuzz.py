"""Whatever a client sends, the service answers with a 4xx and a reason, never a 500 or a traceback."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service_process import ServiceProcess, running_service

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
inventory_keys = st.sampled_from(["name", "product", "address", "gui", "ssh", "defaults", "hosts", "per_port",
                                  "root_password", "key_file", "password", "username", "require_public_ip", "2222"])
inventory_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30) | st.sampled_from(["pbxware", "127.0.0.2"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(inventory_keys, children, max_size=5),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    # No range is allowed: nothing these bodies name can be probed, and no limit is reached by the fuzzing.
    args = ["--limit-per-client", "100000", "--limit-per-target", "100000"]
    with running_service(tmp_path_factory.mktemp("fuzz"), args) as running:
        yield running
        assert running.probed() == []


def assert_clean_4xx(answer: requests.Response) -> None:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert "Traceback" not in answer.text
    if answer.headers.get("content-type", "").startswith("application/json"):
        message = answer.json()["error"]
        assert message and "\n" not in message


@FUZZ
@given(body=st.binary(max_size=3000))
def test_any_bytes_get_a_4xx(service: ServiceProcess, body: bytes) -> None:
    assert_clean_4xx(service.post_check(body, headers={"Content-Type": "application/json"}))


@FUZZ
@given(document=json_values)
def test_any_json_gets_a_4xx(service: ServiceProcess, document: object) -> None:
    assert_clean_4xx(service.post_check(json.dumps(document).encode(), headers={"Content-Type": "application/json"}))


@FUZZ
@given(inventory=inventory_like, ticket=json_values)
def test_any_inventory_shaped_body_gets_a_4xx(service: ServiceProcess, inventory: object, ticket: object) -> None:
    assert_clean_4xx(service.post_check({"ticket": ticket, "inventory": inventory}))


def _session(service: ServiceProcess) -> tuple[str, str]:
    page = service.get("/")
    cookie = page.headers["set-cookie"].split(";", 1)[0]
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    return cookie, token.group(1)


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(["product", "address", "gui_username", "gui_password",
                                               "root_password", "root_password_2222", "ticket", "contact", "x"]),
                              st.text(max_size=300), max_size=9))
def test_any_form_gets_the_form_back_with_reasons(service: ServiceProcess, fields: dict[str, str]) -> None:
    cookie, token = _session(service)
    answer = requests.post(service.url + "/", data={**fields, "csrf": token}, headers={"Cookie": cookie},
                           timeout=30, allow_redirects=False)
    assert_clean_4xx(answer)
    kept = [value for name, value in fields.items() if "password" not in name]
    blank = service.get("/").text
    for name in ("gui_password", "root_password", "root_password_2222"):
        value = fields.get(name, "")
        # A password is never sent back; the same text typed into a kept field (or in the page itself) may be.
        if len(value) >= 8 and not any(value in other for other in kept) and value not in blank:
            assert value not in answer.text


def test_the_fuzzing_reaches_the_inventory_loader(service: ServiceProcess, tmp_path: Path) -> None:
    """Control: a body of the right shape gets past the JSON checks to the loader's and the policy's reasons."""
    body = {"ticket": "T", "inventory": {"hosts": [{"name": "a", "product": "pbxware", "address": "127.0.0.2"}]}}
    answer = service.post_check(body)
    assert answer.status_code == 422
    assert answer.json()["error"] == "hosts[0].address: 127.0.0.2 is loopback: this service checks only public addresses"
