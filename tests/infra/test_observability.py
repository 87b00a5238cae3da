"""infra/observability: the alert rules pass `promtool check` and their own unit tests, and a
real Prometheus (Debian's, `make tools`) scraping a running `bifrost serve` sees it up, reads
its request counts, and fires BifrostApiDown once the API stops."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.services import free_port, service_missing
from tests.support.waiting import wait_for

OBSERVABILITY = Path(__file__).resolve().parents[2] / "infra" / "observability"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        service_missing("promtool (make tools)", "not on PATH")
    return found


def test_rules_and_config_pass_promtool():
    for check in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        done = subprocess.run([promtool(), *check], cwd=OBSERVABILITY, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "SUCCESS: 9 rules found"
        in subprocess.run(
            [promtool(), "check", "rules", "alerts.yml"], cwd=OBSERVABILITY, capture_output=True, text=True
        ).stdout
    )


def test_every_alert_fires_in_its_unit_test():
    done = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"], cwd=OBSERVABILITY, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rules = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tested = {
        case["alertname"]
        for test in yaml.safe_load((OBSERVABILITY / "alerts_test.yml").read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert alerts == tested, "every alert has a unit test in which it fires"


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # the database is not what is tested
def test_prometheus_scrapes_the_api_and_fires_when_it_stops(serve, database, tmp_path):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        service_missing("Prometheus (make tools)", "not on PATH")
    url = serve({"BIFROST_DATABASE_URL": database.url})
    api_port = url.rsplit(":", 1)[1]
    # The shipped rules, with their `for` waits cut to nothing: the waits are promtool's to test.
    rules = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["for"] = "0s"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"}
    config["scrape_configs"] = [config["scrape_configs"][0]]  # the API's job (no worker runs here)
    config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{api_port}"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    prom = f"http://127.0.0.1:{port}/api/v1"

    def query(expr: str) -> list[dict]:
        try:
            answer = httpx.get(f"{prom}/query", params={"query": expr}, timeout=5)
        except httpx.HTTPError:
            return []
        return answer.json()["data"]["result"] if answer.status_code == 200 else []

    def firing() -> set[str]:
        try:
            alerts = httpx.get(f"{prom}/alerts", timeout=5).json()["data"]["alerts"]
        except httpx.HTTPError:
            return set()
        return {alert["labels"]["alertname"] for alert in alerts if alert["state"] == "firing"}

    try:
        for _ in range(5):
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        up = 'up{job="bifrost-api"}'
        wait_for("the API scraped as up", lambda: [r["value"][1] for r in query(up)] == ["1"])
        wait_for(
            "the API's request count in Prometheus",
            lambda: any(
                float(r["value"][1]) >= 5
                for r in query('bifrost_api_requests_total{route="/healthz",status="200"}')
            ),
        )
        # Before the first scrape nothing answered: the alert may fire, then resolve.
        wait_for("BifrostApiDown resolved", lambda: "BifrostApiDown" not in firing())
        stopped = subprocess.run(["pkill", "-f", f"cli.serve --host 127.0.0.1 --port {api_port} "])
        assert stopped.returncode == 0, "the API process was found and stopped"
        wait_for("BifrostApiDown firing", lambda: "BifrostApiDown" in firing())
        assert "BifrostApiProcessDown" in firing()
    finally:
        process.terminate()
        process.wait(timeout=30)
