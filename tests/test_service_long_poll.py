"""A status answer that waits for its check to change (GET /api/v1/checks/<id>?wait=N): `preflight serve` as a
process on loopback, a check held up by a silent sshd; and the notifier under it (preflight.service.changes)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from preflight.service import schema
from preflight.service.changes import Changes
from preflight.service.store import NewCheck, Store, make_engine
from tests.lab import new_secret
from tests.service_process import ServiceProcess, host, running_service, silent_listener

SLOW_TARGET = "127.0.0.5"  # loopback: nothing but the silent sshd below answers there
NO_RESULTS = 999_999_999


@pytest.fixture
def slow_service(tmp_path: Path) -> Iterator[ServiceProcess]:
    """A service whose check of SLOW_TARGET waits on a silent sshd until its 4 s deadline."""
    with silent_listener(SLOW_TARGET, 2020), running_service(
        tmp_path, ["--allow-targets", f"{SLOW_TARGET}/32", "--timeout", "4", "--workers", "1",
                   "--limit-per-target", "1000", "--limit-per-client", "1000"],
    ) as service:  # fmt: skip
        yield service


def _submit_slow(service: ServiceProcess) -> str:
    body = {"ticket": "T-wait", "inventory": {"hosts": [host(SLOW_TARGET, root_password=new_secret("root"))]}}
    answer = service.post_check(body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _timed_get(service: ServiceProcess, path: str) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    answer = service.get(path)
    assert answer.status_code == 200, answer.text
    return time.monotonic() - started, answer.json()


def test_a_waiting_answer_comes_when_the_check_ends_and_not_before_a_change(slow_service: ServiceProcess) -> None:
    check_id = _submit_slow(slow_service)
    status = f"/api/v1/checks/{check_id}?since={NO_RESULTS}"
    # Control: without wait the answer is immediate, the check still running (its ssh check waits 4 s).
    quick, state = _timed_get(slow_service, status)
    assert state["state"] in ("queued", "running") and state["wait"] == 0
    assert quick < 2.0

    # Until the check ends, each waiting answer comes with a change, or after its wait with none; the last one is
    # the end, long before the 30 s asked for.
    answers: list[tuple[float, dict[str, Any]]] = []
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up:
        answers.append(_timed_get(slow_service, f"{status}&wait=30"))
        if answers[-1][1]["state"] in ("done", "failed"):
            break
    elapsed, last = answers[-1]
    assert last["state"] == "done" and last["wait"] == 30, last
    assert last["progress"]["done"] == last["progress"]["total"]
    assert elapsed < 25, f"the answer waited {elapsed:.1f}s after the check ended"
    assert len(answers) <= 1 + last["progress"]["total"] + 2, "waiting answers came back without a change"
    for _, state in answers[:-1]:
        assert state["state"] in ("queued", "running")

    # A check that is done is answered at once, whatever the wait.
    again, state = _timed_get(slow_service, f"{status}&wait=30")
    assert state["state"] == "done" and again < 2.0


def test_a_waiting_answer_with_nothing_new_comes_after_its_wait(slow_service: ServiceProcess) -> None:
    check_id = _submit_slow(slow_service)
    status = f"/api/v1/checks/{check_id}?since={NO_RESULTS}"
    # While the checks of the silent sshd wait out their 4 s, a 1 s wait often sees no change: each such answer
    # came after its full second; each earlier one brought a change (a state or a count of results).
    unchanged: list[float] = []
    changed: list[float] = []
    _, previous = _timed_get(slow_service, status)
    give_up = time.monotonic() + 60
    while previous["state"] in ("queued", "running") and time.monotonic() < give_up:
        elapsed, state = _timed_get(slow_service, f"{status}&wait=1")
        assert state["wait"] == 1
        same = (state["state"], state["progress"]["done"]) == (previous["state"], previous["progress"]["done"])
        (unchanged if same else changed).append(elapsed)
        previous = state
    assert previous["state"] == "done", previous
    assert unchanged, "no answer waited: every second brought a change"
    assert min(unchanged) >= 0.9, unchanged
    assert changed, "the end of the check is a change"


@pytest.mark.parametrize("query", ["wait=31", "wait=-1", "wait=abc", "wait=%C2%B2", "wait=", "since=%C2%B2",
                                   "wait=1000"])
def test_a_wait_out_of_range_is_a_400_with_the_reason(slow_service: ServiceProcess, query: str) -> None:
    check_id = _submit_slow(slow_service)
    answer = slow_service.get(f"/api/v1/checks/{check_id}?{query}")
    assert answer.status_code == 400, answer.text
    field = query.split("=")[0]
    assert answer.json()["error"].startswith(f"{field}: must be a whole number")
    # Control: the same check is answered with a wait in range.
    assert slow_service.get(f"/api/v1/checks/{check_id}?wait=0").status_code == 200
    assert slow_service.get(f"/api/v1/checks/{check_id}?wait=1").status_code == 200


def test_a_stopping_service_gives_its_waiting_answers_at_once(slow_service: ServiceProcess) -> None:
    check_id = _submit_slow(slow_service)
    answered: list[requests.Response | Exception] = []

    def wait() -> None:
        try:
            answered.append(slow_service.get(f"/api/v1/checks/{check_id}?since={NO_RESULTS}&wait=30"))
        except requests.RequestException as exc:
            answered.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)  # the answer is waiting by then
    started = time.monotonic()
    slow_service.stop(signal.SIGTERM)
    stopped = time.monotonic() - started
    waiter.join(30)
    assert not waiter.is_alive()
    # uvicorn waits for every open answer before it stops: the waiting one is given now, not after its 30 s.
    assert stopped < 15, f"the service took {stopped:.1f}s to stop"
    assert answered and isinstance(answered[0], requests.Response) and answered[0].status_code == 200, answered
    slow_service.start()  # for the fixture's own stop and log check


# The notifier itself: pure logic on an event loop, changes told from other threads.
def test_a_watch_wakes_on_its_checks_change_told_from_another_thread() -> None:
    async def scenario() -> list[bool]:
        changes = Changes()
        seen = []
        with changes.watch("a") as watch:
            threading.Timer(0.05, changes.notify, args=("a",)).start()
            seen.append(await watch.changed(5.0))
            # Control: a change of another check does not wake it, and nothing more comes within the timeout.
            threading.Timer(0.01, changes.notify, args=("b",)).start()
            seen.append(await watch.changed(0.2))
        return seen

    assert asyncio.run(scenario()) == [True, False]


def test_a_change_between_the_watch_and_the_wait_is_not_missed() -> None:
    async def scenario() -> tuple[bool, bool]:
        changes = Changes()
        with changes.watch("a") as watch:
            changes.notify("a")  # before anyone waits: as a commit during the read that comes before the wait
            await asyncio.sleep(0.01)  # the read (in a thread, while the loop runs)
            first = await watch.changed(0.0)
            second = await watch.changed(0.05)  # it was seen once: nothing new since
        return first, second

    assert asyncio.run(scenario()) == (True, False)


def test_close_wakes_every_watch_and_no_later_one_waits() -> None:
    async def scenario() -> tuple[bool, bool, float]:
        changes = Changes()
        with changes.watch("a") as first:
            threading.Timer(0.05, changes.close).start()
            woken = await first.changed(5.0)
        started = time.monotonic()
        with changes.watch("b") as later:
            late = await later.changed(5.0)
        return woken, late, time.monotonic() - started

    woken, late, elapsed = asyncio.run(scenario())
    assert woken and late and elapsed < 1.0


def test_a_finished_watch_is_forgotten() -> None:
    async def scenario() -> dict[str, Any]:
        changes = Changes()
        with changes.watch("a"), changes.watch("a"):
            pass
        changes.notify("a")  # nobody to tell
        return changes._watches

    assert asyncio.run(scenario()) == {}


def test_the_changes_a_thread_commits_while_held_are_told_once_each_at_the_end(tmp_path: Path) -> None:
    """A real SQLite store: what the queue's collector commits in one round wakes a check's answers once, at the
    round's end; the control: outside a hold, and on another thread during one, each change is told at once."""
    store = Store(make_engine(f"sqlite:///{tmp_path / 'service.db'}"))
    schema.upgrade(store.engine)
    told: list[str] = []
    store.on_change = told.append

    def new_check() -> str:
        return store.create_check(NewCheck(
            ticket="T-held", contact="", source="api", submitted_by="test", client_address="127.0.0.1",
            product="pbxware", targets=[("pbx", "127.0.0.2")], total=2, sealed_inventory=b"sealed", vantages=[],
            egress_address="",
        ))  # fmt: skip

    first, second = new_check(), new_check()
    claimed = store.claim_next()
    assert claimed is not None and claimed.id == first and told == [first]
    told.clear()
    with store.changes_held():
        store.add_results([(first, "pbx", "tcp/2020", "pass", "open", "")])
        store.add_results([(first, "pbx", "tcp/80", "pass", "open", "")])
        store.claim_next()
        assert told == []
        other = threading.Thread(target=store.finish, args=(first, "ready", "{}", "sig"))
        other.start()
        other.join(30)
        assert told == [first]  # another thread's change is not held
    assert told == [first, first, second]
