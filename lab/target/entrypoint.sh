#!/bin/sh
# Lab target: real sshd on $SSH_PORTS, real nginx on 80/81/443 in front of the form-login GUI app.
set -eu
: "${ROOT_PASSWORD:?ROOT_PASSWORD must be set}"
: "${GUI_USERNAME:?GUI_USERNAME must be set}"
: "${GUI_PASSWORD:?GUI_PASSWORD must be set}"
SSH_PORTS="${SSH_PORTS-2020 2222}"

echo "root:$ROOT_PASSWORD" | chpasswd
umask 077
printf '%s\n%s\n' "$GUI_USERNAME" "$GUI_PASSWORD" > /etc/preflight-lab/gui-credentials
umask 022

python3 /opt/lab/gui_app.py 127.0.0.1 8080 /etc/preflight-lab/gui-credentials &
nginx

if [ -z "$SSH_PORTS" ]; then
    exec sleep infinity
fi
mkdir -p /run/sshd
ssh-keygen -A >/dev/null
{
    for port in $SSH_PORTS; do echo "Port $port"; done
    echo "PermitRootLogin yes"
    echo "PasswordAuthentication yes"
    echo "UseDNS no"
} > /etc/ssh/sshd_config.d/lab.conf
exec /usr/sbin/sshd -D -e
