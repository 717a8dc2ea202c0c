"""The access log (issue 9 item 7), on real servers over loopback: one line per request with its
method, route template, status, duration and request id; never the key, the body, the raw path or
the query string; none when CALLSTATS_ACCESS_LOG is false; plain text lines in the demo; every
line written by the time a stopped server (any number of workers) has exited."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, update
from sqlalchemy.pool import NullPool

from callstats.app import create_app
from callstats.config import Settings, sqlalchemy_url
from callstats.db.schema import campaign_counters, campaigns
from callstats.web import _new_request_id
from tests.apps import access_to
from tests.servers import CALLSTATS, ServerProcess, server_env, start_server, wait_for_banner
from tests.stream.helpers import new_key, serving

WAIT_S = 15.0  # longest wait for a line to reach the log (it is written after the answer)
ACCESS_FIELDS = {
    "time",
    "level",
    "logger",
    "event",
    "method",
    "route",
    "status",
    "duration_ms",
    "request_id",
    "campaign_id",
}
BODY_SECRET = "body-secret-7f3a"  # sent in bodies only
QUERY_SECRET = "query-secret-91c2"  # sent in a query string only
PATH_SECRET = "path-secret-55d0"  # sent in the path of a route that does not exist


@dataclass
class Sent:
    """One request of a test and what the server answered."""

    method: str
    route: str | None
    status: int
    request_id: str
    campaign_id: str | None = None


def access_lines(server: ServerProcess) -> list[dict[str, Any]]:
    """The server's access lines so far, parsed (every line of its log must be JSON)."""
    lines = [json.loads(line) for line in server.log.read_text(errors="replace").splitlines() if line.strip()]
    return [line for line in lines if line.get("logger") == "callstats.access"]


def lines_for(server: ServerProcess, request_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The access line of each request id, waiting until all of them are in the log."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = {line["request_id"]: line for line in access_lines(server)}
        if set(request_ids) <= set(found) or time.monotonic() > deadline:
            missing = set(request_ids) - set(found)
            assert not missing, f"no access line for {missing}:\n{server.log_tail()}"
            return {rid: found[rid] for rid in request_ids}
        time.sleep(0.05)


def unreadable_campaign(database_url: str, http: httpx.Client) -> str:
    """A campaign whose stored times no code path can format: its reads are genuine 500s (no mock)."""
    created = http.post("/createCampaign", json={"name": "unreadable"})
    assert created.status_code == 201, created.text
    campaign_id: str = created.json()["data"]["campaign_id"]
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(created_at=2**62))
        counters = campaign_counters.c
        conn.execute(
            update(campaign_counters).where(counters.campaign_id == campaign_id).values(first_call_at=2**62)
        )
    engine.dispose()
    return campaign_id


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """`callstats serve` with the default settings (access log on, log level warning), and a write key."""
    key = new_key(database_url)
    with serving(database_url, tmp_path) as server:
        yield server, key


def send_every_kind(http: httpx.Client, database_url: str) -> list[Sent]:
    """Requests on the hot routes, framework routes, no route, and two genuine 500s; what each got."""
    sent: list[Sent] = []

    def call(method: str, path: str, route: str | None, campaign_id: str | None = None, **kw: Any) -> None:
        rid = f"test-{len(sent)}"
        response = http.request(method, path, headers={"x-request-id": rid}, **kw)
        sent.append(Sent(method, route, response.status_code, rid, campaign_id))

    created = http.post("/createCampaign", json={"name": BODY_SECRET})
    campaign_id = created.json()["data"]["campaign_id"]
    call("POST", "/createCampaign", "/createCampaign", json={"name": BODY_SECRET})
    stats = f"/getCampaignStats/{campaign_id}?include=attempts&token={QUERY_SECRET}"
    call("GET", stats, "/getCampaignStats/{campaignId}", campaign_id)
    event = {"event_id": BODY_SECRET, "campaign_id": campaign_id, "type": "call.started"}
    call("POST", "/recordCallEvents", "/recordCallEvents", json={"events": [event]})
    call("GET", f"/getCampaign/{campaign_id}", "/getCampaign/{campaignId}", campaign_id)
    call("GET", f"/no/such/route/{PATH_SECRET}", None)
    call("GET", "/openapi.json", "/openapi.json")  # a framework route without path parameters
    call("GET", "/getCampaignStats/not-a-uuid", "/getCampaignStats/{campaignId}")
    unreadable = unreadable_campaign(database_url, http)
    for route in ("/getCampaign/{campaignId}", "/getCampaignStats/{campaignId}"):
        response = http.get(
            route.replace("{campaignId}", unreadable)
        )  # no X-Request-Id: the server makes one
        assert response.status_code == 500, response.text
        sent.append(Sent("GET", route, 500, response.headers["x-request-id"], unreadable))
    return sent


