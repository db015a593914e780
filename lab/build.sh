#!/usr/bin/env bash
# Builds the lab target image without a registry: debootstrap -> docker import -> Dockerfile.
# Each stage is tagged with a digest of its inputs, so a rerun with unchanged inputs builds nothing.
# `build.sh --quickstart` also builds preflight-quickstart:latest, a new user's Debian 12 on the same base
# (tests/test_readme_quickstart.py runs the README's quick start in it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

base_packages="openssh-server,nginx-light,python3,openssl,procps,iproute2,libpam-oath,kamailio"
suite="bookworm"
base_digest=$(printf '%s %s' "$suite" "$base_packages" | sha256sum | cut -c1-12)
base_image="preflight-lab-base:$base_digest"

if ! docker image inspect "$base_image" >/dev/null 2>&1; then
    rootfs=$(mktemp -d /tmp/preflight-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    echo "lab: debootstrap $suite with $base_packages (about a minute)"
    debootstrap --variant=minbase --include="$base_packages" "$suite" "$rootfs" >"$rootfs.log" 2>&1 \
        || { tail -20 "$rootfs.log"; exit 1; }
    rm -f "$rootfs.log"
    tar -C "$rootfs" -c . | docker import - "$base_image" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
fi

# The GUI app is the one `preflight demo` serves too, so it lives in the package and joins the build context here.
context=$(mktemp -d /tmp/preflight-lab-context.XXXXXX)
trap 'rm -rf "$context"' EXIT
cp -r "$here/target/." "$context/"
cp "$here/../preflight/demo/gui_app.py" "$context/gui_app.py"
target_digest=$( (echo "$base_image"; cd "$context" && find . -type f | sort | xargs sha256sum) | sha256sum | cut -c1-12)
target_image="preflight-lab-target:$target_digest"
if ! docker image inspect "$target_image" >/dev/null 2>&1; then
    echo "lab: building $target_image"
    docker build --build-arg BASE="$base_image" -t "$target_image" "$context" >/tmp/preflight-lab-build.log 2>&1 \
        || { tail -30 /tmp/preflight-lab-build.log; exit 1; }
fi
rm -rf "$context"
trap - EXIT
docker tag "$target_image" preflight-lab-target:latest
echo "lab: preflight-lab-target:latest is $target_image"

if [ "${1:-}" = "--quickstart" ]; then
    quickstart_digest=$( (echo "$base_image"; sha256sum <"$here/quickstart/Dockerfile") | sha256sum | cut -c1-12)
    quickstart_image="preflight-quickstart:$quickstart_digest"
    if ! docker image inspect "$quickstart_image" >/dev/null 2>&1; then
        echo "lab: building $quickstart_image"
        docker build --build-arg BASE="$base_image" -t "$quickstart_image" "$here/quickstart" \
            >/tmp/preflight-quickstart-build.log 2>&1 || { tail -30 /tmp/preflight-quickstart-build.log; exit 1; }
    fi
    docker tag "$quickstart_image" preflight-quickstart:latest
    echo "lab: preflight-quickstart:latest is $quickstart_image"
fi
