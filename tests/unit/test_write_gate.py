"""db/engine.py: the in-process write gate (one writer at a time, urgent ones first) and DEFERRED readers."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from db.engine import WriteGate, make_engine, reader, write_gate


def test_the_gate_lets_one_writer_in_at_a_time_and_urgent_ones_first() -> None:
    gate = WriteGate()
    order: list[str] = []
    inside = 0
    most_inside = 0
    lock = threading.Lock()

    def writer(name: str, urgent: bool) -> None:
        nonlocal inside, most_inside
        with gate.hold(urgent):
            with lock:
                inside += 1
                most_inside = max(most_inside, inside)
                order.append(name)
            time.sleep(0.01)
            with lock:
                inside -= 1

    started = threading.Event()

    def first() -> None:
        with gate.hold():
            started.set()
            time.sleep(0.2)  # meanwhile the others queue up
            order.append("first")

    holder = threading.Thread(target=first)
    holder.start()
    started.wait(5)
    threads = [threading.Thread(target=writer, args=(f"normal{i}", False)) for i in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.02)  # queue in a known order
    urgent = threading.Thread(target=writer, args=("urgent", True))
    urgent.start()
    for t in [holder, *threads, urgent]:
        t.join(5)
    assert most_inside == 1
    assert order == ["first", "urgent", "normal0", "normal1", "normal2"]


def test_an_interrupted_waiter_does_not_keep_the_gate() -> None:
    gate = WriteGate()
    entered = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with gate.hold():
            entered.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    entered.wait(5)

    class Interrupted(BaseException):
        pass

    # a waiter whose lock wait raises (as KeyboardInterrupt would) leaves the queue
    original = threading.Lock

    class Raising:
        def __init__(self) -> None:
            self._lock = original()
            self.calls = 0

        def acquire(self) -> bool:
            self.calls += 1
            if self.calls == 2:  # the park
                raise Interrupted
            return self._lock.acquire()

        def release(self) -> None:
            self._lock.release()

    try:
        threading.Lock = Raising  # type: ignore[misc,assignment]
        with pytest.raises(Interrupted), gate.hold():
            pass
    finally:
        threading.Lock = original  # type: ignore[misc]
    release.set()
    t.join(5)
    done = threading.Event()

    def later() -> None:
        with gate.hold():
            done.set()

    threading.Thread(target=later).start()
    assert done.wait(2), "the gate stayed taken after an interrupted waiter"


def test_sqlite_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    engine = make_engine(url)
    try:
        assert isinstance(write_gate(engine), WriteGate)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with engine.begin() as writer:  # BEGIN IMMEDIATE: holds the write lock
            writer.execute(text("INSERT INTO t VALUES (2)"))
            started = time.perf_counter()
            with reader(engine).connect() as conn:
                assert conn.execute(text("SELECT COUNT(*) FROM t")).scalar() == 1  # its snapshot
            assert time.perf_counter() - started < 1.0
            # a writing transaction from another connection does wait for the lock (and times out here)
            other = sqlite3.connect(tmp_path / "g.db", timeout=0.2, isolation_level=None)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            other.close()
        with reader(engine).connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM t")).scalar() == 2
    finally:
        engine.dispose()


def test_postgresql_engines_have_no_gate() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:5432/test")
    try:
        assert not isinstance(write_gate(engine), WriteGate)
    finally:
        engine.dispose()
