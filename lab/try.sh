#!/usr/bin/env bash
# Try preflight on a lab PBX: start one lab container (real sshd and nginx), write an inventory for it,
# run `preflight check`, and leave report.json and report.html in the current folder.
set -euo pipefail
lab=$(cd "$(dirname "$0")" && pwd)
source "$lab/engine.sh"
lab_ready

export LAB_ROOT_PASSWORD="root-$(head -c 12 /dev/urandom | base64 | tr -dc A-Za-z0-9)"
export LAB_GUI_PASSWORD="gui-$(head -c 12 /dev/urandom | base64 | tr -dc A-Za-z0-9)"
container=$(docker run -d --rm -e ROOT_PASSWORD="$LAB_ROOT_PASSWORD" -e GUI_USERNAME=admin \
    -e GUI_PASSWORD="$LAB_GUI_PASSWORD" -e SSH_PORTS=2020 preflight-lab-target:latest)
# Every lab container makes new host keys and Docker hands out the same addresses again, so this run keeps
# its own known_hosts: the one in ~/.local/state would rightly call the next container's key "changed".
known_hosts=$(mktemp -d /tmp/preflight-try.XXXXXX)
trap 'docker stop -t 1 "$container" >/dev/null; rm -rf "$known_hosts"' EXIT
ip=$(docker inspect -f '{{.NetworkSettings.IPAddress}}' "$container")

for _ in $(seq 1 60); do
    banner=$(timeout 1 bash -c "head -c 8 </dev/tcp/$ip/2020" 2>/dev/null || true)
    [ "$banner" = "SSH-2.0-" ] && break
    sleep 0.5
done

cat > lab-inventory.yaml <<YAML
# A lab PBXware host in a local container: its address is private and preflight runs in its subnet,
# so the public-IP and vantage checks only warn.
hosts:
  - name: lab-pbx
    product: pbxware
    address: $ip
    require_public_ip: false
    gui:
      username: admin
      password: \${LAB_GUI_PASSWORD}
    ssh:
      root_password: \${LAB_ROOT_PASSWORD}
YAML
echo "lab: checking lab-pbx at $ip with lab-inventory.yaml"
set +e
preflight check lab-inventory.yaml --json report.json --html report.html --known-hosts "$known_hosts/known_hosts"
status=$?
set -e
exit $status
