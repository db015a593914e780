"""`/`: the intake form a customer (or engineer) fills in to have a host checked from support's network."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from preflight.service import csrf
from preflight.service.core import NoWorker
from preflight.service.intake import SECRET_FIELDS, FormErrors, IntakeError, from_form
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
    return page(request, "intake.html.j2", {"values": values, "errors": {}, **_vantage_choice(request, ())})


def _vantage_choice(request: Request, chosen: tuple[str, ...]) -> dict[str, object]:
    """The vantages the form offers (those with a live worker), every one ticked unless the user chose some."""
    live = service_of(request).live_vantages()
    return {"vantages": live, "chosen_vantages": chosen or live}


async def submit(request: Request) -> Response:
    service = service_of(request)
    form = await request.form(max_files=0, max_fields=len(FIELDS) + 40)
    if not csrf.valid(request, form):
        return page(request, "message.html.j2", {
            "title": "The form expired",
            "message": "This form was open too long or cookies are off. Go back, reload the page and submit again.",
        }, status=403)
    fields = {name: str(form.get(name, ""))[:MAX_FIELD] for name in FIELDS}
    vantages = tuple(str(name)[:64] for name in form.getlist("vantages"))[:32]
    kept = {name: value for name, value in fields.items() if name not in SECRET_FIELDS}
    engineer = request.session.get("user")
    client = client_of(request)

    def accept() -> str:
        submission, ticket, contact = from_form(fields, service.profiles, service.policy)
        return service.submit(
            submission,
            ticket=ticket,
            contact=contact,
            source="support" if engineer else "web",
            submitted_by=str(engineer or ""),
            client=client,
            limit_client=not engineer,
            vantages=vantages,
        )

    try:
        # Lookups and database writes block: off the event loop, as the API does.
        check_id = await run_in_threadpool(accept)
    except FormErrors as exc:
        return page(request, "intake.html.j2", {"values": kept, "errors": exc.errors,
                                                **_vantage_choice(request, vantages)}, status=422)
    except IntakeError as exc:
        return page(request, "intake.html.j2", {"values": kept, "errors": {exc.field or "form": exc.reason},
                                                **_vantage_choice(request, vantages)}, status=422)
    except NoWorker as exc:
        return page(request, "intake.html.j2", {"values": kept, "errors": {"form": f"{exc}."},
                                                **_vantage_choice(request, vantages)},
                    status=503, headers={"Retry-After": "30"})
    except RateLimited as exc:
        return page(request, "intake.html.j2", {"values": kept, "errors": {"form": f"Too many checks: {exc}. "
                    f"Try again in {exc.retry_after // 60 + 1} minutes."}},
                    status=429, headers={"Retry-After": str(exc.retry_after)})
    return RedirectResponse(f"/checks/{check_id}", status_code=303)
