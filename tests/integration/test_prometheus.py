"""The metrics path for real: the monitor's own export (export_metrics of a MonitorResult computed by
check_traffic over realistic production logs) -> ``aire metrics`` (a subprocess) -> a real Prometheus
server (Debian's package) scraping it every second and evaluating infra/prometheus/alerts.yml.

Checked against that Prometheus: every metric name used by the Grafana dashboards and by the alert rules
returns data, every dashboard query of aire's metrics returns data, and the burn-rate alerts that fire in
Prometheus are the ones aire's own SLO report says fire. The vLLM panels of the dashboard are checked
against real vLLM servers (the session's ``vllm_endpoints``) scraped by the same kind of Prometheus.

Prometheus is installed when missing and this is root (see tests/unit/test_promtool.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from aire.data.logs import LogRecord
from aire.ops.processes import free_port, http_get
from tests.conftest import AIRE, REPO, stop_process, wait_http
from tests.unit.test_promtool import ensure_prometheus

pytestmark = pytest.mark.integration
GRAFANA = REPO / "infra" / "grafana"
PROM_CONFIG = REPO / "infra" / "prometheus" / "prometheus.yml"
ALERTS = REPO / "infra" / "prometheus" / "alerts.yml"
NOW = datetime.now(UTC).replace(microsecond=0)
MODEL, OTHER = "aire-model", "other-model"

# PromQL words of the dashboards and rules that are not metric names.
PROMQL_WORDS = {
    *("sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "time", "absent"),
    *("and", "or", "unless", "bool", "vector", "scalar"),
}


# --------------------------------------------------------------------------- the queries to check
def dashboard_queries() -> list[str]:
    """Every PromQL string of every dashboard under infra/grafana: panel targets' ``expr`` and template
    variables' ``query``/``definition`` (Grafana's ``label_values(selector, label)`` reduced to its selector)."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, v in node.items():
                if key in ("expr", "query", "definition") and isinstance(v, str):
                    found.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    paths = sorted(GRAFANA.rglob("*.json"))
    assert paths, f"no dashboards under {GRAFANA}"
    for path in paths:
        walk(json.loads(path.read_text()))
    out = []
    for q in found:
        m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", q, re.S)
        out.append(m.group(1) if m else q)
    return sorted(set(out))


