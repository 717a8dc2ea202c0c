"""deploy/nginx.conf, run by Debian's nginx in front of two server processes on one database."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import REDIS_URL
from tests.factories import add_contacts, answered_call, create_campaign, phones, record_events, stats
from tests.servers import (
    HOST,
    STARTUP_S,
    STOP_S,
    ServerProcess,
    free_port,
    issue_key,
    running_servers,
    server_env,
)
from tests.tools import needs_nginx

NGINX = Path("/usr/sbin/nginx")
SHIPPED_CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"

pytestmark = needs_nginx

MAIN_CONF = """\
{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;
events {{ worker_connections 256; }}
http {{
    log_format upstreams '$request_method $uri $status $upstream_addr';
    access_log {prefix}/access.log upstreams;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/callstats.conf;
}}
"""


def render_site(upstreams: list[int], listen: int) -> str:
    """deploy/nginx.conf with its two upstream ports and its listen port replaced."""
    site = SHIPPED_CONF.read_text()
    replacements = {
        "server 127.0.0.1:8001 ": f"server {HOST}:{upstreams[0]} ",
        "server 127.0.0.1:8002 ": f"server {HOST}:{upstreams[1]} ",
        "listen 80;": f"listen {HOST}:{listen};",
    }
    for old, new in replacements.items():
        assert site.count(old) == 1, f"deploy/nginx.conf no longer has exactly one {old!r}"
        site = site.replace(old, new)
    return site


@contextlib.contextmanager
def running_nginx(prefix: Path, upstreams: list[int]) -> Iterator[str]:
    """nginx in the foreground with the shipped site in a private prefix; its base URL."""
    port = free_port()
    (prefix / "callstats.conf").write_text(render_site(upstreams, port))
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the root-only temp prefix
    conf = prefix / "nginx.conf"
    conf.write_text(MAIN_CONF.format(user=user, prefix=prefix))
    argv = [str(NGINX), "-c", str(conf), "-p", str(prefix)]
    checked = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr
    log = (prefix / "nginx.out").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(f"http://{HOST}:{port}/health", process, prefix)
        yield f"http://{HOST}:{port}"
    finally:
        stop_group(process)
        log.close()


def wait_for(url: str, process: subprocess.Popen[bytes], prefix: Path) -> None:
    """Poll `url` until it answers 200, at most STARTUP_S seconds."""
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited: {(prefix / 'error.log').read_text(errors='replace')}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"nginx did not answer within {STARTUP_S:.0f} s")


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGQUIT (graceful stop), then SIGKILL after STOP_S seconds, for the process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGQUIT)
    try:
        process.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_S)


def upstreams_of(access_log: Path, uri: str, count: int) -> list[str]:
    """The upstream address of each of the last `count` requests for `uri` (waits for the log lines)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [line.split() for line in access_log.read_text().splitlines()]
        hits = [fields[3] for fields in lines if fields[1] == uri]
        if len(hits) >= count or time.monotonic() > deadline:
            return hits[-count:]
        time.sleep(0.05)


def test_nginx_alternates_and_serves_reads_and_writes(database_url: str, tmp_path: Path) -> None:
    """Requests alternate over both servers, reads and writes work through nginx, a dead server is skipped."""
    env = server_env(database_url, REDIS_URL if not database_url.startswith("sqlite") else None)
    key = issue_key(env)
    with (
        running_servers(env, tmp_path, count=2) as servers,
        running_nginx(tmp_path, [s.port for s in servers]) as base_url,
        httpx.Client(base_url=base_url, headers={"x-api-key": key}, timeout=30) as http,
    ):
        addresses = {f"{HOST}:{s.port}" for s in servers}
        for _ in range(6):
            assert http.get("/health").status_code == 200
        seen = upstreams_of(tmp_path / "access.log", "/health", 6)
        assert set(seen) == addresses
        assert all(a != b for a, b in itertools.pairwise(seen)), seen

        campaign_id = create_campaign(http, "")
        numbers = phones(10_000)
        assert add_contacts(http, "", campaign_id, numbers)["accepted"] == 10_000
        record_events(http, "", [e for p in numbers[:4] for e in answered_call(campaign_id, p, 10)])
        reads = [stats(http, "", campaign_id) for _ in range(4)]
        assert all(read == reads[0] for read in reads)
        assert (reads[0]["total_contacts"], reads[0]["calls_completed"]) == (10_000, 4)
        assert set(upstreams_of(tmp_path / "access.log", f"/getCampaignStats/{campaign_id}", 4)) == addresses

        metrics_stay_behind(http, tmp_path / "access.log")
        keep_serving_after_a_crash(http, servers, campaign_id)


def metrics_stay_behind(http: httpx.Client, access_log: Path) -> None:
    """/metrics is not forwarded: nginx connects from loopback, which a server without a metrics token
    would take for a local client. nginx answers 404 in the envelope itself, and no upstream sees it."""
    for path in ("/metrics", "/metrics?format=text"):
        response = http.get(path)
        assert response.status_code == 404, response.text
        assert response.json() == {"success": False, "message": "No such route", "error": "NOT_FOUND"}
    assert upstreams_of(access_log, "/metrics", 2) == ["-", "-"]


def keep_serving_after_a_crash(http: httpx.Client, servers: list[ServerProcess], campaign_id: str) -> None:
    """With one server killed, every request through nginx still succeeds, on the other one."""
    servers[0].kill()
    assert add_contacts(http, "", campaign_id, phones(3, exchange=299))["accepted"] == 3
    for _ in range(4):
        assert stats(http, "", campaign_id)["total_contacts"] == 10_003