def test_each_request_is_one_json_access_line(served: tuple[ServerProcess, str], database_url: str) -> None:
    """Every request gives one JSON line: method, route template (null for no route), the status it
    got, a duration, the request id (the client's, or for a 500 the `X-Request-Id` it carries),
    the campaign id; the key, bodies, raw paths and query strings never reach the log."""
    server, key = served
    with httpx.Client(base_url=server.base_url, headers={"x-api-key": key}, timeout=30) as http:
        sent = send_every_kind(http, database_url)
    assert [s.status for s in sent if s.route is None] == [404]
    assert [s.status for s in sent][-2:] == [500, 500]
    lines = lines_for(server, [s.request_id for s in sent])
    for request in sent:
        line = lines[request.request_id]
        assert set(line) == ACCESS_FIELDS, line
        assert (line["level"], line["event"]) == ("INFO", "request")
        assert (line["method"], line["route"], line["status"]) == (
            request.method,
            request.route,
            request.status,
        )
        assert line["campaign_id"] == request.campaign_id
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    logged = [line["request_id"] for line in access_lines(server)]
    assert all(logged.count(s.request_id) == 1 for s in sent)
    text = server.log.read_text()
    for leak in (key, BODY_SECRET, QUERY_SECRET, PATH_SECRET, "include=", "/no/such"):
        assert leak not in text, leak


def test_the_setting_off_gives_no_access_line(database_url: str, tmp_path: Path) -> None:
    """CALLSTATS_ACCESS_LOG=false: requests are answered and the server logs (at info), but no access line."""
    key = new_key(database_url)
    with (
        serving(database_url, tmp_path, access_log="false", log_level="info") as server,
        httpx.Client(base_url=server.base_url, headers={"x-api-key": key}, timeout=30) as http,
    ):
        created = http.post("/createCampaign", json={"name": "quiet"})
        assert created.status_code == 201
        campaign_id = created.json()["data"]["campaign_id"]
        assert http.get(f"/getCampaignStats/{campaign_id}").status_code == 200
        assert http.get("/no/such/route").status_code == 404
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.strip()]
    assert any(line["logger"].startswith("uvicorn") for line in lines), lines  # the log itself works
    assert [line for line in lines if line["logger"] == "callstats.access" or "route" in line] == []


HUMAN_LINE = re.compile(  # time, method, route template, status, duration, request id
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} GET /getCampaignStats/\{campaignId\} 200 \d+\.\d\d ms"
    r" id=demo-rid-1"
)


def test_the_demo_writes_plain_text_access_lines(tmp_path: Path) -> None:
    """`callstats demo` logs each request as one line a person reads (not JSON), without the key."""
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    command = [
        str(CALLSTATS),
        "demo",
        "--contacts",
        "50",
        "--port",
        "0",
        "--database",
        str(tmp_path / "d.db"),
    ]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=stdout, stderr=stderr)
    try:
        banner = wait_for_banner(out, proc)
        url = f"{banner['Base URL']}/getCampaignStats/{banner['Campaign']}"
        headers = {"x-api-key": banner["API key"], "x-request-id": "demo-rid-1"}
        assert httpx.get(url, headers=headers, timeout=10).status_code == 200
        deadline = time.monotonic() + WAIT_S
        while "id=demo-rid-1" not in err.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    ours = [line for line in err.read_text().splitlines() if "id=demo-rid-1" in line]
    assert len(ours) == 1 and HUMAN_LINE.fullmatch(ours[0]), err.read_text()
    assert banner["API key"] not in err.read_text()


async def test_waiting_lines_are_written_at_lifespan_shutdown(settings: Settings) -> None:
    """Lines wait for their flush, and the app's lifespan shutdown writes them all before it reports
    complete (a worker process ends right after, without running exit handlers)."""
    stream = io.StringIO()
    with access_to(stream):
        app = create_app(settings)
        app.access.flush_seconds = 3600  # only the shutdown writes them
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        told: list[str] = []

        async def tell(message: Any) -> None:
            told.append(message["type"])

        inbox.put_nowait({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        lifespan = asyncio.create_task(app(scope, inbox.get, tell))
        while "lifespan.startup.complete" not in told:
            assert not lifespan.done(), told
            await asyncio.sleep(0.01)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            for number in range(3):
                response = await http.get("/health", headers={"x-request-id": f"lifespan-{number}"})
                assert response.status_code == 200
        assert stream.getvalue() == ""
        inbox.put_nowait({"type": "lifespan.shutdown"})
        await asyncio.wait_for(lifespan, 30)
    assert told == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["request_id"], line["route"], line["status"]) for line in lines] == [
        (f"lifespan-{n}", "/health", 200) for n in range(3)
    ]


def test_a_stopped_server_has_written_every_line(database_url: str, tmp_path: Path) -> None:
    """SIGTERM right after a burst of requests to two workers: once the server has exited, each
    request has its one line, whole (every line of the log parses), though the last ones were
    still waiting for their flush when the signal came."""
    server = start_server(server_env(database_url, None), tmp_path, workers=2)
    try:
        sent = []
        for number in range(60):  # a connection each, so that both workers serve some
            rid = f"stop-{number}"
            response = httpx.get(f"{server.base_url}/health", headers={"x-request-id": rid}, timeout=10)
            assert response.status_code == 200
            sent.append(rid)
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log_tail()
    logged = [line["request_id"] for line in access_lines(server)]  # every line parses: none is torn
    assert sorted(rid for rid in logged if rid.startswith("stop-")) == sorted(sent), server.log_tail()


def test_new_request_ids_are_unique_per_process_and_after_fork() -> None:
    """A new id is 32 hex digits, never repeated in a process, and a forked child draws its own
    random half (so the workers of one server never hand out the same id)."""
    ids = [_new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report its first id, and leave without any clean-up of the parent's
        os.write(write, _new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 64).decode()
    os.close(read)
    assert len(theirs) == 32 and theirs[:16] != ids[0][:16]
