"""The monitor's Prometheus metrics: exposition, textfile, HTTP endpoint, and the dashboards and alert rules
that read them (a panel or rule on a metric nobody exports is silently empty, never an error)."""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from aire.monitor.metrics import MonitorMetrics, quantile_label

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "infra" / "grafana" / "dashboards" / "aire.json"
ALERTS = REPO / "infra" / "prometheus" / "alerts.yml"
BASE = {"model": "champion", "version": "3", "endpoint": "champion"}


def recorded(**overrides) -> MonitorMetrics:
    metrics = MonitorMetrics()
    values = {
        **BASE,
        "accuracy": 0.91,
        "accuracy_delta": -0.02,
        "error_ratio": 0.004,
        "latency": {("ttft_ms", "p95"): 420.0, ("tpot_ms", 0.5): 9.5},
        "burn": {("availability", "1h"): 15.0, ("availability", "5m"): 20.0},
        "drift": {"prompt_length": (True, 0.001), "embedding": (False, 0.4)},
        "incidents_open": 1,
        "outcome": "breach",
    }
    metrics.record(**{**values, **overrides})
    return metrics


def samples(text: str | bytes) -> dict[tuple[str, frozenset], float]:
    if isinstance(text, bytes):
        text = text.decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, frozenset({**BASE, **labels}.items()))]


def test_exposition_names_labels_values() -> None:
    found = samples(recorded().exposition())
    assert value(found, "aire_accuracy") == 0.91
    assert value(found, "aire_accuracy_delta") == -0.02
    assert value(found, "aire_error_ratio") == 0.004
    assert value(found, "aire_latency_ms", sli="ttft_ms", quantile="0.95") == 420.0
    assert value(found, "aire_latency_ms", sli="tpot_ms", quantile="0.5") == 9.5
    assert value(found, "aire_slo_burn_rate", slo="availability", window="1h") == 15.0
    assert value(found, "aire_slo_burn_rate", slo="availability", window="5m") == 20.0
    assert value(found, "aire_drift_detected", feature="prompt_length") == 1.0
    assert value(found, "aire_drift_detected", feature="embedding") == 0.0
    assert value(found, "aire_drift_p_value", feature="prompt_length") == 0.001
    assert value(found, "aire_incidents_open") == 1.0
    assert value(found, "aire_monitor_runs_total", outcome="breach") == 1.0
    assert value(found, "aire_monitor_last_run_timestamp_seconds") > 1.7e9


def test_a_dedicated_registry_each() -> None:
    a, b = recorded(), MonitorMetrics()
    assert a.registry is not b.registry  # two instances never clash over registration
    assert "aire_accuracy{" not in b.exposition().decode()
    assert b"python_gc" not in a.exposition()  # the global registry's process metrics stay out
    shared = CollectorRegistry()
    assert MonitorMetrics(shared).registry is shared


def test_values_left_out_are_not_exported() -> None:
    metrics = MonitorMetrics()
    metrics.record(**BASE)
    names = {name for name, _ in samples(metrics.exposition())}
    assert "aire_accuracy" not in names and "aire_error_ratio" not in names
    assert {"aire_incidents_open", "aire_monitor_last_run_timestamp_seconds", "aire_monitor_runs_total"} <= names


def test_record_replaces_the_previous_snapshot() -> None:
    metrics = recorded()
    # The next run: rolled back to v2, one feature no longer tested, accuracy not measured.
    metrics.record(**{**BASE, "version": "2"}, drift={"embedding": (False, 0.3)}, outcome="ok")
    found = samples(metrics.exposition())
    gauges = {(n, dict(k)["version"]) for n, k in found if not n.startswith("aire_monitor_runs")}
    assert all(version == "2" for _, version in gauges)  # nothing of v3 lingers to keep an alert firing
    assert ("aire_accuracy", "2") not in gauges
    assert value(found, "aire_drift_p_value", version="2", feature="embedding") == 0.3
    assert ("aire_drift_p_value", frozenset({**BASE, "version": "2", "feature": "prompt_length"}.items())) not in found
    # Counters are cumulative: both runs stay counted.
    assert value(found, "aire_monitor_runs_total", outcome="breach") == 1.0
    assert value(found, "aire_monitor_runs_total", version="2", outcome="ok") == 1.0


