"""A report streamed batch by batch (as the service writes a large one) is the report `combine` makes whole."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from preflight import vantages
from tests.lab import SCHEMA
from tests.vantage_reports import demo_report, filtered, only_checks, recount

SHA = "a" * 64


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return only_checks(demo_report(tmp_path_factory.mktemp("demo")))


def batches_of(document: dict[str, Any], copies: int) -> list[dict[str, Any]]:
    """The report's hosts repeated under new names, cut into batches of one original report each."""
    cut = []
    for number in range(copies):
        batch = copy.deepcopy(document)
        for host in batch["hosts"]:
            host["name"] = f"{host['name']}-{number}"
        cut.append(recount(batch))
    return cut


@pytest.mark.parametrize("names", [("eu",), ("eu", "us")])
def test_streaming_writes_what_combine_makes(demo: dict[str, Any], names: tuple[str, ...]) -> None:
    per_vantage = {"eu": batches_of(demo, 3)}
    if "us" in names:
        per_vantage["us"] = [filtered(batch, batch["hosts"][0]["name"]) for batch in batches_of(demo, 3)]
    pieces: list[str] = []
    summary = vantages.stream_combined(pieces.append, names, 3, lambda name, batch: per_vantage[name][batch], SHA)
    streamed = json.loads("".join(pieces))
    whole = vantages.combine([(name, vantages.merge_batches(per_vantage[name])) for name in names], SHA)
    assert streamed == whole
    assert summary == whole["summary"]
    jsonschema.Draft202012Validator(SCHEMA).validate(streamed)
    assert list(streamed)[:2] == ["schema_version", "hosts"]


def test_a_stream_of_no_host_is_still_a_report(demo: dict[str, Any], tmp_path: Path) -> None:
    empty = {**copy.deepcopy(demo), "hosts": []}
    pieces: list[str] = []
    vantages.stream_combined(pieces.append, ("eu",), 1, lambda name, batch: recount(empty), SHA)
    assert json.loads("".join(pieces))["summary"] == {"hosts": 0, "ready": 0, "not_ready": 0}
