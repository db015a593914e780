"""`/`: the intake form a customer (or engineer) fills in to have a host checked from support's network."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from preflight.service import csrf
from preflight.service.intake import SECRET_FIELDS, FormErrors, from_form
from preflight.service.pages import client_of, page, service_of
from preflight.service.policy import RateLimited

FIELDS = ("product", "address", "gui_username", "gui_password", "root_password", "root_password_2222", "ticket",
          "contact")
MAX_FIELD = 1024


async def show(request: Request) -> Response:
    """The empty form, or one filled from an earlier check (support's "run again": never its passwords)."""
    values: dict[str, str] = {"product": "pbxware"}
    again = request.query_params.get("again", "")
    if again and request.session.get("user"):
        row = service_of(request).store.get(again)
        if row is not None:
            first = row.hosts_text.split("\n", 1)[0].split(" ")
            values = {"product": row.product.split(",")[0], "address": first[0] if first else "",
                      "ticket": row.ticket, "contact": row.contact}
    return page(request, "intake.html.j2", {"values": values, "errors": {}})


async def submit(request: Request) -> Response:
    service = service_of(request)
    form = await request.form(max_files=0, max_fields=len(FIELDS) + 4)
    if not csrf.valid(request, form):
        return page(request, "message.html.j2", {
            "title": "The form expired",
            "message": "This form was open too long or cookies are off. Go back, reload the page and submit again.",
        }, status=403)
    fields = {name: str(form.get(name, ""))[:MAX_FIELD] for name in FIELDS}
    kept = {name: value for name, value in fields.items() if name not in SECRET_FIELDS}
    try:
        submission, ticket, contact = from_form(fields, service.profiles, service.policy)
        engineer = request.session.get("user")
        check_id = service.submit(
            submission,
            ticket=ticket,
            contact=contact,
            source="support" if engineer else "web",
            submitted_by=str(engineer or ""),
            client=client_of(request),
            limit_client=not engineer,
        )
    except FormErrors as exc:
        return page(request, "intake.html.j2", {"values": kept, "errors": exc.errors}, status=422)
    except RateLimited as exc:
        return page(request, "intake.html.j2", {"values": kept, "errors": {"form": f"Too many checks: {exc}. "
                    f"Try again in {exc.retry_after // 60 + 1} minutes."}},
                    status=429, headers={"Retry-After": str(exc.retry_after)})
    return RedirectResponse(f"/checks/{check_id}", status_code=303)
