"""The inventory contract: every broken file is one line naming the file, the line and the field; valid files load."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest
from pydantic import SecretStr

import preflight.cli
from preflight.inventory import Inventory, load_inventory
from preflight.located_yaml import ConfigError, ConfigErrors
from preflight.profiles import Profile, load_profiles

PIN = "SHA256:" + "A" * 43
UNSET = "PREFLIGHT_TEST_NEVER_SET"


@pytest.fixture(scope="module")
def profiles() -> Mapping[str, Profile]:
    return load_profiles()


def _write(tmp_path: Path, text: str) -> Path:
    """Write an inventory; blank text is written as it is, so whitespace-only files stay whitespace-only."""
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent(text) if text.strip() else text, encoding="utf-8")
    return path


def _load(
    tmp_path: Path, text: str, profiles: Mapping[str, Profile], environ: Mapping[str, str] | None = None
) -> Inventory:
    return load_inventory(_write(tmp_path, text), profiles, environ={} if environ is None else environ)


def _error(tmp_path: Path, text: str, profiles: Mapping[str, Profile], environ: Mapping[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text, profiles, environ)
    return str(caught.value)


# Each case: the inventory text, and the exact one-line error. `<dir>` stands for the inventory's folder.
BROKEN = [
    # --- the file as a whole ---------------------------------------------------------------------------------------
    pytest.param("", "inventory.yaml:1: top level: the file is empty; it needs a 'hosts' list", id="empty-file"),
    pytest.param(
        "   \n\t\n  \n", "inventory.yaml:1: top level: the file is empty; it needs a 'hosts' list", id="whitespace-only"
    ),
    pytest.param(
        """\
        # hosts will be added later
        """,
        "inventory.yaml:1: top level: the file is empty; it needs a 'hosts' list",
        id="comments-only",
    ),
    pytest.param(
        """\
        - name: pbx1
          product: pbxware
        """,
        "inventory.yaml:1: top level: must be a mapping with a 'hosts' list, not a list",
        id="top-level-list",
    ),
    pytest.param(
        """\
        pbx1.example.com
        """,
        "inventory.yaml:1: top level: must be a mapping with a 'hosts' list, not a string",
        id="top-level-string",
    ),
    pytest.param(
        """\
        42
        """,
        "inventory.yaml:1: top level: must be a mapping with a 'hosts' list, not a number",
        id="top-level-number",
    ),
    # --- YAML syntax -------------------------------------------------------------------------------------------------
    pytest.param(
        """\
        hosts:
          - name: pbx1
        \tproduct: pbxware
        """,
        "inventory.yaml:3: YAML syntax error: a tab character is not allowed here; indent YAML with spaces",
        id="tab-indentation",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
           address: 192.0.2.10
        """,
        "inventory.yaml:4: YAML syntax error: expected <block end>, but found '<block mapping start>'; "
        "check the indentation",
        id="yaml-misaligned-key",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware: 6
        """,
        "inventory.yaml:3: YAML syntax error: mapping values are not allowed here",
        id="yaml-colon-in-plain-value",
    ),
    pytest.param(
        """\
        hosts: [
          {name: pbx1, product: pbxware, address: 192.0.2.10}
        """,
        "inventory.yaml:1: YAML syntax error: expected ',' or ']', but got '<stream end>' "
        "while parsing a flow sequence that starts on this line",
        id="yaml-unclosed-bracket",
    ),
    pytest.param(
        """\
        hosts:
          - name: 'pbx1
            product: pbxware
        """,
        "inventory.yaml:2: YAML syntax error: found unexpected end of stream "
        "while scanning a quoted scalar that starts on this line",
        id="yaml-unclosed-quote",
    ),
    pytest.param(
        """\
        hosts:
          - {name: pbx1, product: pbxware, address: 192.0.2.10}
        ---
        hosts: []
        """,
        "inventory.yaml:3: YAML syntax error: expected a single document in the stream, but found another document",
        id="yaml-two-documents",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh: *shared_ssh
        """,
        "inventory.yaml:5: YAML syntax error: found undefined alias 'shared_ssh'",
        id="yaml-undefined-alias",
    ),
    pytest.param(
        """\
        base: &base
          product: pbxware
        hosts:
          - <<: *base
            name: pbx1
            address: 192.0.2.10
        """,
        "inventory.yaml:4: hosts[0]: merge keys (<<) are not supported; write the keys out, or use defaults:",
        id="yaml-merge-key",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh:
              root_password: !vault |
                $ANSIBLE_VAULT;1.1;AES256
        """,
        "inventory.yaml:6: hosts[0].ssh.root_password: YAML tag !vault is not supported",
        id="yaml-unknown-tag",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            require_public_ip: !!int yes
        """,
        "inventory.yaml:5: hosts[0].require_public_ip: is not a valid !!int value",
        id="yaml-tag-that-does-not-fit-its-value",
    ),
    pytest.param(
        """\
        hosts: &all
          - *all
        """,
        "inventory.yaml:1: top level: nested too deeply, or an alias (*name) is used inside its own value",
        id="yaml-alias-inside-itself",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            name: pbx2
            product: pbxware
            address: 192.0.2.10
        """,
        "inventory.yaml:3: hosts[0].name: duplicate key",
        id="duplicate-yaml-key",
    ),
    pytest.param(
        """\
        hosts:
          - {name: pbx1, product: pbxware, address: 192.0.2.10}
        hosts:
          - {name: pbx2, product: pbxware, address: 192.0.2.11}
        """,
        "inventory.yaml:3: hosts: duplicate key",
        id="duplicate-top-level-key",
    ),
    # --- unknown keys --------------------------------------------------------------------------------------------------
    pytest.param(
        """\
        host:
          - {name: pbx1, product: pbxware, address: 192.0.2.10}
        """,
        "inventory.yaml:1: host: unknown key; expected one of: defaults, hosts",
        id="unknown-top-level-key",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            port: 2020
        """,
        "inventory.yaml:5: hosts[0].port: unknown key; expected one of: name, product, address, gui, ssh, setup_wizard, require_public_ip, profiles",
        id="unknown-host-key",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh:
              user: root
        """,
        "inventory.yaml:6: hosts[0].ssh.user: unknown key; "
        "expected one of: root_password, key_file, key_passphrase, certificate_file, host_key, per_port",
        id="unknown-ssh-key",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            gui:
              user: admin
        """,
        "inventory.yaml:6: hosts[0].gui.user: unknown key; expected one of: username, password, allow_plain_http",
        id="unknown-gui-key",
    ),
    pytest.param(
        """\
        hosts:
          - name: sw1
            product: serverware
            address: 192.0.2.20
            ssh:
              per_port:
                2222:
                  password: x
        """,
        "inventory.yaml:8: hosts[0].ssh.per_port.2222.password: unknown key; "
        "expected one of: root_password, key_file, key_passphrase, certificate_file",
        id="unknown-per-port-key",
    ),
    # --- the hosts list ---------------------------------------------------------------------------------------------
    pytest.param(
        """\
        defaults:
          require_public_ip: false
        """,
        "inventory.yaml:1: hosts: is required",
        id="missing-hosts",
    ),
    pytest.param(
        """\
        hosts: []
        """,
        "inventory.yaml:1: hosts: must list at least one host",
        id="empty-hosts-list",
    ),
    pytest.param(
        """\
        hosts:
        """,
        "inventory.yaml:1: hosts: must be a list, not null",
        id="hosts-null",
    ),
    pytest.param(
        """\
        hosts:
          pbx1:
            product: pbxware
        """,
        "inventory.yaml:1: hosts: must be a list, not a mapping",
        id="hosts-not-a-list",
    ),
    pytest.param(
        """\
        hosts:
          - {name: pbx1, product: pbxware, address: 192.0.2.10}
          - pbx2.example.com
        """,
        "inventory.yaml:3: hosts[1]: must be a mapping, not a string",
        id="host-not-a-mapping",
    ),
    pytest.param(
        """\
        hosts:
          -
        """,
        "inventory.yaml:2: hosts[0]: must be a mapping, not null",
        id="host-null",
    ),
    # --- required host fields -------------------------------------------------------------------------------------------
    pytest.param(
        """\
        hosts:
          - product: pbxware
            address: 192.0.2.10
        """,
        "inventory.yaml:2: hosts[0].name: is required",
        id="missing-name",
    ),
    pytest.param(
        """\
        hosts:
          - name: ""
            product: pbxware
            address: 192.0.2.10
        """,
        "inventory.yaml:2: hosts[0].name: must not be empty",
        id="empty-name",
    ),
    pytest.param(
        """\
        hosts:
          - {name: pbx1, product: pbxware, address: 192.0.2.10}
          - name: pbx2
            address: 192.0.2.11
        """,
        "inventory.yaml:3: hosts[1].product: is required",
        id="missing-product",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
        """,
        "inventory.yaml:2: hosts[0].address: is required",
        id="missing-address",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: asterisk
            address: 192.0.2.10
        """,
        "inventory.yaml:3: hosts[0].product: must be one of: pbxware, serverware (got 'asterisk')",
        id="unknown-product",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: pbx_1.example.com
        """,
        "inventory.yaml:4: hosts[0].address: must be an IPv4 or IPv6 address or a DNS name",
        id="bad-address",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.300
        """,
        "inventory.yaml:4: hosts[0].address: must be an IPv4 or IPv6 address or a DNS name",
        id="bad-ipv4-address",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 3232235777
        """,
        "inventory.yaml:4: hosts[0].address: must be a string",
        id="address-a-number",
    ),
    # --- per-port credentials -----------------------------------------------------------------------------------------
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh:
              per_port:
                0: {root_password: x}
        """,
        "inventory.yaml:7: hosts[0].ssh.per_port.0: must be 1-65535",
        id="per-port-zero",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh:
              per_port:
                70000: {root_password: x}
        """,
        "inventory.yaml:7: hosts[0].ssh.per_port.70000: must be 1-65535",
        id="per-port-70000",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh:
              per_port:
                2222: {root_password: x}
        """,
        "inventory.yaml:7: hosts[0].ssh.per_port.2222: is not an SSH port of pbxware (2020)",
        id="per-port-not-an-ssh-port-of-pbxware",
    ),
    pytest.param(
        """\
        hosts:
          - name: sw1
            product: serverware
            address: 192.0.2.20
            ssh:
              per_port:
                443: {root_password: x}
        """,
        "inventory.yaml:7: hosts[0].ssh.per_port.443: is not an SSH port of serverware (2020, 2222)",
        id="per-port-a-web-port",
    ),
    pytest.param(
        """\
        hosts:
          - name: sw1
            product: serverware
            address: 192.0.2.20
            ssh:
              per_port:
                2020: {root_password: a}
                '2222': {root_password: b}
        """,
        "inventory.yaml:8: hosts[0].ssh.per_port.2222: must be a port number without quotes",
        id="per-port-quoted-number",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh:
              per_port:
                ssh: {root_password: x}
        """,
        "inventory.yaml:7: hosts[0].ssh.per_port.ssh: must be a port number",
        id="per-port-not-a-number",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh:
              per_port: [2020]
        """,
        "inventory.yaml:6: hosts[0].ssh.per_port: must be a mapping",
        id="per-port-a-list",
    ),
    # --- wrong types ---------------------------------------------------------------------------------------------------
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            require_public_ip: "yes please"
        """,
        "inventory.yaml:5: hosts[0].require_public_ip: must be true or false",
        id="require-public-ip-not-a-boolean",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            gui:
              allow_plain_http: "yes"
        """,
        "inventory.yaml:6: hosts[0].gui.allow_plain_http: must be true or false",
        id="allow-plain-http-a-string",
    ),
    pytest.param(
        """\
        defaults:
          gui: {allow_plain_http: 1}
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
        """,
        "inventory.yaml:2: defaults.gui.allow_plain_http: must be true or false",
        id="allow-plain-http-a-number-in-defaults",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh:
              root_password: 123456
        """,
        "inventory.yaml:6: hosts[0].ssh.root_password: YAML read the value as a number, not text; "
        "quote the value: root_password: '...'",
        id="password-a-number",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            gui: admin
        """,
        "inventory.yaml:5: hosts[0].gui: must be a mapping",
        id="gui-not-a-mapping",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh:
              host_key: 9f:86:d0:81:88:4c:7d:65:9a:2f:ea:a0:c5:5a:d0:15
        """,
        "inventory.yaml:6: hosts[0].ssh.host_key: must be an OpenSSH fingerprint: SHA256: then 43 base64 characters "
        "(ssh-keygen -lf)",
        id="host-key-not-a-sha256-pin",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh:
              key_file: keys/missing_ed25519
        """,
        "inventory.yaml:6: hosts[0].ssh.key_file: no such key file: <dir>/keys/missing_ed25519",
        id="key-file-does-not-exist",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh:
              key_file: 42
        """,
        "inventory.yaml:6: hosts[0].ssh.key_file: must be a file path",
        id="key-file-a-number",
    ),
    pytest.param(
        """\
        hosts:
          - {name: pbx1, product: pbxware, address: 192.0.2.10}
          - {name: pbx2, product: pbxware, address: 192.0.2.11}
          - name: pbx1
            product: pbxware
            address: 192.0.2.12
        """,
        "inventory.yaml:4: hosts[2].name: duplicate host name 'pbx1' (first used on line 2)",
        id="duplicate-host-name",
    ),
    # --- environment references ---------------------------------------------------------------------------------------
    pytest.param(
        f"""\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh:
              root_password: ${{{UNSET}}}
        """,
        f"inventory.yaml:6: hosts[0].ssh.root_password: environment variable {UNSET} is not set (host pbx1)",
        id="env-var-unset",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            gui:
              password: ${1PASSWORD}
        """,
        "inventory.yaml:6: hosts[0].gui.password: a ${...} reference must name an environment variable: letters, digits and _",
        id="env-reference-bad-name",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            gui:
              password: ${}
        """,
        "inventory.yaml:6: hosts[0].gui.password: a ${...} reference must name an environment variable: letters, digits and _",
        id="env-reference-empty",
    ),
    pytest.param(
        """\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh:
              root_password: ${ROOT_PASSWORD
        """,
        "inventory.yaml:6: hosts[0].ssh.root_password: ${ has no closing }; write $$ for a literal $",
        id="env-reference-unclosed",
    ),
    # --- defaults ----------------------------------------------------------------------------------------------------
    pytest.param(
        """\
        defaults:
          product: pbxware
          name: pbx
        hosts:
          - address: 192.0.2.10
        """,
        "inventory.yaml:3: defaults.name: cannot be a default; every host sets its own\n"
        "inventory.yaml:5: hosts[0].name: is required",
        id="name-in-defaults",
    ),
    pytest.param(
        """\
        defaults:
          address: 192.0.2.10
        hosts:
          - name: pbx1
            product: pbxware
        """,
        "inventory.yaml:2: defaults.address: cannot be a default; every host sets its own\n"
        "inventory.yaml:4: hosts[0].address: is required",
        id="address-in-defaults",
    ),
    pytest.param(
        """\
        defaults:
          - require_public_ip: false
        hosts:
          - {name: pbx1, product: pbxware, address: 192.0.2.10}
        """,
        "inventory.yaml:1: defaults: must be a mapping, not a list",
        id="defaults-not-a-mapping",
    ),
    pytest.param(
        """\
        defaults:
          require_public_ip: sometimes
        hosts:
          - {name: pbx1, product: pbxware, address: 192.0.2.10}
        """,
        "inventory.yaml:2: defaults.require_public_ip: must be true or false",
        id="defaults-bad-value",
    ),
    pytest.param(
        """\
        defaults:
          product: pbxware
          ssh:
            host_key: not-a-pin
        hosts:
          - name: pbx1
            address: 192.0.2.10
            ssh:
              root_password: x
        """,
        "inventory.yaml:4: defaults.ssh.host_key: must be an OpenSSH fingerprint: SHA256: then 43 base64 characters "
        "(ssh-keygen -lf)",
        id="defaults-bad-value-under-a-section-the-host-also-sets",
    ),
    pytest.param(
        """\
        defaults:
          timeout: 5
        hosts:
          - {name: pbx1, product: pbxware, address: 192.0.2.10}
        """,
        "inventory.yaml:2: defaults.timeout: unknown key; expected one of: product, gui, ssh, setup_wizard, require_public_ip, profiles",
        id="defaults-unknown-key",
    ),
    pytest.param(
        f"""\
        defaults:
          ssh:
            root_password: ${{{UNSET}}}
        hosts:
          - {{name: pbx1, product: pbxware, address: 192.0.2.10}}
        """,
        f"inventory.yaml:3: defaults.ssh.root_password: environment variable {UNSET} is not set (host pbx1)",
        id="defaults-env-var-unset",
    ),
    pytest.param(
        """\
        defaults:
          ssh:
            per_port:
              2222: {root_password: x}
        hosts:
          - {name: sw1, product: serverware, address: 192.0.2.20}
          - {name: pbx1, product: pbxware, address: 192.0.2.10}
        """,
        "inventory.yaml:4: defaults.ssh.per_port.2222: is not an SSH port of pbxware (2020)",
        id="defaults-per-port-not-an-ssh-port-of-one-host",
    ),
]


@pytest.mark.parametrize(("text", "message"), BROKEN)
def test_broken_inventory_reports_file_line_and_field(
    tmp_path: Path, profiles: Mapping[str, Profile], text: str, message: str
) -> None:
    expected = message.replace("<dir>", str(tmp_path.resolve()))

    assert _error(tmp_path, text, profiles) == expected


def test_file_that_is_not_utf8_is_a_located_error(tmp_path: Path, profiles: Mapping[str, Profile]) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_bytes(b"hosts:\n  - name: caf\xe9\n")

    with pytest.raises(ConfigError, match=r"^inventory\.yaml:1: top level: the file is not UTF-8 text$"):
        load_inventory(path, profiles, environ={})


# --- secrets ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "message"),
    [
        pytest.param(
            "ssh:\n  root_password: 918273645",
            "inventory.yaml:6: hosts[0].ssh.root_password: YAML read the value as a number, not text; "
            "quote the value: root_password: '...'",
            id="ssh",
        ),
        pytest.param(
            "ssh:\n  key_passphrase: 918273645",
            "inventory.yaml:6: hosts[0].ssh.key_passphrase: YAML read the value as a number, not text; "
            "quote the value: key_passphrase: '...'",
            id="key-passphrase",
        ),
        pytest.param(
            "gui:\n  password: 918273645",
            "inventory.yaml:6: hosts[0].gui.password: YAML read the value as a number, not text; "
            "quote the value: password: '...'",
            id="gui",
        ),
        pytest.param(
            "gui:\n  password: [918273645]",
            "inventory.yaml:6: hosts[0].gui.password: must be text, not a list; quote the value: password: '...'",
            id="gui-list",
        ),
        pytest.param(
            "ssh:\n  per_port:\n    2020:\n      root_password: 918273645",
            "inventory.yaml:8: hosts[0].ssh.per_port.2020.root_password: YAML read the value as a number, not text; "
            "quote the value: root_password: '...'",
            id="per-port",
        ),
    ],
)
def test_secret_of_the_wrong_type_is_named_but_never_echoed(
    tmp_path: Path, profiles: Mapping[str, Profile], section: str, message: str
) -> None:
    text = "hosts:\n  - name: pbx1\n    product: pbxware\n    address: 192.0.2.10\n" + textwrap.indent(section, "    ")

    error = _error(tmp_path, text + "\n", profiles)

    assert error == message
    assert "918273645" not in error


def test_secrets_are_secretstr_and_never_appear_in_repr(tmp_path: Path, profiles: Mapping[str, Profile]) -> None:
    text = """\
        hosts:
          - name: sw1
            product: serverware
            address: 192.0.2.20
            gui:
              username: admin
              password: ${GUI_PASSWORD}
            ssh:
              root_password: ${ROOT_PASSWORD}
              key_passphrase: literal-passphrase
              per_port:
                2222:
                  root_password: second-root-password
        """
    environ = {"GUI_PASSWORD": "gui-secret-1", "ROOT_PASSWORD": "root-secret-2"}

    host = _load(tmp_path, text, profiles, environ).hosts[0]

    values = (host.gui.password, host.ssh.root_password, host.ssh.key_passphrase, host.ssh.per_port[2222].root_password)
    assert all(isinstance(value, SecretStr) for value in values)
    secrets = ("gui-secret-1", "root-secret-2", "literal-passphrase", "second-root-password")
    assert set(host.secrets()) == set(secrets)
    for secret in secrets:
        assert secret not in repr(host)
        assert secret not in str(host)


# --- valid inventories --------------------------------------------------------------------------------------------------


def test_defaults_are_merged_into_every_host_and_hosts_override_them(
    tmp_path: Path, profiles: Mapping[str, Profile]
) -> None:
    text = f"""\
        defaults:
          product: pbxware
          require_public_ip: false
          gui:
            username: admin
          ssh:
            root_password: shared-root
        hosts:
          - name: pbx1
            address: 192.0.2.10
          - name: sw1
            product: serverware
            address: sw1.example.com
            require_public_ip: true
            ssh:
              host_key: {PIN}
        """

    pbx1, sw1 = _load(tmp_path, text, profiles).hosts

    assert (pbx1.product, pbx1.require_public_ip, pbx1.gui.username) == ("pbxware", False, "admin")
    assert pbx1.ssh.root_password is not None and pbx1.ssh.root_password.get_secret_value() == "shared-root"
    assert (sw1.product, sw1.require_public_ip, sw1.gui.username) == ("serverware", True, "admin")
    assert sw1.ssh.host_key == PIN
    assert sw1.ssh.root_password is not None and sw1.ssh.root_password.get_secret_value() == "shared-root"


def test_plain_http_gui_login_is_off_unless_a_host_or_the_defaults_opt_in(
    tmp_path: Path, profiles: Mapping[str, Profile]
) -> None:
    text = """\
        defaults:
          gui: {allow_plain_http: true}
        hosts:
          - {name: inherits, product: pbxware, address: 192.0.2.10}
          - {name: declines, product: pbxware, address: 192.0.2.11, gui: {allow_plain_http: false}}
        """
    inherits, declines = _load(tmp_path, text, profiles).hosts
    (plain,) = _load(tmp_path, "hosts:\n  - {name: p, product: pbxware, address: 192.0.2.12}\n", profiles).hosts

    assert (inherits.gui.allow_plain_http, declines.gui.allow_plain_http, plain.gui.allow_plain_http) == (
        True,
        False,
        False,
    )


def test_env_references_are_expanded_from_the_given_environment(
    tmp_path: Path, profiles: Mapping[str, Profile], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROOT_PASSWORD", "from-the-process-environment")
    text = """\
        hosts:
          - name: pbx1
            product: pbxware
            address: ${PBX_ADDRESS}
            gui:
              username: ${GUI_USER}-ops
            ssh:
              root_password: ${ROOT_PASSWORD}
        """
    environ = {"PBX_ADDRESS": "192.0.2.10", "GUI_USER": "admin", "ROOT_PASSWORD": "from-environ"}

    host = _load(tmp_path, text, profiles, environ).hosts[0]

    assert host.address == "192.0.2.10"
    assert host.gui.username == "admin-ops"
    assert host.ssh.root_password is not None and host.ssh.root_password.get_secret_value() == "from-environ"


@pytest.mark.parametrize(
    ("written", "loaded"),
    [
        pytest.param("pa$$word", "pa$word", id="double-dollar"),
        pytest.param("$${ROOT_PASSWORD}", "${ROOT_PASSWORD}", id="escaped-reference"),
        pytest.param("$$$${X}", "$${X}", id="two-escapes"),
        pytest.param("pa$word", "pa$word", id="lone-dollar-is-kept"),
    ],
)
def test_double_dollar_gives_a_literal_dollar(
    tmp_path: Path, profiles: Mapping[str, Profile], written: str, loaded: str
) -> None:
    text = f"""\
        hosts:
          - name: pbx1
            product: pbxware
            address: 192.0.2.10
            ssh:
              root_password: '{written}'
        """

    host = _load(tmp_path, text, profiles, {"ROOT_PASSWORD": "expanded", "X": "expanded"}).hosts[0]

    assert host.ssh.root_password is not None and host.ssh.root_password.get_secret_value() == loaded


def test_per_port_override_is_used_for_its_port_only(tmp_path: Path, profiles: Mapping[str, Profile]) -> None:
    key = tmp_path / "keys" / "id_ed25519"
    key.parent.mkdir()
    key.write_text("not really a key\n")
    text = """\
        hosts:
          - name: sw1
            product: serverware
            address: 192.0.2.20
            ssh:
              root_password: host-wide
              per_port:
                2222:
                  key_file: keys/id_ed25519
                  key_passphrase: second-service
        """

    ssh = _load(tmp_path, text, profiles).hosts[0].ssh

    on_2222, on_2020 = ssh.credentials_for(2222), ssh.credentials_for(2020)
    assert on_2222.key_file == key.resolve()
    assert on_2222.root_password is None
    assert on_2222.key_passphrase is not None and on_2222.key_passphrase.get_secret_value() == "second-service"
    assert on_2020.key_file is None
    assert on_2020.root_password is not None and on_2020.root_password.get_secret_value() == "host-wide"


def test_per_port_in_defaults_merges_with_the_hosts_own(tmp_path: Path, profiles: Mapping[str, Profile]) -> None:
    text = """\
        defaults:
          ssh:
            per_port:
              2020: {root_password: default-2020}
        hosts:
          - name: sw1
            product: serverware
            address: 192.0.2.20
            ssh:
              per_port:
                2222: {root_password: own-2222}
        """

    ssh = _load(tmp_path, text, profiles).hosts[0].ssh

    passwords = {port: credentials.root_password for port, credentials in ssh.per_port.items()}
    assert {port: secret.get_secret_value() for port, secret in passwords.items() if secret} == {
        2020: "default-2020",
        2222: "own-2222",
    }


# --- the command line ---------------------------------------------------------------------------------------------------

CLI_CASES = [
    param
    for param in BROKEN
    if param.id
    in {
        "empty-file",
        "tab-indentation",
        "yaml-merge-key",
        "yaml-alias-inside-itself",
        "unknown-host-key",
        "per-port-not-an-ssh-port-of-pbxware",
        "duplicate-host-name",
        "env-var-unset",
        "defaults-env-var-unset",
    }
]


def _preflight(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != UNSET}
    return subprocess.run(
        [sys.executable, "-m", "preflight", *args], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env
    )


def test_every_cli_case_is_a_row_of_the_broken_table() -> None:
    assert len(CLI_CASES) == 9


@pytest.mark.parametrize(("text", "message"), CLI_CASES)
def test_validate_prints_the_same_one_line_on_stderr_and_exits_2(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path, text)

    run = _preflight(tmp_path, "validate", "inventory.yaml")

    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr == f"preflight: error: {message}\n"
    assert "Traceback" not in run.stderr


def test_validate_accepts_a_valid_inventory(tmp_path: Path) -> None:
    _write(tmp_path, "hosts:\n  - {name: pbx1, product: pbxware, address: 192.0.2.10}\n")

    run = _preflight(tmp_path, "validate", "inventory.yaml")

    assert (run.returncode, run.stdout, run.stderr) == (0, "inventory.yaml: 1 host(s), valid\n", "")


def test_check_with_a_broken_inventory_exits_2_without_probing(tmp_path: Path) -> None:
    # The first host is valid: nothing of it may be probed when a later host is broken.
    _write(
        tmp_path,
        """\
        hosts:
          - {name: pbx1, product: pbxware, address: 127.0.0.1}
          - {name: pbx2, product: pbxware, address: 127.0.0.1, port: 2020}
        """,
    )
    message = (
        "inventory.yaml:3: hosts[1].port: unknown key; "
        "expected one of: name, product, address, gui, ssh, setup_wizard, require_public_ip, profiles"
    )

    run = _preflight(tmp_path, "check", "inventory.yaml", "--timeout", "1")

    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr == f"preflight: error: {message}\n"


def test_check_with_a_broken_inventory_never_plans_or_runs_a_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a check was planned or run for a broken inventory")

    monkeypatch.setattr(preflight.cli, "iter_plan", must_not_run)
    monkeypatch.setattr(preflight.cli, "PlanRun", must_not_run)
    path = _write(tmp_path, "hosts:\n  - {name: pbx1, product: pbxware, address: 127.0.0.1}\n  - nope\n")

    exit_code = preflight.cli.main(["check", str(path)])

    assert exit_code == 2
    assert capsys.readouterr().err == "preflight: error: inventory.yaml:3: hosts[1]: must be a mapping, not a string\n"


def test_aliases_that_expand_without_bound_are_refused(tmp_path: Path, profiles: Mapping[str, Profile]) -> None:
    levels = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    levels += [f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]" for level in range(1, 9)]
    text = "\n".join(levels) + "\nhosts: *a8\n"

    assert (
        _error(tmp_path, text, profiles) == "inventory.yaml:1: top level: the file expands to more than 1000000 values"
    )


# --- mistakes YAML would let pass without a word ---------------------------------------------------------------------

HOST = "hosts:\n  - name: pbx1\n    product: pbxware\n    address: 192.0.2.10\n"


@pytest.mark.parametrize(
    ("section", "environ", "message"),
    [
        pytest.param(
            "gui:\n  password: pass #word",
            {},
            "inventory.yaml:6: hosts[0].gui.password: YAML read the text after ' #' as a comment and cut the value "
            "there; quote the value: password: '...'",
            id="cut-at-hash",
        ),
        pytest.param(
            "gui:\n  password: #secret",
            {},
            "inventory.yaml:6: hosts[0].gui.password: YAML read the text after ' #' as a comment and cut the value "
            "there; quote the value: password: '...'",
            id="all-of-it-a-comment",
        ),
        pytest.param(
            "ssh:\n  per_port:\n    2020: {root_password: pass #word\n      }",
            {},
            "inventory.yaml:7: hosts[0].ssh.per_port.2020.root_password: YAML read the text after ' #' as a comment "
            "and cut the value there; quote the value: root_password: '...'",
            id="cut-at-hash-per-port",
        ),
        pytest.param(
            "ssh:\n  root_password:",
            {},
            "inventory.yaml:6: hosts[0].ssh.root_password: is empty; write the secret, quote the value: "
            "root_password: '...', or as ${ENV_VAR}, or remove the key",
            id="empty",
        ),
        pytest.param(
            "ssh:\n  key_passphrase: ''",
            {},
            "inventory.yaml:6: hosts[0].ssh.key_passphrase: is empty; write the secret, quote the value: "
            "key_passphrase: '...', or as ${ENV_VAR}, or remove the key",
            id="empty-quoted",
        ),
        pytest.param(
            "ssh:\n  root_password: '   '",
            {},
            "inventory.yaml:6: hosts[0].ssh.root_password: is only whitespace; quote the value: root_password: '...'",
            id="whitespace",
        ),
        pytest.param(
            "ssh:\n  root_password: ${ROOT_PASSWORD}",
            {"ROOT_PASSWORD": ""},
            "inventory.yaml:6: hosts[0].ssh.root_password: environment variable ROOT_PASSWORD is empty or only "
            "whitespace (host pbx1); set it to the secret",
            id="env-empty",
        ),
        pytest.param(
            "gui:\n  password: ${GUI_PASSWORD}",
            {"GUI_PASSWORD": " \t "},
            "inventory.yaml:6: hosts[0].gui.password: environment variable GUI_PASSWORD is empty or only "
            "whitespace (host pbx1); set it to the secret",
            id="env-whitespace",
        ),
        pytest.param(
            "gui:\n  password: yes",
            {},
            "inventory.yaml:6: hosts[0].gui.password: YAML read the value as true or false (yes, no, on, off are "
            "booleans too), not text; quote the value: password: '...'",
            id="yes",
        ),
        pytest.param(
            "gui:\n  password: true",
            {},
            "inventory.yaml:6: hosts[0].gui.password: YAML read the value as true or false (yes, no, on, off are "
            "booleans too), not text; quote the value: password: '...'",
            id="true",
        ),
        pytest.param(
            "gui:\n  password: 12345",
            {},
            "inventory.yaml:6: hosts[0].gui.password: YAML read the value as a number, not text; "
            "quote the value: password: '...'",
            id="number",
        ),
    ],
)
def test_secret_yaml_would_misread_is_an_error_with_the_fix(
    tmp_path: Path, profiles: Mapping[str, Profile], section: str, environ: Mapping[str, str], message: str
) -> None:
    text = HOST + textwrap.indent(section, "    ") + "\n"

    error = _error(tmp_path, text, profiles, environ)

    assert error == message


@pytest.mark.parametrize(
    ("address", "message"),
    [
        pytest.param(
            "[2001:db8::10]",
            "inventory.yaml:4: hosts[0].address: [2001:db8::10] is a YAML list; write the address without brackets: "
            "2001:db8::10",
            id="brackets-make-a-list",
        ),
        pytest.param(
            "'[2001:db8::10]'",
            "inventory.yaml:4: hosts[0].address: write the address without brackets: 2001:db8::10",
            id="brackets-quoted",
        ),
        pytest.param(
            "https://pbx.example.com/",
            "inventory.yaml:4: hosts[0].address: https://pbx.example.com/ is a URL; write only the host name: "
            "pbx.example.com",
            id="url",
        ),
        pytest.param(
            "pbx.example.com:443",
            "inventory.yaml:4: hosts[0].address: pbx.example.com:443 names a port; write only the host name: "
            "pbx.example.com (the profile sets the ports)",
            id="host-and-port",
        ),
    ],
)
def test_address_written_as_a_url_or_list_names_the_value_and_the_fix(
    tmp_path: Path, profiles: Mapping[str, Profile], address: str, message: str
) -> None:
    text = f"hosts:\n  - name: pbx1\n    product: pbxware\n    address: {address}\n"

    assert _error(tmp_path, text, profiles) == message


@pytest.mark.parametrize(
    "section",
    [
        pytest.param("gui:\n  password: 'pass #word'", id="quoted-hash"),
        pytest.param("gui:\n  password: pass#word", id="hash-without-space-is-text"),
        pytest.param("gui:\n  password: ${GUI_PASSWORD}   # from the vault", id="comment-after-a-reference"),
    ],
)
def test_a_hash_that_yaml_keeps_or_a_comment_after_a_reference_is_fine(
    tmp_path: Path, profiles: Mapping[str, Profile], section: str
) -> None:
    text = HOST + textwrap.indent(section, "    ") + "\n"

    host = _load(tmp_path, text, profiles, {"GUI_PASSWORD": "from-the-vault"}).hosts[0]

    assert host.gui.password is not None
    assert host.gui.password.get_secret_value() in ("pass #word", "pass#word", "from-the-vault")


def test_dollar_name_without_braces_and_a_short_password_are_warnings(
    tmp_path: Path, profiles: Mapping[str, Profile]
) -> None:
    text = HOST + "    gui:\n      password: $PBX1_GUI_PASSWORD\n    ssh:\n      root_password: '2020'\n"

    inventory = _load(tmp_path, text, profiles)

    assert inventory.warnings == (
        "inventory.yaml:6: hosts[0].gui.password: a $NAME without braces is taken literally, not read from the "
        "environment: write ${PBX1_GUI_PASSWORD}, or $$ for a literal $",
        "inventory.yaml:8: hosts[0].ssh.root_password: is shorter than 8 characters: easy to guess, and too short "
        "for -v logs to mask it; use a longer one",
    )


def test_a_password_that_merely_starts_with_dollar_is_not_echoed_in_the_warning(
    tmp_path: Path, profiles: Mapping[str, Profile]
) -> None:
    text = HOST + "    gui:\n      password: $tr0ngpassword\n"

    (warning,) = _load(tmp_path, text, profiles).warnings

    assert "tr0ng" not in warning
    assert warning.endswith("write ${NAME}, or $$ for a literal $")


def test_every_error_in_the_file_is_reported_sorted_by_line(tmp_path: Path, profiles: Mapping[str, Profile]) -> None:
    text = """\
        hosts:
          - name: pbx1
            product: pbxware
            address: https://pbx1.example.com/
            gui:
              password: pass #word
          - name: pbx2
            product: pbxwar
            address: 192.0.2.11
            ssh:
              root_password: ${PREFLIGHT_TEST_NEVER_SET}
          - name: pbx1
            product: pbxware
            address: 192.0.2.12
        """

    with pytest.raises(ConfigErrors) as caught:
        _load(tmp_path, text, profiles)

    assert caught.value.lines == (
        "inventory.yaml:4: hosts[0].address: https://pbx1.example.com/ is a URL; write only the host name: "
        "pbx1.example.com",
        "inventory.yaml:6: hosts[0].gui.password: YAML read the text after ' #' as a comment and cut the value "
        "there; quote the value: password: '...'",
        "inventory.yaml:8: hosts[1].product: must be one of: pbxware, serverware (got 'pbxwar')",
        "inventory.yaml:11: hosts[1].ssh.root_password: environment variable PREFLIGHT_TEST_NEVER_SET is not set "
        "(host pbx2)",
    )
    assert str(caught.value) == "\n".join(caught.value.lines)


def test_a_file_full_of_errors_reports_the_first_fifty_and_how_many_more(
    tmp_path: Path, profiles: Mapping[str, Profile]
) -> None:
    text = "hosts:\n" + "".join(f"  - {{name: h{index}, product: nope, address: 192.0.2.1}}\n" for index in range(60))

    with pytest.raises(ConfigErrors) as caught:
        _load(tmp_path, text, profiles)

    lines = caught.value.lines
    assert len(lines) == 51
    assert lines[0].startswith("inventory.yaml:2: hosts[0].product: must be one of")
    assert lines[49].startswith("inventory.yaml:51: hosts[49].product: must be one of")
    assert lines[50] == "inventory.yaml: 10 more error(s) not shown; fix these first"


def test_validate_prints_every_error_and_exits_2(tmp_path: Path) -> None:
    _write(tmp_path, HOST.replace("192.0.2.10", "'[2001:db8::10]'") + "    gui:\n      password: pass #word\n")

    run = _preflight(tmp_path, "validate", "inventory.yaml")

    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "preflight: error: inventory.yaml:4: hosts[0].address: write the address without brackets: 2001:db8::10",
        "preflight: error: inventory.yaml:6: hosts[0].gui.password: YAML read the text after ' #' as a comment and "
        "cut the value there; quote the value: password: '...'",
    ]


def test_validate_prints_warnings_on_stderr_and_still_exits_0(tmp_path: Path) -> None:
    path = _write(tmp_path, HOST + "    gui:\n      password: $PBX1_GUI_PASSWORD\n")
    path.chmod(0o600)

    run = _preflight(tmp_path, "validate", "inventory.yaml")

    assert run.returncode == 0
    assert run.stderr == (
        "preflight: warning: inventory.yaml:6: hosts[0].gui.password: a $NAME without braces is taken literally, "
        "not read from the environment: write ${PBX1_GUI_PASSWORD}, or $$ for a literal $\n"
    )