def alert_exprs() -> list[str]:
    return [rule["expr"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for rule in g["rules"]]


def metric_names(promql: str) -> set[str]:
    """Metric names of a PromQL expression: what is left once strings, label matchers, grouping clauses,
    range selectors, numbers and PromQL's own words are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", promql)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    words = set(re.findall(r"(?<![\w:.])[A-Za-z_:][A-Za-z0-9_:]*", text))
    return words - PROMQL_WORDS


def test_metric_name_extraction() -> None:
    """The parser the checks below rely on (a name it missed would never be checked)."""
    q = "histogram_quantile(0.95, sum by (le, model_name) (rate(vllm:time_to_first_token_seconds_bucket[5m])))"
    assert metric_names(q) == {"vllm:time_to_first_token_seconds_bucket"}
    q = 'time() - max by (model) (aire_monitor_last_run_timestamp_seconds{model=~"$model"}) > 2 * 3600'
    assert metric_names(q) == {"aire_monitor_last_run_timestamp_seconds"}
    q = 'aire_slo_burn_rate{window="1h"} > 14.4 unless on (model, slo) aire_slo_burn_rate{window="5m"}'
    assert metric_names(q) == {"aire_slo_burn_rate"}
    names = set().union(*map(metric_names, dashboard_queries()), *map(metric_names, alert_exprs()))
    assert all(n.startswith(("aire_", "vllm:")) for n in names), names  # a third source would need its own check
    assert {"aire_accuracy", "aire_slo_burn_rate", "vllm:num_requests_running"} <= names


def aire_names() -> set[str]:
    """The monitor's metric names (the gateway's, ``aire_gateway_*``, are checked against a real gateway in
    tests/integration/test_gateway_prometheus.py)."""
    names = set().union(*map(metric_names, dashboard_queries()), *map(metric_names, alert_exprs()))
    return {n for n in names if n.startswith("aire_") and not n.startswith(GATEWAY)}


GATEWAY = "aire_gateway_"


def concrete(promql: str) -> str:
    """A dashboard query with its template variables set to match everything."""
    return re.sub(r"\$\{?\w+\}?", ".*", promql.replace("$__rate_interval", "1m"))


# --------------------------------------------------------------------------- the monitor's real output
def write_logs(path: Path, endpoint: str, model: str, error_share: float) -> None:
    """Three days of production logs: a quiet reference (one request per 5 minutes, short prompts, all
    answered) and a last hour of busier traffic (one request per 15 s) with longer prompts (drift) and
    ``error_share`` of them failed, spread evenly."""
    rows = []
    start = NOW - timedelta(days=3)
    t, i, j = start + timedelta(seconds=30), 0, 0
    while t < NOW:
        recent = t > NOW - timedelta(hours=1)
        failed = recent and (j % 20) < error_share * 20
        j += recent
        a, b = i % 10, (i * 7) % 10
        rows.append(
            LogRecord(
                id=f"{endpoint}-{i:05d}",
                ts=t,
                endpoint=endpoint,
                model=model,
                prompt=f"Q: {a}{b}{a}+{b}{a}{b}=\nA:" if recent else f"Q: {a}+{b}=\nA:",
                response=None if failed else f" {a + b}",
                status="error" if failed else "ok",
                error_type="timeout" if failed else None,
                finish_reason=None if failed else "stop",
                ttft_ms=None if failed else 40.0 + i % 7 + (30.0 if recent else 0.0),
                tpot_ms=None if failed else 8.0 + i % 3,
                e2e_ms=None if failed else 65.0 + i % 11,
                prompt_tokens=14 if recent else 9,
                output_tokens=None if failed else 3,
            ).model_dump_json()
        )
        t += timedelta(seconds=15 if recent else 300)
        i += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def monitor_result(home: Path, model: str, version: str, endpoint: str, error_share: float) -> Any:
    """The MonitorResult the monitor flow would reach on these logs: check_traffic for real, a canary that
    measured a drop in accuracy."""
    from aire.gate.policy import Verdict
    from aire.monitor import CanaryResult, MonitorResult, check_traffic

    log_dir = home / "logs" / endpoint
    write_logs(log_dir / "prod.jsonl", endpoint, model, error_share)
    traffic = check_traffic(
        log_dir, now=NOW, window=timedelta(hours=1), reference=timedelta(days=1), endpoint=endpoint, embeddings=False
    )
    assert traffic is not None and traffic.drift is not None and traffic.slo is not None
    canary = CanaryResult(
        suite="arith",
        n=200,
        verdict=Verdict.FAIL,
        reasons=["exact_match/mean fell 0.12"],
        accuracy={"exact_match/mean": 0.83},
        baseline={"exact_match/mean": 0.95},
        delta={"exact_match/mean": (-0.12, -0.17, -0.07)},
        baseline_run="run-0",
        offset=0,
    )
    return MonitorResult(
        model=model, version=version, endpoint=endpoint, canary=canary, traffic=traffic, breach=True, reasons=[]
    )


@dataclass
class Exported:
    home: Path
    results: dict[str, Any]  # model -> MonitorResult


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """<home>/metrics/aire-model.prom and other-model.prom, written by the monitor's own export_metrics."""
    from aire.core.settings import Settings
    from aire.monitor.export import export_metrics

    home = tmp_path_factory.mktemp("prom-home")
    settings = Settings(home=home)
    results = {
        MODEL: monitor_result(home, MODEL, "3", "champion", error_share=0.4),
        OTHER: monitor_result(home, OTHER, "7", "other", error_share=0.0),
    }
    for result in results.values():
        export_metrics(settings, result)
    assert sorted(p.name for p in (home / "metrics").iterdir()) == [f"{MODEL}.prom", f"{OTHER}.prom"]
    return Exported(home=home, results=results)


# --------------------------------------------------------------------------- the processes
@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    return ensure_prometheus()[0]


@dataclass
class MetricsServer:
    url: str
    proc: subprocess.Popen[bytes]
    stderr: Path


def start_aire_metrics(home: Path, log_dir: Path) -> MetricsServer:
    port = free_port()
    err = log_dir / f"aire-metrics-{port}.err"
    with open(log_dir / f"aire-metrics-{port}.out", "wb") as out, open(err, "wb") as errf:
        proc = subprocess.Popen(
            [AIRE, "metrics", "--port", str(port), "--host", "127.0.0.1"],
            env={**_env(), "AIRE_HOME": str(home)},
            stdout=out,
            stderr=errf,
            start_new_session=True,
        )
    server = MetricsServer(url=f"http://127.0.0.1:{port}/metrics", proc=proc, stderr=err)
    try:
        wait_http(server.url, 30, proc)
    except BaseException:
        stop_process(proc)
        raise
    return server