def test_other_models_are_kept() -> None:
    metrics = recorded()
    metrics.record(model="other", version="1", endpoint="other", accuracy=0.5)
    found = samples(metrics.exposition())
    assert value(found, "aire_accuracy") == 0.91
    assert found[("aire_accuracy", frozenset({"model": "other", "version": "1", "endpoint": "other"}.items()))] == 0.5


@pytest.mark.parametrize(("given", "label"), [("p95", "0.95"), (0.99, "0.99"), ("0.5", "0.5"), ("p99.9", "0.999")])
def test_quantile_labels(given: str | float, label: str) -> None:
    assert quantile_label(given) == label


def test_quantile_out_of_range() -> None:
    with pytest.raises(ValueError, match="not in"):
        quantile_label(95)


def test_textfile_round_trip(tmp_path: Path) -> None:
    metrics = recorded()
    path = tmp_path / "metrics" / "aire.prom"
    metrics.write_textfile(path)
    assert samples(path.read_text()) == samples(metrics.exposition())
    assert [p.name for p in path.parent.iterdir()] == ["aire.prom"]  # no temp file left behind


def test_serve_on_loopback_then_stop() -> None:
    metrics = recorded()
    server = metrics.serve(0)  # 0: the OS picks a free port, no race with other tests
    try:
        assert server.addr == "127.0.0.1" and server.port > 0
        with urllib.request.urlopen(server.url, timeout=5) as resp:
            assert resp.status == 200
            body = resp.read()
        assert value(samples(body), "aire_accuracy") == 0.91
    finally:
        server.stop()
    assert not server.thread.is_alive()
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url, timeout=2)


