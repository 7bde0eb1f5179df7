"""The monitor's SLIs as Prometheus metrics, so Grafana can chart them and Alertmanager can page on them.

The monitor is a batch job (a flow run every so often), not a server, so it hands its numbers over in
the three ways Prometheus takes batch results: a textfile (node-exporter's textfile collector, or
``aire metrics`` serving it), a push to a Pushgateway, or an HTTP endpoint of its own while a process
lives. Every metric lives on a dedicated ``CollectorRegistry``: the global one carries process metrics
of whatever imported prometheus_client (and duplicate-registration errors across tests).

``record`` replaces the previous snapshot of the same model and endpoint: a drift feature, burn window
or version that is no longer reported disappears instead of repeating its last value forever (which
would keep an alert firing after a rollback).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, push_to_gateway, write_to_textfile
from prometheus_client import start_http_server as _start_http_server
from prometheus_client.metrics_core import Metric

BASE_LABELS = ("model", "version", "endpoint")


def quantile_label(q: str | float) -> str:
    """Prometheus' convention for a quantile label: "0.95", whether given as 0.95, "0.95" or "p95"."""
    value = float(q[1:]) / 100.0 if isinstance(q, str) and q.lower().startswith("p") else float(q)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"quantile {q!r} is not in [0, 1] (or p0..p100)")
    return f"{value:g}"


@dataclass
class MetricsServer:
    """A running /metrics endpoint; ``stop()`` shuts it down and frees the port."""

    server: Any  # wsgiref WSGIServer
    thread: threading.Thread
    addr: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.addr}:{self.port}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class _Snapshot:
    """The label sets one ``record`` set, per gauge, so the next record can remove what it no longer sets."""

    series: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        def gauge(name: str, doc: str, *extra: str) -> Gauge:
            return Gauge(name, doc, [*BASE_LABELS, *extra], registry=r)

        self.accuracy = gauge("aire_accuracy", "Canary accuracy of the production version (main metric).")
        self.accuracy_delta = gauge(
            "aire_accuracy_delta", "Canary accuracy minus the same inputs' score when the version was evaluated."
        )
        self.error_ratio = gauge("aire_error_ratio", "Fraction of bad rows in the current traffic window.")
        self.latency = gauge("aire_latency_ms", "Latency quantile of production traffic, in ms.", "sli", "quantile")
        self.burn = gauge(
            "aire_slo_burn_rate", "SLO error-budget burn rate over a window (1 = on budget).", "slo", "window"
        )
        self.drift_detected = gauge("aire_drift_detected", "1 when the feature drifted vs the reference.", "feature")
        self.drift_p = gauge("aire_drift_p_value", "Drift test p-value (multiplicity-adjusted).", "feature")
        self.incidents = gauge("aire_incidents_open", "Open incidents of the model.")
        self.last_run = gauge("aire_monitor_last_run_timestamp_seconds", "Unix time the monitor last recorded.")
        self.runs = Counter("aire_monitor_runs", "Monitor runs, by outcome.", [*BASE_LABELS, "outcome"], registry=r)
        self._snapshots: dict[tuple[str, str], _Snapshot] = {}
        self._lock = threading.Lock()
        self._last_key: tuple[str, str] | None = None

    def record(
        self,
        *,
        model: str,
        version: str,
        endpoint: str,
        accuracy: float | None = None,
        accuracy_delta: float | None = None,
        error_ratio: float | None = None,
        latency: Mapping[tuple[str, str | float], float] | None = None,
        burn: Mapping[tuple[str, str], float] | None = None,
        drift: Mapping[str, tuple[bool, float]] | None = None,
        incidents_open: int = 0,
        outcome: str = "ok",
    ) -> None:
        """One monitor run's values for one model at one endpoint. A value left None is not exported
        (no sample beats a made-up one); latency keys are (sli, quantile), burn keys (slo, window)."""
        base = (model, str(version), endpoint)
        new: dict[str, set[tuple[str, ...]]] = {}

        def put(name: str, gauge: Gauge, value: float | None, *extra: str) -> None:
            if value is None:
                return
            labels = (*base, *extra)
            gauge.labels(*labels).set(float(value))
            new.setdefault(name, set()).add(labels)

        with self._lock:
            put("accuracy", self.accuracy, accuracy)
            put("accuracy_delta", self.accuracy_delta, accuracy_delta)
            put("error_ratio", self.error_ratio, error_ratio)
            for (sli, q), ms in (latency or {}).items():
                put("latency", self.latency, ms, sli, quantile_label(q))
            for (slo, window), rate in (burn or {}).items():
                put("burn", self.burn, rate, slo, window)
            for feature, (detected, p) in (drift or {}).items():
                put("drift_detected", self.drift_detected, 1.0 if detected else 0.0, feature)
                put("drift_p", self.drift_p, p, feature)
            put("incidents", self.incidents, incidents_open)
            self.last_run.labels(*base).set_to_current_time()
            new.setdefault("last_run", set()).add(base)
            self.runs.labels(*base, outcome).inc()
            # New values are set before stale ones go, so a concurrent scrape never sees the model vanish.
            key = (model, endpoint)
            old = self._snapshots.get(key, _Snapshot()).series
            for name, label_sets in old.items():
                gauge = self._gauge(name)
                for labels in label_sets - new.get(name, set()):
                    gauge.remove(*labels)
            self._snapshots[key] = _Snapshot(series=new)
            self._last_key = key

    def _gauge(self, name: str) -> Gauge:
        return {
            "accuracy": self.accuracy,
            "accuracy_delta": self.accuracy_delta,
            "error_ratio": self.error_ratio,
            "latency": self.latency,
            "burn": self.burn,
            "drift_detected": self.drift_detected,
            "drift_p": self.drift_p,
            "incidents": self.incidents,
            "last_run": self.last_run,
        }[name]

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric recorded so far."""
        return generate_latest(self.registry)

    def write_textfile(self, path: str | Path) -> None:
        """Write atomically (temp file + rename), so node-exporter's textfile collector never reads half a
        file. The collector only reads files ending in ``.prom``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), self.registry)

    def push(self, gateway_url: str, job: str = "aire-monitor", grouping_key: Mapping[str, str] | None = None) -> None:
        """Push to a Pushgateway (PUT: replaces the group's metrics). The group defaults to the last
        recorded model and endpoint, so two models' monitors do not overwrite each other's metrics."""
        if grouping_key is None and self._last_key is not None:
            grouping_key = {"model": self._last_key[0], "endpoint": self._last_key[1]}
        push_to_gateway(gateway_url, job=job, registry=self.registry, grouping_key=dict(grouping_key or {}))

    def serve(self, port: int, addr: str = "127.0.0.1") -> MetricsServer:
        """Serve /metrics from a daemon thread until ``stop()``; ``port=0`` picks a free port (read
        ``.port``). Loopback by default: binding every interface is a deliberate choice (e.g. in a
        container), not an accident."""
        server, thread = _start_http_server(port, addr=addr, registry=self.registry)
        return MetricsServer(server=server, thread=thread, addr=addr, port=int(server.server_port))