def _env() -> dict[str, str]:
    """This environment without aire settings of its own (the test names AIRE_HOME)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AIRE_")}


@pytest.fixture(scope="module")
def aire_metrics(exported: Exported, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsServer]:
    server = start_aire_metrics(exported.home, tmp_path_factory.mktemp("aire-metrics"))
    try:
        yield server
    finally:
        stop_process(server.proc)  # only the process this fixture started, by its pid (own process group)


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, **params: str) -> Any:
        status, body = http_get(f"{self.url}{path}?{urllib.parse.urlencode(params)}", timeout_s=10)
        assert status == 200, f"{path} {params}: HTTP {status}; log {self.log}"
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=promql)
        assert data["resultType"] == "vector", data
        return data["result"]

    def wait_scraped(self, job: str, n_targets: int, timeout_s: float = 30) -> None:
        """Until every target of ``job`` was scraped successfully at least twice (increase() needs two)."""
        deadline = time.monotonic() + timeout_s
        while True:
            targets = [t for t in self.get("/api/v1/targets")["activeTargets"] if t["labels"]["job"] == job]
            up = [t for t in targets if t["health"] == "up"]
            twice = self.query(f'count_over_time(up{{job="{job}"}}[1m]) >= 2 and up{{job="{job}"}} == 1')
            if len(up) == n_targets and len(twice) == n_targets:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited; log {self.log}: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job} not scraped in {timeout_s}s: {json.dumps(targets)[:2000]}")
            time.sleep(0.5)


def start_prometheus(binary: str, tmp: Path, scrape_configs: list[dict[str, Any]]) -> Prometheus:
    """A real Prometheus on a free loopback port: its own TSDB folder, 1 s scrapes and rule evaluations,
    the shipped alerts.yml as its rules."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": scrape_configs,
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = tmp / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            start_new_session=True,
        )
    prom = Prometheus(url=f"http://127.0.0.1:{port}", proc=proc, log=log)
    try:
        wait_http(f"{prom.url}/-/ready", 60, proc)
    except BaseException:
        stop_process(proc)
        raise
    return prom


def shipped_job(name: str, targets: list[str]) -> dict[str, Any]:
    """A job of infra/prometheus/prometheus.yml as shipped, pointed at local targets instead of compose hosts."""
    [job] = [j for j in yaml.safe_load(PROM_CONFIG.read_text())["scrape_configs"] if j["job_name"] == name]
    return {**job, "static_configs": [{"targets": targets}]}


