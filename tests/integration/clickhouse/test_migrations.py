"""Migrations on the real server: apply, re-run, roll back, run concurrently, fail cleanly."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from yoyo import get_backend, read_migrations

from ponix_clickhouse import (
    ClickHouseAuthError,
    ClickHouseBackend,
    ClickHouseUnavailableError,
    MigrationError,
    MigrationLockedError,
    envelope_layout,
    migrate,
)
from ponix_clickhouse.migrate import database_uri
from ponix_config import ClickHouseSettings

from .conftest import MakeSettings, Query

pytestmark = pytest.mark.integration

ENVELOPES = "0001_create_processed_envelopes"
REPO_MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


BackendFor = Callable[..., ClickHouseBackend]


@pytest.fixture
def backend_for() -> Iterator[BackendFor]:
    """``backend_for(settings, lease=120)``: a connected backend, closed after the test."""
    backends: list[ClickHouseBackend] = []
    guard = threading.Lock()

    def make(settings: ClickHouseSettings, *, lease: int = 120) -> ClickHouseBackend:
        backend = ClickHouseBackend(database_uri(settings, lock_lease=lease), "_yoyo_migration")
        with guard:
            backends.append(backend)
        backend.init_database()
        backend.lock_poll_interval = 0.05
        return backend

    yield make
    for backend in backends:
        backend.connection.close()


def test_apply_creates_the_table_and_view_chosen_for_the_server_version(
    make_settings: MakeSettings, query: Query, clickhouse_db: str
) -> None:
    report = migrate(make_settings())
    assert report.applied == (ENVELOPES,)
    assert report.pending == ()
    columns = query(
        "SELECT name, type FROM system.columns WHERE database = %(db)s "
        "AND table = 'processed_envelopes'",  # table order (18.16 has no 'position')
        {"db": clickhouse_db},
    )
    layout = envelope_layout(report.server_version)
    assert columns[:6] == list(zip(layout.columns, layout.types, strict=True))
    (engine,) = query(
        "SELECT engine, sorting_key, partition_key FROM system.tables "
        "WHERE database = %(db)s AND name = 'processed_envelopes'",
        {"db": clickhouse_db},
    )
    assert engine[0] == "ReplacingMergeTree"
    assert engine[1].replace(" ", "") == "organization_id,occurred_at,end_device_id,id"
    assert "toYYYYMM(occurred_at)" in engine[2]
    views = query(
        "SELECT name FROM system.tables WHERE database = %(db)s AND engine = 'View'",
        {"db": clickhouse_db},
    )
    assert views == [("processed_envelopes_exact",)]


def test_the_configured_table_name_is_used(
    make_settings: MakeSettings, query: Query, clickhouse_db: str
) -> None:
    migrate(make_settings(table="envelopes_b"))
    tables = {
        row[0]
        for row in query(
            "SELECT name FROM system.tables WHERE database = %(db)s", {"db": clickhouse_db}
        )
    }
    assert {"envelopes_b", "envelopes_b_exact"} <= tables


def test_rerun_is_a_no_op_and_keeps_the_data(
    make_settings: MakeSettings, query: Query, clickhouse_db: str
) -> None:
    settings = make_settings()
    migrate(settings)
    query(
        f"INSERT INTO {clickhouse_db}.processed_envelopes (id, organization_id, end_device_id, "
        "occurred_at, processed_at, data) VALUES",
        [("e1", "o", "d", 1_700_000_000, 1_700_000_000, "{}")],
    )
    again = migrate(settings)
    assert again.applied == ()
    assert again.already_applied == (ENVELOPES,)
    # Even with yoyo's bookkeeping gone, re-applying is harmless (IF NOT EXISTS everywhere).
    query(f"DROP TABLE {clickhouse_db}._yoyo_migration")
    rebuilt = migrate(settings)
    assert rebuilt.applied == (ENVELOPES,)
    assert query(f"SELECT count() FROM {clickhouse_db}.processed_envelopes") == [(1,)]


def test_rollback_drops_the_table_and_unmarks_the_migration(
    make_settings: MakeSettings, query: Query, clickhouse_db: str
) -> None:
    settings = make_settings()
    migrate(settings)
    report = migrate(settings, rollback=True)
    assert report.rolled_back == (ENVELOPES,)
    assert report.pending == (ENVELOPES,)
    tables = [row[0] for row in query(f"SHOW TABLES FROM {clickhouse_db}")]
    assert "processed_envelopes" not in tables
    assert "processed_envelopes_exact" not in tables
    assert migrate(settings, list_only=True).pending == (ENVELOPES,)
    assert migrate(settings).applied == (ENVELOPES,)
    assert migrate(settings, rollback=True, list_only=True).rolled_back == ()


def test_the_database_is_created_when_missing(
    make_settings: MakeSettings, query: Query, clickhouse_db: str
) -> None:
    fresh = f"{clickhouse_db}_fresh"
    try:
        report = migrate(make_settings(database=fresh))
        assert report.applied == (ENVELOPES,)
        assert query(f"EXISTS TABLE {fresh}.processed_envelopes") == [(1,)]
    finally:
        query(f"DROP DATABASE IF EXISTS {fresh}")


def test_concurrent_migrators_apply_each_migration_once(
    make_settings: MakeSettings, query: Query, clickhouse_db: str
) -> None:
    settings = make_settings()
    start = threading.Barrier(4)

    def run(_: int) -> tuple[str, ...]:
        start.wait(timeout=10)
        return migrate(settings, lock_timeout=30).applied

    with ThreadPoolExecutor(4) as pool:
        applied = list(pool.map(run, range(4)))
    assert sorted(applied) == [(), (), (), (ENVELOPES,)]
    marks = query(f"SELECT count() FROM {clickhouse_db}._yoyo_migration WHERE applied = 1")
    assert marks == [(1,)]
    applies = query(f"SELECT count() FROM {clickhouse_db}._yoyo_log WHERE operation = 'apply'")
    assert applies == [(1,)]


def test_the_lock_admits_one_holder_at_a_time(
    make_settings: MakeSettings, backend_for: BackendFor
) -> None:
    settings = make_settings()
    backend_for(settings)  # creates the lock table before the race
    guard = threading.Lock()
    inside: list[int] = []
    overlaps: list[int] = []
    start = threading.Barrier(4)

    def contend(worker: int) -> None:
        backend = backend_for(settings)
        start.wait(timeout=10)
        for _ in range(3):
            with backend.lock(timeout=30):
                with guard:
                    inside.append(worker)
                    if len(inside) > 1:
                        overlaps.append(worker)
                # Real work inside the critical section. (A contender's claim may show up
                # here for the instant before it reads it back and withdraws.)
                assert backend.lock_holders()
                with guard:
                    inside.remove(worker)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(contend, range(4)))
    assert overlaps == []
    assert backend_for(settings).lock_holders() == []


def test_a_held_lock_times_out_with_the_holder_named(
    make_settings: MakeSettings, backend_for: BackendFor
) -> None:
    settings = make_settings()
    holder = backend_for(settings)
    with holder.lock(timeout=5), pytest.raises(MigrationLockedError) as locked:
        migrate(settings, lock_timeout=0.3)
    assert "pid" in str(locked.value)
    assert locked.value.code == "clickhouse.migration_locked"
    assert migrate(settings, lock_timeout=5).applied == (ENVELOPES,)


def test_a_crashed_holder_is_released_by_break_lock_or_its_lease(
    make_settings: MakeSettings, backend_for: BackendFor
) -> None:
    settings = make_settings()
    crashed = backend_for(settings, lease=1)
    dead = crashed._acquire(5)  # never released: the process "died"
    other = backend_for(settings)
    assert [h.token for h in other.lock_holders()] == [dead]
    # The 1 s lease (server clock, whole seconds) runs out within about 2 s.
    with other.lock(timeout=5):
        assert dead not in [h.token for h in other.lock_holders()]
    crashed._acquire(5)
    other.break_lock()
    assert other.lock_holders() == []


def test_a_failing_migration_undoes_its_done_steps_and_stays_pending(
    make_settings: MakeSettings, query: Query, clickhouse_db: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_broken.py").write_text(
        "from yoyo import step\n"
        "step('CREATE TABLE IF NOT EXISTS half_done (a UInt8) ENGINE = Memory',\n"
        "     'DROP TABLE IF EXISTS half_done')\n"
        "step('CREATE TABLE nope (')\n"
    )
    settings = make_settings()
    with pytest.raises(MigrationError) as failed:
        migrate(settings, source=tmp_path)
    assert "0001_broken" in str(failed.value)
    assert "Code 62" in str(failed.value)  # the server's syntax error, one line
    assert "\n" not in str(failed.value)
    assert query(f"EXISTS TABLE {clickhouse_db}.half_done") == [(0,)]
    assert migrate(settings, source=tmp_path, list_only=True).pending == ("0001_broken",)
    # CLICKHOUSE_MIGRATIONS_DIR (the settings field) points migrate() at the same directory.
    configured = make_settings(migrations_dir=tmp_path)
    assert migrate(configured, list_only=True).pending == ("0001_broken",)


def test_an_unreachable_server_is_reported_without_credentials(clickhouse_db: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = ClickHouseSettings(
        url=f"clickhouse://writer:s3cret@127.0.0.1:{port}", database=clickhouse_db
    )
    with pytest.raises(ClickHouseUnavailableError) as down:
        migrate(settings)
    assert f"127.0.0.1:{port}" in str(down.value)
    assert "s3cret" not in str(down.value)


def test_a_wrong_password_is_an_auth_error(
    make_settings: MakeSettings, clickhouse_url: str
) -> None:
    settings = make_settings(user="default", password="definitely-wrong")
    with pytest.raises(ClickHouseAuthError) as refused:
        migrate(settings)
    assert "definitely-wrong" not in str(refused.value)


def test_yoyo_finds_the_backend_by_url_scheme(
    clickhouse_url: str, clickhouse_db: str, query: Query
) -> None:
    backend = get_backend(f"{clickhouse_url.rstrip('/')}/{clickhouse_db}?table=via_yoyo")
    try:
        migrations = read_migrations(str(REPO_MIGRATIONS))
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations))
        with backend.lock():
            assert len(backend.to_apply(migrations)) == 0
        assert query(f"EXISTS TABLE {clickhouse_db}.via_yoyo") == [(1,)]
    finally:
        backend.connection.close()


def test_inline_insert_values_are_refused_instead_of_hanging(
    make_settings: MakeSettings, backend_for: BackendFor
) -> None:
    backend = backend_for(make_settings())
    with pytest.raises(backend.DatabaseError, match="inline INSERT"):
        backend.connection.execute("INSERT INTO x (a) VALUES (1)")
