"""The web side of the checks: an HTTP client bound to a deadline, HTTP authentication, login forms, TLS
certificate evidence, and the one login engine that gui-login and setup-wizard-login configure from the profile."""
