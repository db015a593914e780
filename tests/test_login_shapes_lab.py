"""gui-login against six login pages preflight did not shape (lab/target/login_shapes.py), with only profile data.

Each page is its own small server with its own conventions: other field names, an absolute or query-string action,
a redirect chain that sets the session cookie first, a CSRF token only in a <meta> tag, refusals as 200 or 401,
success shown only by a redirect with a new session cookie. The profile says only which port the GUI is on: no
field names, no markers. For each page a wrong password must fail, so a pass is not a false pass; and each server
logs every POST with which fields held the right password, which proves one submission per attempt and that the
password went only to the password field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from preflight.inventory import load_inventory
from preflight.plan import build_plan
from preflight.profiles import load_profiles
from preflight.render import html, junit, terminal
from preflight.render import json as json_render
from preflight.resources import data_dir
from preflight.runner import run_plan
from tests.lab import (
    SCHEMA,
    LabTarget,
    assert_no_secrets,
    lab_target,
    new_secret,
    require_lab,
    secret_forms,
    write_inventory,
)

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

FIRST_PORT = 8441
# shape -> (username field, password field, what else its page needed)
SHAPES = {
    "email-pass": ("email", "pass", {"decided_by": "form-returned"}),
    "bracket-names": ("login[user]", "login[secret]", {"decided_by": "http-401", "form_action": "/session/create"}),
    "query-action": ("user", "passwd", {"form_action": "/cgi-bin/auth.cgi"}),
    "redirect-chain": ("username", "password", {"login_page_redirects": ["/index.php"]}),
    "meta-csrf": ("username", "password", {"meta_csrf_fields": ["csrf-token"]}),
    "dashboard-redirect": ("username", "password", {"after_login_path": "/login"}),
}


@pytest.fixture(scope="module")
def shapes_target() -> Iterator[LabTarget]:
    require_lab()
    ports = tuple(range(FIRST_PORT, FIRST_PORT + len(SHAPES)))
    with lab_target(ssh_ports=(), env={"LOGIN_SHAPES": "on"}, wait_ports=ports) as target:
        yield target


def _profile_folder(folder: Path, port: int) -> Path:
    """The shipped profiles, with PBXware's Web GUI moved to `port`: the only thing this GUI's profile says."""
    checks = folder / "checks"
    checks.mkdir()
    for shipped in data_dir("checks").glob("*.yaml"):
        (checks / shipped.name).write_text(shipped.read_text())
    pbxware = yaml.safe_load((checks / "pbxware.yaml").read_text())
    pbxware["ports"].append({"port": port, "service": "https", "purpose": "Web GUI (HTTPS)"})
    pbxware["gui_login"] = {"port": port}
    (checks / "pbxware.yaml").write_text(yaml.safe_dump(pbxware, sort_keys=False))
    return checks


@pytest.mark.parametrize("shape", list(SHAPES))
def test_login_works_on_a_gui_of_other_conventions_and_a_wrong_password_fails(
    tmp_path: Path, shapes_target: LabTarget, shape: str
) -> None:
    port = FIRST_PORT + list(SHAPES).index(shape)
    profiles = load_profiles(_profile_folder(tmp_path, port))
    hosts = [
        {
            "name": name,
            "product": "pbxware",
            "address": shapes_target.ip,
            "require_public_ip": False,
            "gui": {"username": shapes_target.gui_username, "password": f"${{{variable}}}"},
        }
        for name, variable in (("right", "GUI_PASSWORD"), ("wrong", "WRONG_GUI_PASSWORD"))
    ]
    environ = {"GUI_PASSWORD": shapes_target.gui_password, "WRONG_GUI_PASSWORD": new_secret("wrong-gui")}
    inventory = load_inventory(write_inventory(tmp_path, yaml.safe_dump({"hosts": hosts})), profiles, environ)
    log_before = shapes_target.logs()

    report = run_plan(build_plan(inventory, profiles, ["gui-login"]), timeout=15, concurrency=1)

    document = json_render.to_document(report)
    jsonschema.validate(document, SCHEMA)
    outputs = {
        "json": json.dumps(document),
        "html": html.render(report),
        "junit": junit.render(report),
        "terminal": terminal.render(report),
    }
    assert_no_secrets(outputs, secret_forms(list(environ.values()), [shapes_target.gui_username]))
    results = {host["name"]: host["checks"][0] for host in document["hosts"]}
    right, wrong = results["right"], results["wrong"]
    user_field, secret_field, expected = SHAPES[shape]
    assert (right["id"], right["status"], right["evidence"]["outcome"]) == (f"gui-login/{port}", "pass", "logged-in")
    assert (right["evidence"]["username_field"], right["evidence"]["password_field"]) == (user_field, secret_field)
    assert (wrong["status"], wrong["evidence"]["outcome"]) == ("fail", "wrong-credentials"), wrong["summary"]
    for key, value in expected.items():
        seen = {name: result["evidence"].get(key) for name, result in results.items()}
        assert value in seen.values(), (key, seen)
    posts = [line for line in shapes_target.logs()[len(log_before) :].splitlines() if f"shape {shape}: POST" in line]
    assert len(posts) == 2, posts  # one submission per host
    assert sorted(post.rsplit("password_in=", 1)[1] for post in posts) == sorted(["[]", f"['{secret_field}']"])
