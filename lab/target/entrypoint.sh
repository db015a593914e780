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

# ROOT_PASSWORD_HASH picks the crypt method (SHA512, YESCRYPT...); Debian's default is yescrypt.
echo "root:$ROOT_PASSWORD" | chpasswd ${ROOT_PASSWORD_HASH:+-c "$ROOT_PASSWORD_HASH"}
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
# GUI variants: $GUI_AUTH is form (the default), form-2fa (a one-time code is asked after the password), basic (nginx
# asks for HTTP Basic) or digest (the app asks for HTTP Digest); GUI_HTTPS=off leaves 443 closed: a GUI only over HTTP.
GUI_AUTH="${GUI_AUTH-form}"
GUI_HTTPS="${GUI_HTTPS-on}"
: > /etc/preflight-lab/gui-auth.conf
case "$GUI_AUTH" in
    form | form-2fa | digest) ;;
    basic)
        umask 027
        printf '%s:%s\n' "$GUI_USERNAME" "$(printf '%s\n' "$GUI_PASSWORD" | openssl passwd -5 -stdin)" \
            > /etc/preflight-lab/gui-htpasswd
        umask 022
        chgrp www-data /etc/preflight-lab/gui-htpasswd
        printf 'auth_basic "PBX Web GUI";\nauth_basic_user_file /etc/preflight-lab/gui-htpasswd;\n' \
            > /etc/preflight-lab/gui-auth.conf
        ;;
    *) echo "GUI_AUTH must be form, form-2fa, basic or digest, not $GUI_AUTH" >&2; exit 2 ;;
esac
case "$GUI_HTTPS" in
    on) echo "listen 443 ssl backlog=4096;" > /etc/preflight-lab/https-listen.conf ;;
    off) : > /etc/preflight-lab/https-listen.conf ;;
    *) echo "GUI_HTTPS must be on or off, not $GUI_HTTPS" >&2; exit 2 ;;
esac

python3 /opt/lab/gui_app.py 127.0.0.1 8080 /etc/preflight-lab/gui-credentials "$GUI_AUTH" &

# The Setup Wizard on 81: root and the root password, a PHP-style login page (login_shapes.py's redirect-chain)
# behind nginx. SETUP_WIZARD is https (the default), http (plain HTTP only) or off (81 closed).
SETUP_WIZARD="${SETUP_WIZARD-https}"
case "$SETUP_WIZARD" in
    https) wizard_listen="listen 81 ssl backlog=4096;" ;;
    http) wizard_listen="listen 81 backlog=4096;" ;;
    off) wizard_listen="" ;;
    *) echo "SETUP_WIZARD must be https, http or off, not $SETUP_WIZARD" >&2; exit 2 ;;
esac
: > /etc/preflight-lab/wizard.conf
if [ -n "$wizard_listen" ]; then
    umask 077
    printf 'root\n%s\n' "$ROOT_PASSWORD" > /etc/preflight-lab/wizard-credentials
    umask 022
    cat > /etc/preflight-lab/wizard.conf <<WIZARD
server {
    $wizard_listen
    ssl_certificate     /etc/preflight-lab/tls.crt;
    ssl_certificate_key /etc/preflight-lab/tls.key;
    server_name _;
    location / {
        proxy_pass http://127.0.0.1:8081;
        proxy_set_header Host \$http_host;
    }
}
WIZARD
    python3 /opt/lab/login_shapes.py redirect-chain 8081 /etc/preflight-lab/wizard-credentials &
fi

# LOGIN_SHAPES=on: six login pages of other conventions (login_shapes.py), each over HTTPS on its own port from
# 8441 on, with the GUI username and password.
if [ "${LOGIN_SHAPES-}" = "on" ]; then
    port=8441
    for shape in email-pass bracket-names query-action redirect-chain meta-csrf dashboard-redirect; do
        python3 /opt/lab/login_shapes.py "$shape" "$port" /etc/preflight-lab/gui-credentials tls &
        port=$((port + 1))
    done
fi

# SIP=on: kamailio from Debian, with its packaged configuration, on UDP and TCP 5060.
if [ "${SIP-}" = "on" ]; then
    mkdir -p /run/kamailio
    kamailio -m 32 -M 4 -P /run/kamailio/kamailio.pid -E -DD 2>&1 | sed 's/^/kamailio: /' >&2 &
fi
if [ -n "$TARPIT_PORTS" ]; then
    # Word splitting is wanted: one argument per port.
    # shellcheck disable=SC2086
    python3 /opt/lab/tarpit.py $TARPIT_PORTS &
fi
nginx

if [ -z "$SSH_PORTS" ]; then
    exec sleep infinity
fi
# SSH variants, all off unless set: $SSH_PERMIT_ROOT_LOGIN replaces "yes" (no, prohibit-password);
# $SSH_AUTH is "password" (password and keyboard-interactive, the default), "keyboard-interactive" (only that, through
# PAM's Password: prompt), "otp" (keyboard-interactive that asks pam_oath's one-time password before the password)
# or "publickey" (keys only);
# $SSH_SESSION_UID makes every session run as that uid, as when a login named root lands in a restricted account;
# $SSH_TRUSTED_USER_CA (a CA public key line) makes sshd trust user certificates that CA signed (TrustedUserCAKeys).
SSH_PERMIT_ROOT_LOGIN="${SSH_PERMIT_ROOT_LOGIN-yes}"
SSH_AUTH="${SSH_AUTH-password}"
SSH_SESSION_UID="${SSH_SESSION_UID-}"
case "$SSH_AUTH" in
    password) password_authentication=yes keyboard_interactive=yes ;;
    keyboard-interactive) password_authentication=no keyboard_interactive=yes ;;
    publickey) password_authentication=no keyboard_interactive=no ;;
    otp)
        password_authentication=no keyboard_interactive=yes
        umask 077
        echo "HOTP/T30 root - $(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')" > /etc/users.oath
        umask 022
        sed -i '1i auth requisite pam_oath.so usersfile=/etc/users.oath window=20' /etc/pam.d/sshd
        ;;
    *) echo "SSH_AUTH must be password, keyboard-interactive, otp or publickey, not $SSH_AUTH" >&2; exit 2 ;;
esac
mkdir -p /run/sshd
ssh-keygen -A >/dev/null
{
    for port in $SSH_PORTS; do echo "Port $port"; done
    echo "PermitRootLogin $SSH_PERMIT_ROOT_LOGIN"
    echo "PasswordAuthentication $password_authentication"
    echo "KbdInteractiveAuthentication $keyboard_interactive"
    echo "UsePAM yes"
    echo "UseDNS no"
    # A benchmark logs in 150 times at once; sshd's own throttle (10:30:100) would refuse most of them.
    echo "MaxStartups 200:30:400"
    echo "MaxSessions 200"
    if [ -n "${SSH_TRUSTED_USER_CA-}" ]; then
        # A test CA's public key: sshd accepts user certificates it signed, for the principals they name.
        printf '%s\n' "$SSH_TRUSTED_USER_CA" > /etc/ssh/lab_user_ca.pub
        echo "TrustedUserCAKeys /etc/ssh/lab_user_ca.pub"
    fi
    if [ -n "$SSH_SESSION_UID" ]; then
        # shellcheck disable=SC2016 # expanded by root's shell when a session starts, not here
        echo 'ForceCommand exec setpriv --reuid='"$SSH_SESSION_UID"' --regid='"$SSH_SESSION_UID"' --clear-groups /bin/sh -c "$SSH_ORIGINAL_COMMAND"'
    fi
} > /etc/ssh/sshd_config.d/lab.conf
exec /usr/sbin/sshd -D -e
