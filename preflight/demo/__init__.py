"""`preflight demo`: a real report within seconds, with no Docker, no root and no inventory of your own.

Throwaway targets start on loopback (an SSH server and an HTTPS GUI that this package makes), two demo
hosts are checked with the same plan, probes and renderers as `preflight check`, and the reports are written.
One host is set up as support needs it; the other has the usual mistakes, so the report shows remediation.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from preflight.demo.gui_server import demo_gui_server
from preflight.demo.ssh_server import demo_ssh_server
from preflight.inventory import Host, Inventory
from preflight.model import HostReport, RunReport
from preflight.options import RunOptions
from preflight.plan import build_plan
from preflight.profiles import Profile, load_profiles
from preflight.runner import run_plan

DEMO_TIMEOUT_SECONDS = 5.0
GUI_USERNAME = "admin"


@dataclass(frozen=True)
class DemoPorts:
    http: int
    https: int
    ssh: int


def demo_profile(ports: DemoPorts) -> Profile:
    """PBXware's profile, with its ports moved to the loopback ports the demo servers got."""
    shipped = load_profiles()["pbxware"].model_dump()
    return Profile.model_validate(
        shipped
        | {
            "title": "PBXware (demo, on loopback ports)",
            "ports": [
                {"port": ports.http, "service": "http", "purpose": "Web GUI (HTTP)"},
                {"port": ports.https, "service": "https", "purpose": "Web GUI (HTTPS)"},
                {"port": ports.ssh, "service": "ssh", "purpose": "SSH and Setup Wizard (root)"},
            ],
            "gui_login": shipped["gui_login"] | {"port": ports.https},
            # The demo serves no Setup Wizard (a root login on the web): the demo's checks are the ones it can pass.
            "setup_wizard_login": None,
            "checks": [kind for kind in shipped["checks"] if kind != "setup-wizard-login"],
            "addons": [],
        }
    )


def demo_hosts(profile: Profile, root_password: str, gui_password: str, folder: Path) -> tuple[Host, ...]:
    context = {"profiles": {profile.product: profile}, "inventory_dir": folder}
    ready = {
        "name": "demo-pbx",
        "product": profile.product,
        "address": "127.0.0.1",
        "require_public_ip": False,
        "ssh": {"root_password": root_password},
        "gui": {"username": GUI_USERNAME, "password": gui_password},
    }
    # The usual mistakes: a private address, and passwords that are not the system's.
    mistaken = ready | {
        "name": "demo-pbx-misconfigured",
        "require_public_ip": True,
        "ssh": {"root_password": secrets.token_urlsafe(12)},
        "gui": {"username": GUI_USERNAME, "password": secrets.token_urlsafe(12)},
    }
    return tuple(Host.model_validate(host, context=context) for host in (ready, mistaken))


def run_demo(on_host_done: Callable[[HostReport], None] | None = None) -> RunReport:
    """Start the demo servers, check the demo hosts, stop the servers; the report is real, the targets are ours."""
    root_password, gui_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="preflight-demo-")))
        ssh_port = stack.enter_context(demo_ssh_server(root_password))
        http_port, https_port = stack.enter_context(demo_gui_server(GUI_USERNAME, gui_password))
        profile = demo_profile(DemoPorts(http=http_port, https=https_port, ssh=ssh_port))
        inventory = Inventory(
            path=folder / "demo-inventory.yaml", hosts=demo_hosts(profile, root_password, gui_password, folder)
        )
        options = RunOptions(known_hosts=folder / "known_hosts")
        plans = build_plan(inventory, {profile.product: profile}, (), options)
        report = run_plan(plans, timeout=DEMO_TIMEOUT_SECONDS, concurrency=4, on_host_done=on_host_done)
    return replace(report, warnings=("this is a demo: the targets were preflight's own servers on loopback",))
