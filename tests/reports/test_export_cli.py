"""`callstats export` end to end against a served process: the file is the route's export byte for
byte, the summary counts its rows, and every refusal is one line with README's exit codes."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.factories import AT, add_contacts, create_campaign, ended_call, phones, record_events, started_call
from tests.reports.helpers import csv_records, ndjson_records
from tests.servers import run_cli
from tests.stream.helpers import new_key, serving


def test_export_writes_the_routes_file(database_url: str, tmp_path: Path) -> None:
    """contacts (all, by state) and calls, CSV and NDJSON: the file the route streams, its rows counted."""
    key = new_key(database_url)
    numbers = phones(30)
    with (
        serving(database_url, tmp_path) as server,
        httpx.Client(headers={"x-api-key": key}, timeout=30) as http,
    ):
        campaign_id = create_campaign(http, server.base_url)
        add_contacts(http, server.base_url, campaign_id, numbers)
        events = [started_call(campaign_id, p, f"c{i}") for i, p in enumerate(numbers[:10])]
        events += [ended_call(campaign_id, p, f"c{i}", "busy") for i, p in enumerate(numbers[:4])]
        record_events(http, server.base_url, events)
        cases = [
            (["contacts"], "/exportContacts", {}, 30),
            (["contacts", "--state", "in_progress"], "/exportContacts", {"state": "in_progress"}, 6),
            (["contacts", "--last-outcome", "busy", "--format", "ndjson"], "/exportContacts",
             {"last_outcome": "busy", "format": "ndjson"}, 4),
            (["calls", "--format", "ndjson"], "/exportCalls", {"format": "ndjson"}, 10),
            (["calls", "--from", AT], "/exportCalls", {"from": AT}, 10),
        ]  # fmt: skip
        for index, (args, route, params, rows) in enumerate(cases):
            out = tmp_path / f"export-{index}"
            done = run_cli(server.base_url, key, campaign_id, *args, "-o", str(out), command="export")
            assert done.returncode == 0, done.stderr
            assert f": {rows} rows in " in done.stdout, done.stdout
            served = http.get(f"{server.base_url}{route}/{campaign_id}", params=params)
            assert out.read_bytes() == served.content
            parse = ndjson_records if params.get("format") == "ndjson" else csv_records
            assert len(parse(out.read_bytes())) == rows

        keep = tmp_path / "kept"
        keep.write_text("before")
        unknown = "00000000-0000-4000-8000-000000000000"
        for args, code, says in (
            ([unknown, "contacts"], 1, "HTTP 404 NOT_FOUND: Campaign not found"),
            ([campaign_id, "contacts", "--state", "gone"], 1, "HTTP 400 VALIDATION_ERROR"),
            ([campaign_id, "calls", "--state", "failed"], 2, "does not apply to calls"),
            ([campaign_id, "tables"], 2, "tables"),
            (["not-a-uuid", "contacts"], 2, "not a UUID"),
        ):
            done = run_cli(server.base_url, key, *args, "-o", str(keep), command="export")
            assert done.returncode == code, (args, done.stderr)
            assert says in done.stderr, done.stderr
            assert keep.read_text() == "before"
        done = run_cli("127.0.0.1:1", key, campaign_id, "contacts", "-o", str(keep), command="export")
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        done = run_cli(
            f"http://127.0.0.1:{server.port + 1}",
            key,
            campaign_id,
            "contacts",
            "-o",
            str(keep),
            command="export",
        )
        assert done.returncode == 1 and "callstats export: stopped: cannot reach" in done.stderr, done.stderr
