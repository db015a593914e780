#!/usr/bin/env bash
# Sourced by the test and try-it scripts: install what the lab needs if it is missing, and start dockerd.
# Works on a fresh Debian machine as root; nothing here reaches anything but the Debian package mirror.

lab_install_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    command -v ssh-keyscan >/dev/null 2>&1 || missing+=(openssh-client)
    command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
    command -v nft >/dev/null 2>&1 || missing+=(nftables)
    command -v nmap >/dev/null 2>&1 || missing+=(nmap)
    command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
    command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v sshpass >/dev/null 2>&1 || missing+=(sshpass)
    # The queue tests start private redis-server processes of their own; Debian's package brings the binary.
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    # The deadline tests are run again with both cores busy (tests/test_deadline_slack.py).
    command -v stress-ng >/dev/null 2>&1 || missing+=(stress-ng)
    if [ ${#missing[@]} -gt 0 ]; then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        echo "lab: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

lab_start_docker() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    echo "lab: starting dockerd (log: /var/log/preflight-dockerd.log)"
    setsid dockerd >/var/log/preflight-dockerd.log 2>&1 < /dev/null &
    local waited=0
    until docker info >/dev/null 2>&1; do
        if [ "$waited" -ge 60 ]; then
            echo "lab: dockerd did not answer within 60 s" >&2
            tail -20 /var/log/preflight-dockerd.log >&2
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

# PostgreSQL from Debian for the service's tests: installed if missing, its cluster started without systemd.
# The tests make their own role and database in it, and drop them afterwards.
lab_start_postgresql() {
    if ! command -v pg_lsclusters >/dev/null 2>&1; then
        echo "lab: installing postgresql"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq postgresql >/dev/null
    fi
    if [ -z "$(pg_lsclusters -h)" ]; then
        local newest
        newest=$(ls /usr/lib/postgresql | sort -V | tail -1)
        pg_createcluster "$newest" main >/dev/null
    fi
    local version name status
    while read -r version name _ status _; do
        if [[ "$status" != online* ]]; then
            echo "lab: starting PostgreSQL $version/$name"
            pg_ctlcluster "$version" "$name" start
        fi
    done < <(pg_lsclusters -h)
}

lab_ready() {
    lab_install_packages
    lab_start_docker
    bash "$(dirname "${BASH_SOURCE[0]}")/build.sh"
}
