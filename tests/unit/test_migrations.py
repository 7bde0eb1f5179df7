"""Store migrations (Alembic): a new store is created by them, a store from before migrations
(tests/fixtures/store-v0.db, written by today's schema's ``create_all``) is upgraded without losing a
row, and the migrated schema is the models' schema; on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, func, select, text

from aire.core.errors import AireError
from aire.store import current_revision, upgrade
from aire.store.engine import engine_for
from aire.store.migrate import HEAD, MIGRATIONS
from aire.store.schema import Base
from aire.store.store import Store

V0 = Path(__file__).resolve().parents[1] / "fixtures" / "store-v0.db"
TABLES = ("runs", "results", "alias_history", "incidents")
# Columns of those tables that later revisions add (0004: results.logprobs): not in a pre-migration store.
LATER_COLUMNS = (("results", "logprobs"),)


def counts(url: str) -> dict[str, int]:
    with engine_for(url).connect() as conn:
        return {t: conn.execute(select(func.count()).select_from(text(t))).scalar_one() for t in TABLES}


def schema_diff(url: str) -> list:
    """What Alembic's autogenerate would change to make the store match the models: nothing."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine_for(url).connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


def test_head_is_alembics_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]


def test_a_new_store_is_created_by_the_migrations(store_url: str) -> None:
    assert current_revision(store_url) is None
    Store(store_url)  # migrates before first use
    assert current_revision(store_url) == HEAD
    assert upgrade(store_url) == HEAD  # a second upgrade is a no-op
    assert schema_diff(store_url) == []


def test_asking_the_revision_does_not_create_a_store(tmp_path: Path) -> None:
    assert current_revision(f"sqlite:///{tmp_path / 'none.db'}") is None
    assert not (tmp_path / "none.db").exists()


def _v0_on(store_url: str, tmp_path: Path) -> None:
    """The v0 fixture's rows in the store at ``store_url``, as a pre-migration store holds them."""
    if store_url.startswith("sqlite"):
        shutil.copy(V0, tmp_path / "aire.db")
        return
    # PostgreSQL: the tables as today's Store made them (create_all), and the fixture's rows copied in.
    source = create_engine(f"sqlite:///{V0}")
    target = engine_for(store_url)
    # Only the tables a pre-migration store had: later revisions add their own.
    v0_tables = [t for t in Base.metadata.sorted_tables if t.name in TABLES]
    Base.metadata.create_all(target, tables=v0_tables)
    with target.begin() as conn:
        for table, column in LATER_COLUMNS:
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
    rows = MetaData()
    rows.reflect(source)
    with source.connect() as src, target.begin() as dst:
        for table in v0_tables:
            dst.execute(table.insert(), [dict(r._mapping) for r in src.execute(select(rows.tables[table.name]))])
        for table in ("results", "alias_history", "incidents"):  # as if the rows had been inserted here
            dst.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    source.dispose()


def test_a_store_from_before_migrations_is_upgraded_without_losing_a_row(store_url: str, tmp_path: Path) -> None:
    _v0_on(store_url, tmp_path)
    before = counts(store_url)
    assert before == {"runs": 4, "results": 20, "alias_history": 3, "incidents": 2}
    assert current_revision(store_url) is None

    assert upgrade(store_url) == HEAD
    assert current_revision(store_url) == HEAD
    assert counts(store_url) == before
    assert schema_diff(store_url) == []

    # Read back through the Store, as the fixture's script wrote them.
    store = Store(store_url)
    runs = store.runs()
    assert [(r.kind, r.status) for r in runs] == [
        ("offline", "finished"),
        ("shadow", "finished"),
        ("canary", "finished"),
        ("offline", "running"),
    ]
    assert store.find_resumable("key-3").id == runs[3].id
    assert store.completed_ids(runs[3].id) == {"s0", "s1", "s2", "s3"}  # s4 failed: retried on resume
    rows = store.results(runs[0].id)
    assert [r.scores["exact_match"] for r in rows] == [0.0, 1.0, 0.0, 1.0, 0.0] and rows[0].slices == {"op": "add"}
    assert store.count_finished_runs("arith", kind="canary", params={"model": "arith-lm", "version": "1"}) == 1
    assert [m.version for m in store.alias_history("arith-lm")] == ["1", "2", "1"]
    assert store.production_since("arith-lm", "1").isoformat() == "2025-01-06T09:00:29+00:00"
    (cleared, still_open) = store.incidents("arith-lm")
    assert (cleared.status, cleared.rolled_back_to, cleared.clear_reason) == ("cleared", "1", "fixed the weights")
    assert store.open_incident_for("arith-lm", "1").id == still_open.id
    # And it takes new rows: sequences and constraints work after the upgrade.
    assert store.open_incident(model="arith-lm", version="2", severity="page", summary="", evidence={})[1]
    run = store.create_run(
        kind="offline", resume_key="new", suite="arith", suite_version="v", endpoint="e", served_model="m",
        params={}, n_samples=1,
    )  # fmt: skip
    assert store.get_run(run.id).status == "running"


def test_concurrent_upgrades_migrate_once(store_url: str) -> None:
    barrier, results = threading.Barrier(3), []

    def go() -> None:
        barrier.wait()
        results.append(upgrade(store_url))

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [HEAD] * 3
    with engine_for(store_url).connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]


def test_a_store_from_a_newer_aire_is_refused(store_url: str) -> None:
    upgrade(store_url)
    with engine_for(store_url).begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(AireError, match="revision 9999, which this aire does not know"):
        upgrade(store_url)
