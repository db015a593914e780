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


@pytest.mark.parametrize("names", [("eu",), ("eu", "us")])
def test_a_report_written_from_host_lines_is_the_bytes_the_documents_make(
    demo: dict[str, Any], names: tuple[str, ...]
) -> None:
    """A worker sends each host as the line of JSON the report holds: the report written from those lines (as they
    came, from one vantage; decoded, from several) is byte for byte the one the whole documents make."""
    per_vantage = {"eu": batches_of(demo, 3)}
    if "us" in names:
        per_vantage["us"] = [filtered(batch, batch["hosts"][0]["name"]) for batch in batches_of(demo, 3)]
    from_documents: list[str] = []
    vantages.stream_combined(from_documents.append, names, 3, lambda name, batch: per_vantage[name][batch], SHA)
    from_lines: list[str] = []
    combined = vantages.CombinedReport(from_lines.append, names, SHA)
    for batch in range(3):
        combined.add([(name, vantages.read_batch(vantages.EncodedBatch.of(per_vantage[name][batch]).text()))
                      for name in names])  # fmt: skip
    assert combined.end()["hosts"] == 3 * len(demo["hosts"])
    assert "".join(from_lines) == "".join(from_documents)


def test_a_stored_batch_reads_in_either_release_s_form_and_a_broken_one_is_refused(demo: dict[str, Any]) -> None:
    document = batches_of(demo, 1)[0]
    encoded = vantages.EncodedBatch.of(document)
    read = vantages.read_batch(encoded.text())
    assert isinstance(read, vantages.EncodedBatch) and read.document() == document
    # What the earlier release stored: the whole document on one line.
    assert vantages.read_batch(json.dumps(document, separators=(",", ":"))) == document
    lines = encoded.text().split("\n")
    for broken in (
        "\n".join(lines[:-1]),  # a host fewer than verdicts
        "\n".join([*lines, lines[-1]]),  # a host more
        "\n".join([lines[0], *("[1]" for _ in lines[1:])]),  # hosts that are not objects
        "\n".join([lines[0].replace('"ready":[', '"ready":["yes",'), *lines[1:]]),  # a verdict that is not one
        json.dumps(document, indent=1),  # a document over several lines
    ):
        with pytest.raises(ValueError):
            vantages.read_batch(broken)
