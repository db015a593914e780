"""Product profiles are data: a port change is a one-line edit, and a broken profile is a located error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from preflight.inventory import Host, Inventory, load_inventory
from preflight.located_yaml import ConfigError
from preflight.plan import build_plan, count_checks
from preflight.probes import registry
from preflight.profiles import load_profiles
from preflight.resources import data_dir

KNOWN = frozenset(registry())


def _inventory(profiles_folder: Path, product: str) -> tuple[Inventory, dict[str, object]]:
    profiles = dict(load_profiles(profiles_folder, KNOWN))
    host = Host.model_validate(
        {"name": "h", "product": product, "address": "127.0.0.1"},
        context={"profiles": profiles, "inventory_dir": Path.cwd()},
    )
    return Inventory(Path("inventory.yaml"), (host,)), profiles


def test_shipped_profiles_require_the_documented_ports() -> None:
    profiles = load_profiles(known_checks=KNOWN)

    assert [port.port for port in profiles["pbxware"].ports] == [80, 81, 443, 2020]
    assert [port.port for port in profiles["serverware"].ports] == [80, 81, 443, 2020, 2222]
    assert [port.port for port in profiles["serverware"].ports_for("ssh")] == [2020, 2222]


def test_changing_a_required_port_is_a_one_line_edit(tmp_path: Path) -> None:
    folder = tmp_path / "checks"
    shutil.copytree(data_dir("checks"), folder)
    profile = folder / "pbxware.yaml"
    profile.write_text(profile.read_text().replace("{port: 2020,", "{port: 2021,"))
    inventory, profiles = _inventory(folder, "pbxware")

    ids = [target.check_id for target in build_plan(inventory, profiles)[0].targets]  # type: ignore[arg-type]

    assert ids == [
        "public-ip",
        "vantage",
        "tcp/80",
        "tcp/81",
        "tcp/443",
        "tcp/2021",
        "service/80",
        "service/81",
        "service/443",
        "service/2021",
        "ssh-root/2021",
        "gui-login/443",
        "setup-wizard-login/81",
    ]


def test_only_narrows_the_plan_to_the_named_kinds(tmp_path: Path) -> None:
    inventory, profiles = _inventory(data_dir("checks"), "serverware")

    ids = [target.check_id for target in build_plan(inventory, profiles, ["ssh-root"])[0].targets]  # type: ignore[arg-type]

    assert ids == ["ssh-root/2020", "ssh-root/2222"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "product: pbxware\ntitle: X\nports: []\ngui_login: {port: 443}\nchecks: [tcp]\n",
            "pbxware.yaml:3: ports: must not be empty",
        ),
        (
            "product: pbxware\ntitle: X\nports:\n  - {port: 80, service: gopher, purpose: x}\ngui_login: {port: 443}\nchecks: [tcp]\n",
            "pbxware.yaml:4: ports[0].service: input should be 'ssh', 'http', 'https', 'http-or-https' or 'sip'",
        ),
        (
            "product: pbxware\ntitle: X\nports:\n  - {port: 80, service: http, purpose: x}\ngui_login: {port: 443}\nchecks: [tcp, telnet]\n",
            "pbxware.yaml:6: checks[1]: no probe named 'telnet'; known: gui-login, public-ip, rtp, service, setup-wizard-login, sip, ssh-root, tcp, vantage",
        ),
        (
            "product: other\ntitle: X\nports:\n  - {port: 80, service: http, purpose: x}\ngui_login: {port: 443}\nchecks: [tcp]\n",
            "pbxware.yaml:1: product: must match the file name (pbxware)",
        ),
    ],
)
def test_broken_profile_is_a_located_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "pbxware.yaml").write_text(text)

    with pytest.raises(ConfigError) as raised:
        load_profiles(tmp_path, KNOWN)

    assert str(raised.value) == message


VOIP = "title: X\nports:\n  - {port: 5060, service: sip, purpose: x}\nchecks: [sip]\n"
PBXWARE = "product: pbxware\ntitle: X\nports:\n  - {port: 80, service: http, purpose: x}\ngui_login: {port: 443}\nchecks: [tcp]\n"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "nosuch-voip",
            "product: nosuch-voip\naddon_of: nosuch\n" + VOIP,
            "nosuch-voip.yaml:2: addon_of: no product profile named 'nosuch'",
        ),
        (
            "voip",
            "product: voip\naddon_of: pbxware\n" + VOIP,
            "voip.yaml:1: product: an add-on's name must start with its product: pbxware-",
        ),
        (
            "pbxware-voip",
            "product: pbxware-voip\naddon_of: pbxware\naddons: []\n" + VOIP,
            "pbxware-voip.yaml:3: addons: unknown key: add-on profiles name their product with addon_of",
        ),
        (
            "serverware",
            "product: serverware\n" + VOIP,
            "serverware.yaml:1: gui_login: is required in a product's profile",
        ),
    ],
    ids=["unknown-product", "name-without-product", "addons-in-a-file", "product-without-gui-login"],
)
def test_broken_add_on_profile_is_a_located_error(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / "pbxware.yaml").write_text(PBXWARE)
    (tmp_path / f"{name}.yaml").write_text(text)

    with pytest.raises(ConfigError) as raised:
        load_profiles(tmp_path, KNOWN)

    assert str(raised.value) == message


def test_an_add_on_joins_its_product_and_a_host_that_names_it(tmp_path: Path) -> None:
    profiles = load_profiles(data_dir("checks"), KNOWN)
    assert sorted(profiles) == ["pbxware", "serverware"]
    assert [addon.addon_name for addon in profiles["pbxware"].addons] == ["voip"]
    (tmp_path / "inventory.yaml").write_text(
        "hosts:\n  - {name: a, product: pbxware, address: 192.0.2.1, profiles: [voip]}\n"
        "  - {name: b, product: pbxware, address: 192.0.2.2}\n"
    )
    inventory = load_inventory(tmp_path / "inventory.yaml", profiles, {})

    plans = build_plan(inventory, profiles, ["sip", "rtp", "setup-wizard-login"])

    assert [[target.check_id for target in plan.targets] for plan in plans] == [
        ["setup-wizard-login/81", "sip/5060", "rtp"],
        ["setup-wizard-login/81"],
    ]
    assert plans[0].targets[1].purpose == "SIP signalling (UDP and TCP)"


@pytest.mark.parametrize("only", [(), ("sip", "rtp", "setup-wizard-login"), ("tcp",), ("ssh-root", "gui-login")])
def test_the_services_count_of_checks_is_the_plans(tmp_path: Path, only: tuple[str, ...]) -> None:
    """The service counts an accepted check's checks without building its plan: the count is the plan's length."""
    profiles = load_profiles(data_dir("checks"), KNOWN)
    (tmp_path / "inventory.yaml").write_text(
        "hosts:\n  - {name: a, product: pbxware, address: 192.0.2.1, profiles: [voip]}\n"
        "  - {name: b, product: pbxware, address: 192.0.2.2}\n"
        "  - {name: c, product: serverware, address: 192.0.2.3, gui: {allow_plain_http: true}}\n"
    )
    inventory = load_inventory(tmp_path / "inventory.yaml", profiles, {})

    planned = sum(len(plan.targets) for plan in build_plan(inventory, profiles, only))

    assert planned > 0
    assert count_checks(inventory, profiles, only) == planned