def test_push_to_a_gateway() -> None:
    received: list[tuple[str, str, bytes]] = []

    class Gateway(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.command, self.path, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        recorded().push(f"http://127.0.0.1:{httpd.server_port}")
    finally:
        httpd.shutdown()
        httpd.server_close()
    [(method, path, body)] = received
    assert method == "PUT"
    # Grouped by model and endpoint, so two models' monitors do not replace each other's metrics.
    assert path.startswith("/metrics/job/aire-monitor/")
    parts = path.removeprefix("/metrics/job/aire-monitor/").split("/")
    assert dict(zip(parts[::2], parts[1::2], strict=True)) == {"model": "champion", "endpoint": "champion"}
    assert value(samples(body), "aire_accuracy") == 0.91


# --------------------------------------------------------------------------- dashboards and alert rules
def exported_names() -> set[str]:
    """What the monitor exports, and what a gateway (with its cache on) serves on its /metrics."""
    import tempfile

    from aire.client.config import AireConfig
    from aire.core.settings import Settings
    from aire.gateway.app import Gateway
    from aire.gateway.config import GatewayConfig

    with tempfile.TemporaryDirectory() as home:
        gateway = Gateway(Settings(home=Path(home)), GatewayConfig(cache={"enabled": True}), AireConfig())
        row = {"route": "m", "version": "1", "status": 200, "prompt_tokens": 3, "completion_tokens": 2,
               "ttft_ms": 5.0, "e2e_ms": 9.0}  # fmt: skip
        gateway.metrics.observe(row)
        served = {name for name, _ in samples(gateway.metrics.render())}
        gateway.store.close()
    return {name for name, _ in samples(recorded().exposition())} | served


def aire_names(promql: str) -> set[str]:
    return set(re.findall(r"\baire_[A-Za-z0-9_:]*", promql))


def dashboard_queries(node: object) -> list[str]:
    """Every PromQL string of a dashboard: panel targets and template variables."""
    out: list[str] = []
    if isinstance(node, dict):
        for key, v in node.items():
            if (key in ("expr", "definition") and isinstance(v, str)) or (key == "query" and isinstance(v, str)):
                out.append(v)
            else:
                out += dashboard_queries(v)
    elif isinstance(node, list):
        for v in node:
            out += dashboard_queries(v)
    return out


def test_dashboard_references_only_exported_metrics() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "aire-monitor" and dash["schemaVersion"] >= 39
    queries = dashboard_queries(dash)
    referenced = set().union(*map(aire_names, queries))
    assert referenced - exported_names() == set()
    # Every aire SLI has a panel, and vLLM's own metrics are charted too.
    families = {"aire_accuracy", "aire_accuracy_delta", "aire_error_ratio", "aire_latency_ms", "aire_slo_burn_rate"}
    families |= {"aire_drift_p_value", "aire_drift_detected", "aire_incidents_open"}
    assert families <= referenced
    assert any("vllm:num_requests_running" in q for q in queries)
    assert any("histogram_quantile" in q and "vllm:time_to_first_token_seconds_bucket" in q for q in queries)
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "prometheus"
            assert all(q.count("(") == q.count(")") for q in (t["expr"] for t in panel["targets"]))


def test_alert_rules_reference_only_exported_metrics() -> None:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    assert all(rule["labels"]["severity"] in ("page", "ticket") for rule in rules)
    referenced = set().union(*(aire_names(rule["expr"]) for rule in rules))
    assert referenced - exported_names() == set()
    assert {"aire_slo_burn_rate", "aire_drift_detected", "aire_incidents_open"} <= referenced
    assert "aire_monitor_last_run_timestamp_seconds" in referenced
    assert all(rule["expr"].count("(") == rule["expr"].count(")") for rule in rules)
    # Each SLO burn pair of aire.slo.DEFAULT_WINDOWS has a rule with its severity and both windows.
    from aire.monitor.slo import DEFAULT_WINDOWS, duration_label

    burn_rules = [r for r in rules if "aire_slo_burn_rate" in r["expr"]]
    for w in DEFAULT_WINDOWS:
        long_, short = duration_label(w.long), duration_label(w.short)
        assert any(
            f'window="{long_}"}} > {w.burn_rate:g}' in r["expr"]
            and f'window="{short}"}} > {w.burn_rate:g}' in r["expr"]
            and r["labels"]["severity"] == w.severity
            for r in burn_rules
        ), (long_, short)


def test_prometheus_and_grafana_provisioning_load() -> None:
    prom = yaml.safe_load((REPO / "infra" / "prometheus" / "prometheus.yml").read_text())
    assert prom["global"]["evaluation_interval"] == "15s"
    assert prom["rule_files"] == ["alerts.yml"]
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert "aire-metrics:9108" in targets and any(t.endswith(":8000") for t in targets)
    grafana = REPO / "infra" / "grafana" / "provisioning"
    [source] = yaml.safe_load((grafana / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert (source["uid"], source["url"]) == ("prometheus", "http://prometheus:9090")
    [provider] = yaml.safe_load((grafana / "dashboards" / "aire.yaml").read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_textfiles_of_two_models_merge_into_one_valid_exposition(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from aire.monitor.metrics import merge_textfiles

    for model, acc in (("a-lm", 0.9), ("b-lm", 0.7)):
        m = MonitorMetrics()
        m.record(model=model, version="1", endpoint="e", accuracy=acc)
        m.write_textfile(tmp_path / f"{model}.prom")
    text = merge_textfiles(sorted(tmp_path.glob("*.prom"))).decode()
    assert text.count("# TYPE aire_accuracy gauge") == 1
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "aire_accuracy"]
    assert {s.labels["model"]: s.value for s in family.samples} == {"a-lm": 0.9, "b-lm": 0.7}


def test_compose_monitor_profile_wires_the_configs_together() -> None:
    """docker-compose.yml cannot be run here (no Docker engine): check what it references exists."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    prom = yaml.safe_load((REPO / "infra" / "prometheus" / "prometheus.yml").read_text())
    targets = [t.split(":")[0] for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert set(targets) <= set(services), f"scrape targets without a service: {set(targets) - set(services)}"
    for service in ("prometheus", "grafana", "aire-metrics", "monitor-worker"):
        assert services[service]["profiles"] == ["monitor"]
    for volume in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
        assert (REPO / volume.split(":")[0]).exists(), volume
    assert "infra/prefect.yaml" in " ".join(services["monitor-worker"]["command"])


# --------------------------------------------------------------------------- what `aire metrics` serves
def write_model(folder: Path, model: str, accuracy: float, version: str = "1") -> Path:
    m = MonitorMetrics()
    m.record(model=model, version=version, endpoint="e", accuracy=accuracy)
    path = folder / f"{model}.prom"
    m.write_textfile(path)
    return path


def scrape(registry: CollectorRegistry) -> dict[tuple[str, frozenset], float]:
    from prometheus_client import generate_latest

    return samples(generate_latest(registry))


def accuracy_by_model(found: dict) -> dict[str, float]:
    return {dict(labels)["model"]: v for (name, labels), v in found.items() if name == "aire_accuracy"}


def test_textfile_registry_reads_the_folder_at_every_scrape(tmp_path: Path) -> None:
    import io

    from aire.monitor.metrics import textfile_registry

    folder = tmp_path / "metrics"
    log = io.StringIO()
    registry = textfile_registry(folder, log)  # the folder need not exist yet
    assert accuracy_by_model(scrape(registry)) == {}
    assert scrape(registry)[("aire_textfile_scrape_error", frozenset())] == 0.0
    write_model(folder, "aire-model", 0.9)
    write_model(folder, "other-model", 0.7)
    assert accuracy_by_model(scrape(registry)) == {"aire-model": 0.9, "other-model": 0.7}
    write_model(folder, "aire-model", 0.6)  # the next monitor run
    (folder / "other-model.prom").unlink()
    assert accuracy_by_model(scrape(registry)) == {"aire-model": 0.6}
    assert log.getvalue() == ""
    assert not [name for name, _ in scrape(registry) if name.startswith(("python_", "process_"))]


def test_a_malformed_textfile_is_skipped_whole_and_named_once(tmp_path: Path) -> None:
    import io

    from aire.monitor.metrics import textfile_registry

    write_model(tmp_path, "aire-model", 0.9)
    # A valid first family, then a broken line: nothing of this file may be served, not even its first part.
    (tmp_path / "broken.prom").write_text(
        '# TYPE aire_accuracy gauge\naire_accuracy{model="broken",version="1",endpoint="e"} 0.1\naire_error_ratio{ 1\n'
    )
    (tmp_path / "binary.prom").write_bytes(b"\xff\xfe\x00garbage")
    log = io.StringIO()
    registry = textfile_registry(tmp_path, log)
    for _ in range(3):
        found = scrape(registry)
        assert accuracy_by_model(found) == {"aire-model": 0.9}
        assert found[("aire_textfile_scrape_error", frozenset())] == 1.0
    lines = sorted(log.getvalue().splitlines())  # one line per bad file, not one per scrape
    assert [line.split(": ")[:2] for line in lines] == [
        ["aire metrics", f"skipping {tmp_path / 'binary.prom'}"],
        ["aire metrics", f"skipping {tmp_path / 'broken.prom'}"],
    ]
    (tmp_path / "broken.prom").write_text("still { broken\n")  # a new version of the file is named again
    scrape(registry)
    assert len(log.getvalue().splitlines()) == 3


def test_a_type_clash_skips_the_file_and_the_newest_series_wins(tmp_path: Path) -> None:
    import io
    import os

    from aire.monitor.metrics import textfile_registry

    old = write_model(tmp_path, "aire-model", 0.5, version="1")
    os.utime(old, (1_700_000_000, 1_700_000_000))
    stale = tmp_path / "0-stale.prom"  # an older file holding the same series, listed first by name
    stale.write_text(old.read_text().replace(" 0.5", " 0.1"))
    os.utime(stale, (1_600_000_000, 1_600_000_000))
    clash = tmp_path / "zz-counter.prom"  # the oldest file gives aire_accuracy another type
    clash.write_text("# TYPE aire_accuracy counter\naire_accuracy_total 3\n")
    os.utime(clash, (1_500_000_000, 1_500_000_000))
    log = io.StringIO()
    found = scrape(textfile_registry(tmp_path, log))
    [value] = [v for (n, _), v in found.items() if n == "aire_accuracy"]
    assert value == 0.5  # the series of the most recently written file, once (no duplicate sample)
    assert "zz-counter.prom" in log.getvalue() and "counter" in log.getvalue()
    assert found[("aire_textfile_scrape_error", frozenset())] == 1.0
