"""`preflight serve`: support's own web service that checks a customer's host from support's network and signs
what it saw. It builds and runs plans with the same `build_plan`/`run_plan` as `preflight check`."""