class TextfileCollector:
    """Every ``*.prom`` textfile of a folder (one per monitored model), merged into one exposition and read
    afresh at every scrape: what ``aire metrics`` serves. Register it on a private ``CollectorRegistry``
    with ``auto_describe=False`` (registering must not read the folder).

    A file that cannot be read or parsed, or that gives a metric another type than an earlier file did,
    is left out whole (never half of it) and named in one line on stderr, once per version of the file;
    ``aire_textfile_scrape_error`` is 1 while any file is left out, so the gap itself can be alerted on.
    A series present in two files keeps the value of the most recently written file.
    """

    def __init__(self, folder: str | Path, log: TextIO | None = None) -> None:
        self.folder = Path(folder)
        self._log = log
        self._reported: set[tuple[str, int, int]] = set()
        self._lock = threading.Lock()

    def paths(self) -> list[Path]:
        """The textfiles, newest first (their series win over an older file's), then by name."""
        found = []
        for path in self.folder.glob("*.prom"):
            try:
                found.append((-path.stat().st_mtime_ns, path.name, path))
            except OSError:  # removed between the listing and the stat
                continue
        return [path for *_, path in sorted(found)]

    def _skip(self, path: Path, why: str) -> None:
        try:
            st = path.stat()
            version = (str(path), st.st_mtime_ns, st.st_size)
        except OSError:
            version = (str(path), 0, 0)
        with self._lock:
            if version in self._reported:
                return
            self._reported.add(version)
        print(f"aire metrics: skipping {path}: {why}", file=self._log or sys.stderr, flush=True)

    def collect(self) -> list[Metric]:
        return _merge(self.paths(), self._skip)


def _merge(paths: list[Path], skip: Callable[[Path, str], None]) -> list[Metric]:
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, Metric] = {}
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    errors = 0
    for path in paths:
        try:
            parsed = list(text_string_to_metric_families(path.read_text()))
        except Exception as exc:  # whatever the parser raises, one bad file must not fail the scrape
            errors += 1
            skip(path, f"{type(exc).__name__}: {exc}")
            continue
        clash = next((f for f in parsed if f.name in families and families[f.name].type != f.type), None)
        if clash is not None:
            errors += 1
            skip(path, f"metric {clash.name} is a {clash.type} here, a {families[clash.name].type} in a newer file")
            continue
        for family in parsed:
            merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in seen:
                    seen.add(key)
                    merged.samples.append(sample)
    health = Metric("aire_textfile_scrape_error", "1 when a textfile of aire metrics could not be read.", "gauge")
    health.add_sample("aire_textfile_scrape_error", {}, 1.0 if errors else 0.0)
    return [*families.values(), health]


def merge_textfiles(paths: list[Path]) -> bytes:
    """One exposition from several textfiles (one per monitored model). Concatenating them is not
    valid text format: a metric family's lines must be contiguous, with one HELP and TYPE. A file that
    does not parse is left out (see ``TextfileCollector``)."""

    def skip(path: Path, why: str) -> None:
        print(f"aire metrics: skipping {path}: {why}", file=sys.stderr, flush=True)

    class _Merged:
        def collect(self) -> list[Metric]:
            return _merge(list(paths), skip)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged())  # type: ignore[arg-type]
    return generate_latest(registry)


def textfile_registry(folder: str | Path, log: TextIO | None = None) -> CollectorRegistry:
    """A private registry holding only a ``TextfileCollector`` of ``folder``: no process metrics of the
    serving process, no duplicate-registration errors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TextfileCollector(folder, log))  # type: ignore[arg-type]
    return registry
