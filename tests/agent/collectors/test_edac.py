"""edac collector: counters, deltas and resets per controller/DIMM, and rasdaemon history."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from novacron.agent import cli
from novacron.agent.collectors._rasdaemon import (
    EventCounts,
    MemoryErrorEvent,
    event_counts,
    parse_event,
)
from novacron.agent.collectors.base import CollectorContext, registry
from novacron.agent.collectors.edac import (
    DimmErrors,
    EdacCollector,
    EdacReadings,
    EdacSettings,
    MemoryController,
    csrow_channels,
    with_deltas,
)
from novacron.agent.config import parse_config
from novacron.agent.sample import to_jsonable
from novacron.protos.runtime.tomlconfig import ConfigError
from tests.fixtures.edac import (
    RASDAEMON_SCHEMA,
    RasMcEvent,
    bump_edac_counters,
    edac_mc_dir,
    reset_edac_counters,
    write_edac_tree,
    write_rasdaemon_db,
)

NOW = 1_700_000_000.0
LOGGER = "novacron.agent.collectors.edac"

# -- pure parts ---------------------------------------------------------------------


def dimm(key: str = "mc0/dimm0", ce: int | None = 0, ue: int | None = 0) -> DimmErrors:
    return DimmErrors(
        key,
        "L",
        "channel 0 slot 0",
        16384,
        "Registered-DDR4",
        "S4ECD4ED",
        ce,
        ue,
        None,
        None,
        False,
    )


def controller(
    ce: int = 0,
    ue: int = 0,
    seconds: int | None = 100,
    name: str = "mc",
    dimms: tuple[DimmErrors, ...] = (),
) -> MemoryController:
    return MemoryController(
        "mc0", name, "dimm", 65536, seconds, ce, ue, 0, 0, None, None, False, dimms
    )


@pytest.mark.parametrize(
    ("before", "after", "ce_delta", "dimm_delta", "reset"),
    [
        # normal growth
        (
            controller(3, dimms=(dimm(ce=3),)),
            controller(5, seconds=160, dimms=(dimm(ce=5),)),
            2,
            2,
            False,
        ),
        # counters went down (driver reload): the delta is the count since the reset
        (
            controller(5, dimms=(dimm(ce=5),)),
            controller(2, seconds=20, dimms=(dimm(ce=2),)),
            2,
            2,
            True,
        ),
        # uptime went down though counters grew: errors since reset, not the difference
        (
            controller(3, dimms=(dimm(ce=3),)),
            controller(5, seconds=10, dimms=(dimm(ce=5),)),
            5,
            5,
            True,
        ),
        # reset with nothing new: zero, flagged
        (
            controller(0, dimms=(dimm(ce=0),)),
            controller(0, seconds=5, dimms=(dimm(ce=0),)),
            0,
            0,
            True,
        ),
        # another driver took over the controller
        (
            controller(3, dimms=(dimm(ce=3),)),
            controller(4, seconds=200, name="other", dimms=(dimm(ce=4),)),
            4,
            4,
            True,
        ),
        # no uptime counter: still detected from the counters
        (
            controller(3, seconds=None, dimms=(dimm(ce=3),)),
            controller(1, seconds=None, dimms=(dimm(ce=1),)),
            1,
            1,
            True,
        ),
    ],
)
def test_with_deltas(
    before: MemoryController, after: MemoryController, ce_delta: int, dimm_delta: int, reset: bool
) -> None:
    result = with_deltas(after, before)
    assert (result.ce_delta, result.ue_delta, result.counter_reset) == (ce_delta, 0, reset)
    assert (result.dimms[0].ce_delta, result.dimms[0].counter_reset) == (dimm_delta, reset)


def test_with_deltas_first_sight_and_new_or_unreadable_dimms() -> None:
    first = controller(3, dimms=(dimm(ce=3),))
    assert with_deltas(first, None) == first  # no previous: deltas stay None
    after = controller(4, seconds=200, dimms=(dimm(ce=None), dimm("mc0/dimm1", ce=1)))
    result = with_deltas(after, first)
    assert result.ce_delta == 1
    assert [(d.ce_delta, d.ue_delta) for d in result.dimms] == [(None, 0), (None, None)]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["ch0_ce_count", "ch0_dimm_label", "ch1_ce_count", "ce_count", "ue_count"], [0, 1]),
        (["ch10_ce_count", "ch2_ce_count", "chX_ce_count"], [2, 10]),
        (["ce_count", "size_mb"], []),
    ],
)
def test_csrow_channels(names: list[str], expected: list[int]) -> None:
    assert csrow_channels(names) == expected


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([("Corrected", 3, 4)], EventCounts(3, 4, 0, 0, 0)),
        ([("Corrected", 2, 2), ("Uncorrected", 1, 1), ("Fatal", 1, 1)], EventCounts(2, 2, 2, 2, 0)),
        ([("Info", 5, 5), (None, 1, None), ("weird", 2, "x")], EventCounts(0, 0, 0, 0, 8)),
        ([("corrected ", 1, None)], EventCounts(1, 0, 0, 0, 0)),
        ([], EventCounts(0, 0, 0, 0, 0)),
    ],
)
def test_event_counts(rows: list[tuple[object, object, object]], expected: EventCounts) -> None:
    assert event_counts(rows) == expected


def test_parse_event_tolerates_nulls_and_odd_types() -> None:
    row = (
        7,
        "2024-03-01 10:00:00 +0000",
        2,
        "Corrected",
        b"memory read error",
        "DIMM_A1",
        0,
        0,
        1,
        -1,
        0x1000,
    )
    assert parse_event(row) == MemoryErrorEvent(
        7,
        "2024-03-01 10:00:00 +0000",
        "Corrected",
        2,
        "memory read error",
        "DIMM_A1",
        0,
        0,
        1,
        -1,
        4096,
    )
    sparse = parse_event((8, None, "x", None, "", "  ", None, None, None, None, None))
    assert (sparse.err_count, sparse.err_msg, sparse.label, sparse.address) == (
        None,
        None,
        None,
        None,
    )


# -- the collector against sysfs trees ----------------------------------------------


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    write_edac_tree(root, controllers=2, layout="dimm")
    return root


def edac(root: Path, db: Path | None = None, **kwargs: object) -> EdacCollector:
    settings = EdacSettings(rasdaemon_db=db or root.parent / "no-such.db", **kwargs)  # type: ignore[arg-type]
    return EdacCollector(CollectorContext(sysfs_root=root), settings)


def dimms(readings: EdacReadings) -> dict[str, DimmErrors]:
    return {d.key: d for mc in readings.controllers for d in mc.dimms}


def test_fixture_tree_is_shaped_like_real_sysfs(sysfs: Path) -> None:
    mc0 = edac_mc_dir(sysfs, 0)
    assert (mc0 / "ce_count").read_text() == "3\n"
    assert (mc0 / "dimm1" / "dimm_label").read_text() == "CPU_SrcID#0_MC#0_Chan#0_DIMM#1\n"
    assert (mc0 / "dimm1" / "dimm_location").read_text() == "channel 0 slot 1 \n"
    assert (mc0 / "device").is_symlink()


def test_dimm_layout_first_collection(sysfs: Path) -> None:
    readings = edac(sysfs).collect(NOW)
    assert [mc.key for mc in readings.controllers] == ["mc0", "mc1"]
    mc0 = readings.controllers[0]
    assert (mc0.mc_name, mc0.layout, mc0.size_mib, mc0.seconds_since_reset) == (
        "Skylake Socket#0 IMC#0",
        "dimm",
        65536,
        86400,
    )
    assert (mc0.ce_count, mc0.ue_count, mc0.ce_noinfo_count, mc0.ue_noinfo_count) == (3, 0, 0, 0)
    assert (mc0.ce_delta, mc0.ue_delta, mc0.counter_reset) == (None, None, False)
    assert dimms(readings)["mc0/dimm1"] == DimmErrors(
        key="mc0/dimm1",
        label="CPU_SrcID#0_MC#0_Chan#0_DIMM#1",
        location="channel 0 slot 1",
        size_mib=16384,
        mem_type="Registered-DDR4",
        edac_mode="S4ECD4ED",
        ce_count=3,
        ue_count=0,
        ce_delta=None,
        ue_delta=None,
        counter_reset=False,
    )
    assert len(dimms(readings)) == 8
    assert (readings.ce_count_total, readings.ue_count_total) == (3, 0)
    assert (readings.ce_delta_total, readings.ue_delta_total) == (None, None)
    assert readings.rasdaemon is None and readings.unavailable == ()


def test_deltas_between_collections(sysfs: Path) -> None:
    collector = edac(sysfs)
    collector.collect(NOW)
    bump_edac_counters(sysfs, mc=0, dimm=1, ce=2)
    bump_edac_counters(sysfs, mc=1, dimm=3, ce=1, ue=1)
    readings = collector.collect(NOW + 60)
    mc0, mc1 = readings.controllers
    assert (mc0.ce_delta, mc0.ue_delta, mc0.counter_reset) == (2, 0, False)
    assert (mc1.ce_delta, mc1.ue_delta) == (1, 1)
    by_key = dimms(readings)
    assert (by_key["mc0/dimm1"].ce_count, by_key["mc0/dimm1"].ce_delta) == (5, 2)
    assert (by_key["mc1/dimm3"].ue_count, by_key["mc1/dimm3"].ue_delta) == (1, 1)
    assert by_key["mc0/dimm0"].ce_delta == 0
    assert (readings.ce_delta_total, readings.ue_delta_total) == (3, 1)
    # the same counts again are zero new errors
    again = collector.collect(NOW + 120)
    assert (again.ce_delta_total, again.ue_delta_total) == (0, 0)


def test_counter_reset_between_collections(sysfs: Path) -> None:
    collector = edac(sysfs)
    collector.collect(NOW)
    reset_edac_counters(sysfs, mc=0)  # driver reload: all counters restart
    bump_edac_counters(sysfs, mc=0, dimm=2, ce=1)
    readings = collector.collect(NOW + 60)
    mc0, mc1 = readings.controllers
    assert (mc0.ce_count, mc0.ce_delta, mc0.counter_reset) == (1, 1, True)
    assert (mc1.ce_delta, mc1.counter_reset) == (0, False)
    by_key = dimms(readings)
    assert (by_key["mc0/dimm1"].ce_delta, by_key["mc0/dimm1"].counter_reset) == (0, True)
    assert by_key["mc0/dimm2"].ce_delta == 1
    assert all(d.ce_delta is not None and d.ce_delta >= 0 for d in by_key.values())
    # the next collection is an ordinary one again
    bump_edac_counters(sysfs, mc=0, dimm=2, ce=1)
    after = collector.collect(NOW + 120)
    assert (after.controllers[0].ce_delta, after.controllers[0].counter_reset) == (1, False)


def test_reset_with_more_errors_than_before_uses_seconds_since_reset(sysfs: Path) -> None:
    collector = edac(sysfs)
    collector.collect(NOW)  # mc0 ce_count 3
    reset_edac_counters(sysfs, mc=0)
    bump_edac_counters(sysfs, mc=0, dimm=1, ce=5)  # 5 > 3: only the uptime shows the reset
    mc0 = collector.collect(NOW + 60).controllers[0]
    assert (mc0.ce_count, mc0.ce_delta, mc0.counter_reset) == (5, 5, True)


def test_csrow_layout(tmp_path: Path) -> None:
    root = tmp_path / "sys"
    write_edac_tree(
        root, controllers=1, layout="csrow", ce_counts={(0, 1): 4}, ue_counts={(0, 3): 1}
    )
    collector = edac(root)
    readings = collector.collect(NOW)
    [mc0] = readings.controllers
    assert (mc0.mc_name, mc0.layout, mc0.ce_count, mc0.ue_count) == ("I5000", "csrow", 4, 1)
    assert list(dimms(readings)) == [
        "mc0/csrow0/ch0",
        "mc0/csrow0/ch1",
        "mc0/csrow1/ch0",
        "mc0/csrow1/ch1",
    ]
    ch1 = dimms(readings)["mc0/csrow0/ch1"]
    assert (ch1.label, ch1.location, ch1.ce_count, ch1.ue_count) == (
        "mc#0csrow#0channel#1",
        "csrow0 channel 1",
        4,
        None,
    )
    assert (ch1.mem_type, ch1.edac_mode, ch1.size_mib) == ("Registered-DDR2", "S4ECD4ED", None)

    bump_edac_counters(root, mc=0, dimm=2, ce=3)
    second = collector.collect(NOW + 60)
    assert dimms(second)["mc0/csrow1/ch0"].ce_delta == 3
    assert second.controllers[0].ce_delta == 3

    reset_edac_counters(root)
    third = collector.collect(NOW + 120)
    assert (third.controllers[0].ce_delta, third.controllers[0].counter_reset) == (0, True)
    assert dimms(third)["mc0/csrow1/ch0"].counter_reset is True


def test_dimm_directories_win_over_legacy_csrows(sysfs: Path) -> None:
    legacy = edac_mc_dir(sysfs, 0) / "csrow0"
    legacy.mkdir()
    (legacy / "ch0_ce_count").write_text("3\n")
    readings = edac(sysfs).collect(NOW)
    assert readings.controllers[0].layout == "dimm"
    assert "mc0/csrow0/ch0" not in dimms(readings)


def test_rank_layout(sysfs: Path) -> None:
    mc0 = edac_mc_dir(sysfs, 0)
    for d in range(4):
        (mc0 / f"dimm{d}").rename(mc0 / f"rank{d}")
    readings = edac(sysfs).collect(NOW)
    assert readings.controllers[0].layout == "rank"
    assert dimms(readings)["mc0/rank1"].ce_count == 3


def test_controller_without_dimm_directories(sysfs: Path) -> None:
    for d in range(4):
        shutil.rmtree(edac_mc_dir(sysfs, 1) / f"dimm{d}")
    mc1 = edac(sysfs).collect(NOW).controllers[1]
    assert (mc1.layout, mc1.dimms, mc1.ce_count) == (None, (), 0)


def test_no_edac_is_no_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        readings = edac(tmp_path / "sys").collect(NOW)
    assert readings == EdacReadings((), 0, 0, None, None, None, ())
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    assert "no EDAC memory controllers" in [r.getMessage() for r in caplog.records]


def test_vanished_controller_is_unavailable(sysfs: Path) -> None:
    collector = edac(sysfs)
    collector.collect(NOW)
    saved = sysfs.parent / "mc1-saved"
    shutil.move(edac_mc_dir(sysfs, 1), saved)
    readings = collector.collect(NOW + 60)
    assert [mc.key for mc in readings.controllers] == ["mc0"]
    assert [(u.device, u.reason, u.unavailable_since) for u in readings.unavailable] == [
        ("mc1", "no longer discovered", NOW + 60)
    ]
    # the whole EDAC directory going away (module unloaded) makes every controller unavailable
    shutil.rmtree(edac_mc_dir(sysfs))
    assert [u.device for u in collector.collect(NOW + 120).unavailable] == ["mc0", "mc1"]
    # the driver comes back with fresh counters: data again, and a reset
    write_edac_tree(sysfs, controllers=2, ce_counts={}, seconds_since_reset=3)
    back = collector.collect(NOW + 180)
    assert back.unavailable == ()
    assert [(mc.ce_delta, mc.counter_reset) for mc in back.controllers] == [(0, True), (0, True)]


def test_eio_on_a_controller_counter(sysfs: Path) -> None:
    def read(path: Path) -> bytes:
        if path.name == "ce_count" and path.parent.name == "mc0":
            raise OSError(errno.EIO, "Input/output error")
        return path.read_bytes()

    collector = EdacCollector(
        CollectorContext(sysfs_root=sysfs), EdacSettings(rasdaemon_db=sysfs / "none.db"), read=read
    )
    readings = collector.collect(NOW)
    assert [mc.key for mc in readings.controllers] == ["mc1"]
    assert [(u.device, u.reason) for u in readings.unavailable] == [
        ("mc0", "ce_count: EIO: Input/output error")
    ]


def test_malformed_dimm_counter_is_logged_once_and_skipped(
    sysfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (edac_mc_dir(sysfs, 0) / "dimm1" / "dimm_ce_count").write_text("abc\n")
    (edac_mc_dir(sysfs, 1) / "ce_count").write_text("")
    collector = edac(sysfs)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        first = collector.collect(NOW)
        second = collector.collect(NOW + 60)
    for readings in (first, second):
        assert dimms(readings)["mc0/dimm1"].ce_count is None
        assert dimms(readings)["mc0/dimm2"].ce_count == 0
        assert [mc.key for mc in readings.controllers] == ["mc0"]
        assert readings.unavailable[0].device == "mc1"
        assert readings.unavailable[0].reason == "ce_count: malformed value ''"
    malformed = [
        getattr(r, "path", "")
        for r in caplog.records
        if r.getMessage() == "malformed sysfs value, skipped"
    ]
    assert sorted(Path(p).name for p in malformed) == ["ce_count", "dimm_ce_count"]


# -- rasdaemon ------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ras-mc_event.db"
    write_rasdaemon_db(path, mce_records=2)
    return path


def test_fixture_db_has_rasdaemons_schema(db: Path) -> None:
    con = sqlite3.connect(db)
    try:
        columns = [row[1] for row in con.execute("PRAGMA table_info(mc_event)")]
    finally:
        con.close()
    assert columns == [
        "id", "timestamp", "err_count", "err_type", "err_msg", "label", "mc",
        "top_layer", "middle_layer", "lower_layer", "address", "grain", "syndrome", "driver_detail",
    ]  # fmt: skip
    assert set(RASDAEMON_SCHEMA) == {"mc_event", "mce_record", "aer_event"}


def test_rasdaemon_new_events_are_counted_once(sysfs: Path, db: Path) -> None:
    collector = edac(sysfs, db)
    first = collector.collect(NOW).rasdaemon
    assert first is not None
    assert first.total == EventCounts(3, 4, 0, 0, 0)
    assert first.new is None  # the first read is the baseline
    assert (first.last_event_id, first.db_reset) == (3, False)
    assert (first.mce_record_rows, first.aer_event_rows) == (2, 0)
    assert [e.id for e in first.latest_events] == [3, 2, 1]
    assert first.latest_events[0].label == "CPU_SrcID#0_MC#0_Chan#0_DIMM#1"
    assert (first.latest_events[0].err_type, first.latest_events[0].err_count) == ("Corrected", 2)

    write_rasdaemon_db(
        db,
        [
            RasMcEvent(timestamp="2024-03-01 11:00:00 +0000", err_count=3),
            RasMcEvent(err_type="Uncorrected", label="CPU_SrcID#0_MC#1_Chan#1_DIMM#0", mc=1),
        ],
    )
    second = collector.collect(NOW + 60).rasdaemon
    assert second is not None
    assert second.new == EventCounts(1, 3, 1, 1, 0)
    assert second.total == EventCounts(4, 7, 1, 1, 0)
    assert second.latest_events[0].label == "CPU_SrcID#0_MC#1_Chan#1_DIMM#0"

    third = collector.collect(NOW + 120).rasdaemon
    assert third is not None and third.new == EventCounts(0, 0, 0, 0, 0)


def test_rasdaemon_latest_events_setting_and_missing_tables(sysfs: Path, tmp_path: Path) -> None:
    path = tmp_path / "only-mc.db"
    write_rasdaemon_db(path, tables=("mc_event",))
    ras = edac(sysfs, path, rasdaemon_latest_events=1).collect(NOW).rasdaemon
    assert ras is not None
    assert [e.id for e in ras.latest_events] == [3]
    assert (ras.mce_record_rows, ras.aer_event_rows) == (None, None)


def test_rasdaemon_recreated_database_counts_all_as_new(sysfs: Path, db: Path) -> None:
    collector = edac(sysfs, db)
    collector.collect(NOW)
    db.unlink()
    write_rasdaemon_db(db, [RasMcEvent(err_type="Fatal")])
    ras = collector.collect(NOW + 60).rasdaemon
    assert ras is not None
    assert ras.db_reset is True
    assert ras.new == EventCounts(0, 0, 1, 1, 0)


def test_rasdaemon_is_opened_read_only(sysfs: Path, db: Path) -> None:
    before = db.read_bytes()
    edac(sysfs, db).collect(NOW)
    assert db.read_bytes() == before
    assert sorted(p.name for p in db.parent.iterdir() if p.name.startswith(db.name)) == [db.name]


def test_corrupt_rasdaemon_db_is_logged_once_and_skipped(
    sysfs: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"this is not an SQLite database\n" * 100)
    collector = edac(sysfs, bad)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        first = collector.collect(NOW)
        second = collector.collect(NOW + 60)
    assert first.rasdaemon is None and second.rasdaemon is None
    assert first.ce_count_total == 3  # sysfs data is unaffected
    [record] = caplog.records
    assert record.getMessage() == "rasdaemon database unreadable, skipped"
    assert "DatabaseError" in record.error  # type: ignore[attr-defined]


def test_db_without_mc_event_is_skipped(
    sysfs: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "empty.db"
    write_rasdaemon_db(path, [], tables=("aer_event",))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert edac(sysfs, path).collect(NOW).rasdaemon is None
    assert [r.getMessage() for r in caplog.records] == [
        "rasdaemon database has no mc_event table, skipped"
    ]


@pytest.fixture
def locked(db: Path) -> Iterator[sqlite3.Connection]:
    """rasdaemon in the middle of a write: an exclusive lock on the database."""
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    yield con
    con.close()


def test_locked_rasdaemon_db_is_skipped_after_the_timeout(
    sysfs: Path, db: Path, locked: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    collector = edac(sysfs, db, rasdaemon_timeout_seconds=0.05)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert collector.collect(NOW).rasdaemon is None
        assert collector.collect(NOW + 60).rasdaemon is None
        locked.execute("ROLLBACK")
        ras = collector.collect(NOW + 120).rasdaemon
    assert ras is not None and ras.total.corrected_events == 3
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "rasdaemon database unreadable, skipped",
        "rasdaemon database readable again",
    ]
    assert "locked" in caplog.records[0].error  # type: ignore[attr-defined]


def test_settings_validation_and_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rasdaemon_timeout_seconds"):
        EdacSettings(rasdaemon_timeout_seconds=0)
    with pytest.raises(ValueError, match="rasdaemon_latest_events"):
        EdacSettings(rasdaemon_latest_events=-1)
    config = parse_config(
        {"collectors": {"edac": {"rasdaemon_db": str(tmp_path / "r.db")}}}, "agent.toml"
    )
    assert config.collectors["edac"] == EdacSettings(rasdaemon_db=tmp_path / "r.db")
    with pytest.raises(ConfigError, match=r"collectors\.edac\.rasdaemon_timeout_seconds"):
        parse_config({"collectors": {"edac": {"rasdaemon_timeout_seconds": -1}}}, "agent.toml")


def test_registered_and_summarized(sysfs: Path, db: Path) -> None:
    assert registry()["edac"].factory is EdacCollector
    collector = edac(sysfs, db)
    collector.collect(NOW)
    bump_edac_counters(sysfs, mc=0, dimm=1, ce=2)
    readings = collector.collect(NOW + 60)
    lines = EdacCollector.summarize(readings)
    assert lines[0] == "mc0 (Skylake Socket#0 IMC#0 65536 MiB): CE 5 (+2) UE 0 (+0)"
    assert lines[1] == "  mc0/dimm1 CPU_SrcID#0_MC#0_Chan#0_DIMM#1: CE 5 (+2) UE 0 (+0)"
    assert lines[-1].startswith("rasdaemon: 3 CE / 0 UE events, new CE 0 UE 0, latest Corrected")
    assert EdacCollector.summarize(EdacReadings((), 0, 0, None, None, None, ())) == [
        "no EDAC memory controllers"
    ]
    data = json.loads(json.dumps(to_jsonable(readings)))
    assert data["controllers"][0]["dimms"][1]["ce_delta"] == 2
    assert data["rasdaemon"]["total"]["corrected_errors"] == 4


def test_cli_end_to_end(
    sysfs: Path, db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI replaces the root logger's handlers; keep the test session's.
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    config = sysfs.parent / "agent.toml"
    config.write_text(f'[collectors.edac]\nrasdaemon_db = "{db}"\n')
    args = [
        "collect",
        "--once",
        "--collectors",
        "edac",
        "--sysfs-root",
        str(sysfs),
        "--config",
        str(config),
    ]
    assert cli.main([*args, "--json", "--log-level", "error"]) == 0
    report = json.loads(capsys.readouterr().out)["edac"]
    assert report["ok"] is True
    assert report["data"]["ce_count_total"] == 3
    assert report["data"]["rasdaemon"]["latest_events"][0]["id"] == 3
    assert cli.main([*args, "--log-level", "error"]) == 0
    assert "mc0/dimm1 CPU_SrcID#0_MC#0_Chan#0_DIMM#1: CE 3 UE 0" in capsys.readouterr().out


def test_readings_are_frozen(sysfs: Path) -> None:
    readings = edac(sysfs).collect(NOW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        readings.controllers[0].ce_count = 1  # type: ignore[misc]