@pytest.fixture(scope="module")
def prometheus(
    prometheus_bin: str, aire_metrics: MetricsServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    target = aire_metrics.url.removeprefix("http://").removesuffix("/metrics")
    prom = start_prometheus(prometheus_bin, tmp_path_factory.mktemp("prometheus"), [shipped_job("aire", [target])])
    try:
        prom.wait_scraped("aire", 1)
        yield prom
    finally:
        stop_process(prom.proc)


# --------------------------------------------------------------------------- aire metrics on its own
def families(text: bytes) -> dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def test_get_metrics_merges_both_models_files(aire_metrics: MetricsServer, exported: Exported) -> None:
    status, body = http_get(aire_metrics.url)
    assert status == 200
    found = families(body)
    text = body.decode()
    for name in ("aire_accuracy", "aire_slo_burn_rate", "aire_monitor_last_run_timestamp_seconds"):
        assert text.count(f"# TYPE {name} gauge") == 1  # one family per name, both models' samples in it
        assert {s.labels["model"] for s in found[name].samples} == {MODEL, OTHER}, name
    [acc] = [s for s in found["aire_accuracy"].samples if s.labels["model"] == MODEL]
    assert (acc.value, acc.labels["version"], acc.labels["endpoint"]) == (0.83, "3", "champion")
    assert {s.labels["outcome"] for s in found["aire_monitor_runs"].samples if s.name.endswith("_total")} == {"breach"}
    assert found["aire_textfile_scrape_error"].samples[0].value == 0.0
    # Exactly what the two textfiles hold, nothing of the serving process (no python_gc_*, process_*).
    from_files: set[tuple[str, frozenset[tuple[str, str]]]] = set()
    for path in sorted((exported.home / "metrics").glob("*.prom")):
        from_files |= {
            (s.name, frozenset(s.labels.items())) for f in families(path.read_bytes()).values() for s in f.samples
        }
    served = {(s.name, frozenset(s.labels.items())) for f in found.values() for s in f.samples}
    assert served - {("aire_textfile_scrape_error", frozenset())} == from_files


# --------------------------------------------------------------------------- through Prometheus
def test_every_aire_metric_of_dashboards_and_alerts_has_data(prometheus: Prometheus) -> None:
    names = aire_names()
    assert len(names) >= 9
    empty = [name for name in sorted(names) if not prometheus.query(name)]
    assert not empty, f"no data in Prometheus for {empty}"
    for name in names:
        for series in prometheus.query(name):
            assert series["metric"]["job"] == "aire"
            # honor_labels: the series keep the monitor's labels.
            assert series["metric"]["model"] in (MODEL, OTHER), series


def test_every_aire_dashboard_query_has_data(prometheus: Prometheus) -> None:
    queries = [
        q
        for q in dashboard_queries()
        if metric_names(q) and all(n.startswith("aire_") and not n.startswith(GATEWAY) for n in metric_names(q))
    ]
    assert len(queries) >= 10
    empty = [q for q in queries if not prometheus.query(concrete(q))]
    assert not empty, f"dashboard queries without data: {empty}"
    # The template variables list both monitored models.
    models = {s["metric"]["model"] for s in prometheus.query("aire_monitor_last_run_timestamp_seconds")}
    assert models == {MODEL, OTHER}
    # A drifted feature shows on the drift panel, with the value the monitor exported.
    drifted = {s["metric"]["feature"] for s in prometheus.query(concrete('aire_drift_detected{model=~"$model"} == 1'))}
    assert "prompt_chars" in drifted


def test_burn_alerts_in_prometheus_agree_with_aire_slo_report(prometheus: Prometheus, exported: Exported) -> None:
    """alerts.yml evaluated by Prometheus on the exported burn rates fires exactly the pairs that aire's own
    SLO report (aire/monitor/slo.py) fires, wherever the report had enough events to judge."""
    expected, judged = set(), set()
    for model, result in exported.results.items():
        for alert in result.traffic.slo["alerts"]:
            key = (f"AireSLOBurnRate{alert['long_window']}", model, alert["slo"], alert["severity"])
            if not alert["note"]:  # enough events in both windows
                judged.add(key)
                if alert["firing"]:
                    expected.add(key)
    assert ("AireSLOBurnRate1h", MODEL, "availability", "page") in expected  # the 40% failures page
    deadline = time.monotonic() + 20
    while True:
        alerts = prometheus.get("/api/v1/alerts")["alerts"]
        firing = {
            (a["labels"]["alertname"], a["labels"]["model"], a["labels"]["slo"], a["labels"]["severity"])
            for a in alerts
            if a["state"] == "firing" and a["labels"]["alertname"].startswith("AireSLOBurnRate")
        }
        if firing & judged == expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert firing & judged == expected
    names = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
    assert "AireDriftDetected" in names  # the longer prompts of the last hour
    assert not names & {"AireIncidentOpen", "AireMonitorStale", "AireMonitorAbsent"}
    rules = {r["name"]: r for g in prometheus.get("/api/v1/rules")["groups"] for r in g["rules"]}
    assert all(r["health"] == "ok" for r in rules.values()), [r for r in rules.values() if r["health"] != "ok"]
    assert len(rules) == len(alert_exprs())


# --------------------------------------------------------------------------- vLLM's panels
def test_every_vllm_metric_of_the_dashboard_has_data(
    prometheus_bin: str, vllm_endpoints: dict[str, dict[str, object]], tmp_path: Path
) -> None:
    names = {n for q in dashboard_queries() for n in metric_names(q) if n.startswith("vllm:")}
    assert names
    targets = [str(body["base_url"]).removeprefix("http://").removesuffix("/v1") for body in vllm_endpoints.values()]
    for body in vllm_endpoints.values():  # one request each, so the latency histograms have counts
        status, _ = _post_completion(str(body["base_url"]), str(body["model"]))
        assert status == 200
    prom = start_prometheus(prometheus_bin, tmp_path, [shipped_job("vllm", targets)])
    try:
        prom.wait_scraped("vllm", len(targets))
        empty = [name for name in sorted(names) if not prom.query(name)]
        assert not empty, f"no data in Prometheus for {empty}"
        queries = [q for q in dashboard_queries() if metric_names(q) and metric_names(q) <= names]
        empty = [q for q in queries if not prom.query(concrete(q))]
        assert not empty, f"dashboard queries without data: {empty}"
    finally:
        stop_process(prom.proc)


def _post_completion(base_url: str, model: str) -> tuple[int, bytes]:
    import urllib.request

    req = urllib.request.Request(
        f"{base_url}/completions",
        data=json.dumps({"model": model, "prompt": "Q: 3+4=\nA:", "max_tokens": 4}).encode(),
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=60) as resp:
        return resp.status, resp.read()
