"""`/metrics`: requests by route template and status with a latency histogram, entity cache
lookups by result, the database pool's use; with several `bifrost serve` workers, any worker's
answer counts every worker's requests."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from bifrost_core.config import load_settings
from tests.support.world import World, build_world


def scrape(get) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics answer: (name, sorted labels) -> value."""
    answer = get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def requests(samples, route: str, status: int, method: str = "GET") -> float:
    labels = (("method", method), ("route", route), ("status", str(status)))
    return samples.get(("bifrost_api_requests_total", labels), 0.0)


def lookups(samples, result: str) -> float:
    return samples.get(("bifrost_api_cache_lookups_total", (("result", result),)), 0.0)


def test_requests_are_counted_by_route_template_status_and_time(client, world: World):
    headers = world.headers("coordinator")
    before = scrape(client.get)
    for _ in range(3):
        assert client.get(f"/shots/{world.a.shot_id}", headers=headers).status_code == 200
    assert client.get("/shots/987654", headers=headers).status_code == 404
    assert client.get("/no/such/path/12345").status_code == 404
    assert client.get(f"/shots/{world.a.shot_id}").status_code == 401
    after = scrape(client.get)

    assert requests(after, "/shots/{shot_id}", 200) - requests(before, "/shots/{shot_id}", 200) == 3
    assert requests(after, "/shots/{shot_id}", 404) - requests(before, "/shots/{shot_id}", 404) == 1
    assert requests(after, "/shots/{shot_id}", 401) - requests(before, "/shots/{shot_id}", 401) == 1
    # A made-up path is one series whatever it is: clients cannot add series at will.
    assert requests(after, "unmatched", 404) - requests(before, "unmatched", 404) == 1
    assert not any("987654" in str(key) or "12345" in str(key) for key in after)
    count = ("bifrost_api_request_duration_seconds_count", (("method", "GET"), ("route", "/shots/{shot_id}")))
    assert after[count] - before.get(count, 0.0) == 5
    everything = (("le", "+Inf"), ("method", "GET"), ("route", "/shots/{shot_id}"))
    slowest = ("bifrost_api_request_duration_seconds_bucket", everything)
    assert after[slowest] == after[count]
    assert after[("bifrost_db_pool_connections_open", ())] >= 1
    assert after[("bifrost_db_pool_connections_in_use", ())] >= 0


def test_entity_cache_lookups_are_counted_by_result(client, world: World):
    headers = world.headers("coordinator")
    before = scrape(client.get)
    for _ in range(4):
        assert client.get(f"/sequences/{world.a.sequence_id}", headers=headers).status_code == 200
    after = scrape(client.get)
    assert lookups(after, "miss") - lookups(before, "miss") == 1
    assert lookups(after, "hit") - lookups(before, "hit") == 3


@pytest.mark.slow
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)  # several workers: a studio's set-up
def test_any_worker_answers_for_every_worker(serve, database, redis_url):
    world = build_world(database)
    # Redis: workers share one entity cache only there (an in-process one is off with two).
    url = serve({"BIFROST_DATABASE_URL": database.url, "BIFROST_REDIS_URL": redis_url}, workers=2)
    headers = world.headers("coordinator")

    def get_shot(_: int) -> int:
        # A connection per request, so that both workers take some.
        return httpx.get(f"{url}/shots/{world.a.shot_id}", headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(get_shot, range(60))) == {200}
    for _ in range(6):
        samples = scrape(lambda path: httpx.get(url + path, timeout=30))
        assert requests(samples, "/shots/{shot_id}", 200) == 60
        assert lookups(samples, "hit") + lookups(samples, "miss") == 60


def test_what_is_stored_and_the_farm_queue_are_read_from_the_database(client, world: World, database):
    with database.engine.connect() as connection:
        hot = connection.execute(
            text(
                "SELECT count(*), sum(b.size) FROM blob_locations l JOIN blobs b ON b.id = l.blob_id"
                " WHERE tier = 'hot'"
            )
        ).one()
        pending = connection.execute(
            text("SELECT count(*) FROM render_chunks WHERE state = 'pending'")
        ).scalar()
        queued = connection.execute(text("SELECT count(*) FROM render_jobs WHERE state = 'queued'")).scalar()
    assert hot[0] >= 1 and pending >= 1  # the world has stored blobs and a submitted render job
    Path(load_settings().tier_roots["hot"]).mkdir(parents=True, exist_ok=True)
    samples = scrape(client.get)
    assert samples[("bifrost_storage_blobs", (("tier", "hot"),))] == hot[0]
    assert samples[("bifrost_storage_bytes", (("tier", "hot"),))] == hot[1]
    assert samples[("bifrost_render_chunks", (("state", "pending"),))] == pending
    assert samples[("bifrost_render_jobs", (("state", "queued"),))] == queued
    assert samples[("bifrost_render_chunks", (("state", "running"),))] == 0
    # The home's hot tier is a local folder: its file system's size and free space.
    assert (
        0
        < samples[("bifrost_storage_root_free_bytes", (("tier", "hot"),))]
        <= samples[("bifrost_storage_root_size_bytes", (("tier", "hot"),))]
    )


def test_metrics_off_serves_no_metrics_and_counts_nothing(make_client, world: World):
    from prometheus_client import REGISTRY

    client = make_client(metrics_enabled=False)
    headers = world.headers("coordinator")
    labels = {"method": "GET", "route": "/shots/{shot_id}", "status": "200"}
    before = REGISTRY.get_sample_value("bifrost_api_requests_total", labels) or 0.0
    misses = REGISTRY.get_sample_value("bifrost_api_cache_lookups_total", {"result": "miss"}) or 0.0
    assert client.get(f"/shots/{world.a.shot_id}", headers=world.headers("coordinator")).status_code == 200
    assert client.get(f"/sequences/{world.a.sequence_id}", headers=headers).status_code == 200
    assert client.get("/metrics").status_code == 404
    assert (REGISTRY.get_sample_value("bifrost_api_requests_total", labels) or 0.0) == before
    assert (REGISTRY.get_sample_value("bifrost_api_cache_lookups_total", {"result": "miss"}) or 0.0) == misses
    # The same request with metrics on is counted: the figures above are the switch's doing.
    counted = make_client()
    assert counted.get(f"/shots/{world.a.shot_id}", headers=world.headers("coordinator")).status_code == 200
    assert counted.get(f"/sequences/{world.a.sequence_id}", headers=headers).status_code == 200
    assert REGISTRY.get_sample_value("bifrost_api_requests_total", labels) == before + 1
    assert REGISTRY.get_sample_value("bifrost_api_cache_lookups_total", {"result": "miss"}) == misses + 2
