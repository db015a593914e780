#!/bin/sh
# Lab target: real sshd on $SSH_PORTS, real nginx on 80/81/443 in front of the form-login GUI app.
# Hostile variants, all off unless set: nginx also speaks plain HTTP on $EXTRA_HTTP_PORTS; a tarpit that accepts
# and never speaks listens on $TARPIT_PORTS; $TLS_CERT_PEM and $TLS_KEY_PEM replace the image's certificate on 443.
set -eu
: "${ROOT_PASSWORD:?ROOT_PASSWORD must be set}"
: "${GUI_USERNAME:?GUI_USERNAME must be set}"
: "${GUI_PASSWORD:?GUI_PASSWORD must be set}"
SSH_PORTS="${SSH_PORTS-2020 2222}"
EXTRA_HTTP_PORTS="${EXTRA_HTTP_PORTS-}"
TARPIT_PORTS="${TARPIT_PORTS-}"

echo "root:$ROOT_PASSWORD" | chpasswd
umask 077
printf '%s\n%s\n' "$GUI_USERNAME" "$GUI_PASSWORD" > /etc/preflight-lab/gui-credentials
if [ -n "${TLS_CERT_PEM-}" ] || [ -n "${TLS_KEY_PEM-}" ]; then
    : "${TLS_CERT_PEM:?TLS_CERT_PEM and TLS_KEY_PEM must be set together}"
    : "${TLS_KEY_PEM:?TLS_CERT_PEM and TLS_KEY_PEM must be set together}"
    printf '%s\n' "$TLS_KEY_PEM" > /etc/preflight-lab/tls.key
    printf '%s\n' "$TLS_CERT_PEM" > /etc/preflight-lab/tls.crt
fi
umask 022
for port in $EXTRA_HTTP_PORTS; do echo "listen $port backlog=4096;"; done > /etc/preflight-lab/extra-listen.conf

python3 /opt/lab/gui_app.py 127.0.0.1 8080 /etc/preflight-lab/gui-credentials &
if [ -n "$TARPIT_PORTS" ]; then
    # Word splitting is wanted: one argument per port.
    # shellcheck disable=SC2086
    python3 /opt/lab/tarpit.py $TARPIT_PORTS &
fi
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
