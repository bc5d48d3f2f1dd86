"""The helper process behind one typed interface: bytes in, a `Pending` back at once, a `ReadOutcome` out.

A stand-in for python-calamine answers by the bytes it is given ("ok", "refuse", "fail", "hang"), so every
kind of outcome is reached in a second: read, refused, died (the helper killed), timed out, failed,
cancelled, and read in this process where no helper may run.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import threading
import time

import pytest

from xlsx_assess import sandbox
from xlsx_assess.issues import Refused
from xlsx_assess.sandbox import Cancelled, Died, Failed, Helper, Refusal, TimedOut, Values

READ = ({"表": "visible"}, {"表": [[1.0, "a"]]})


def stand_in(data: bytes):
    if data.startswith(b"ok"):
        return READ
    if data == b"refuse":
        raise Refused("F105")
    if data == b"fail":
        raise ValueError("boom")
    if data == b"hang":
        time.sleep(60)
    raise AssertionError(data)


@pytest.fixture
def helper(monkeypatch):
    """A helper of its own that forks from here, with the stand-in reader."""
    monkeypatch.setattr(sandbox, "_calamine_values", stand_in)
    box = Helper()
    yield box
    box.stop()


def refused(pending) -> tuple[str, dict]:
    with pytest.raises(Refused) as stop:
        pending.result()
    return stop.value.code, stop.value.fields


def test_values_come_back_typed_and_as_the_reader_takes_them(helper):
    pending = helper.submit(b"ok")
    assert pending.outcome() == Values(*READ) and pending.done()
    assert pending.result() == READ
    assert helper.pid is not None


def test_a_refusal_is_the_reason_it_gives(helper):
    pending = helper.submit(b"refuse")
    assert pending.outcome() == Refusal("F105", {})
    assert refused(pending) == ("F105", {})


def test_a_fault_in_the_helper_is_a_failure_of_that_read_only(helper):
    pending = helper.submit(b"fail")
    assert pending.outcome() == Failed("ValueError: boom")
    assert refused(pending)[0] == "F104"
    assert helper.submit(b"ok").result() == READ


def test_a_killed_helper_is_a_death_explained_by_the_guard_if_it_can(helper):
    def too_big() -> None:
        raise Refused("F114", value="评分表", detail="XFD1048576")

    for guard, code in ((None, "F104"), (too_big, "F114")):
        pending = helper.submit(b"hang", guard)
        pid = helper.pid
        os.kill(pid, signal.SIGKILL)
        outcome = pending.outcome()
        assert isinstance(outcome, Died)
        assert outcome.reason == (None if guard is None else Refusal("F114", {"value": "评分表", "detail": "XFD1048576"}))
        assert refused(pending)[0] == code
        assert helper.pid is None                      # gone; the next read starts another
    assert helper.submit(b"ok").result() == READ and helper.pid not in (None, pid)


def test_a_read_that_takes_too_long_times_out_and_the_helper_is_replaced(helper, monkeypatch):
    monkeypatch.setattr(sandbox, "READ_SECONDS", 1)
    pending = helper.submit(b"hang")
    pid = helper.pid
    start = time.monotonic()
    assert pending.outcome() == TimedOut(1)
    assert time.monotonic() - start < 10
    assert refused(pending)[0] == "F104"
    assert helper.submit(b"ok").result() == READ and helper.pid != pid


def test_cancelled_reads_queued_or_in_flight(helper):
    hanging = helper.submit(b"hang")                  # in flight
    queued = helper.submit(b"ok-queued")              # waits behind it
    pid = helper.pid
    queued.cancel()
    assert queued.outcome() == Cancelled() and refused(queued)[0] == "F104"
    assert helper.pid == pid                          # a queued read costs the helper nothing
    hanging.cancel()
    assert hanging.outcome() == Cancelled()
    assert helper.pid is None                         # it had started on it: stopped
    assert helper.submit(b"ok").result() == READ


def test_one_read_in_flight_the_rest_queued_each_kept_for_its_owner(helper):
    reads = [helper.submit(b"ok%d" % k) for k in range(4)]
    assert [r.done() for r in reads] == [False] * 4
    assert reads[2].result() == READ                  # the two before it were collected on the way
    assert [r.done() for r in reads] == [True, True, True, False]
    assert all(r.result() == READ for r in reads)


def test_a_helper_stopped_under_a_read_fails_that_read(helper):
    pending = helper.submit(b"hang")
    helper.stop()
    assert pending.outcome() == Failed("读取程序已停止")


def test_without_processes_the_guard_runs_before_reading_here(monkeypatch):
    monkeypatch.setattr(sandbox, "_calamine_values", stand_in)
    box = Helper(processes=False)
    calls = []
    assert box.submit(b"ok", guard=lambda: calls.append(1)).outcome() == Values(*READ)
    assert calls == [1] and box.pid is None

    def too_big() -> None:
        raise Refused("F114", value="评分表", detail="XFD1048576")

    assert box.submit(b"hang", guard=too_big).outcome() == Refusal("F114", {"value": "评分表", "detail": "XFD1048576"})


def test_a_read_begun_before_a_fork_is_read_in_the_child(helper):
    pending = helper.submit(b"ok")
    parent_helper = helper.pid
    read, write = os.pipe()
    child = os.fork()
    if child == 0:                                    # the child: the parent's helper is not its own
        try:
            os.close(read)
            answer = (helper.pid, pending.result())
            os.write(write, pickle.dumps(answer))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        pid, values = pickle.loads(fh.read())
    os.waitpid(child, 0)
    assert (pid, values) == (None, READ)              # read there, without the parent's helper
    assert helper.pid == parent_helper and pending.result() == READ


def test_the_module_functions_keep_their_shape(monkeypatch):
    monkeypatch.setattr(sandbox, "_SANDBOX", Helper(processes=False))
    monkeypatch.setattr(sandbox, "_calamine_values", stand_in)
    assert sandbox.read_values(b"ok") == READ
    pending = sandbox.begin_read(b"ok", guard=None)
    assert isinstance(pending, sandbox.Pending) and pending.result() == READ
    pending.cancel()                                  # after the result: what it held is let go of
    assert pending.outcome() == Cancelled()
    assert sandbox.helper_pid() is None


def test_the_size_rule_is_one_function():
    sandbox.check_size("评分表", 1000, 1000)         # exactly the limit: held
    with pytest.raises(Refused) as stop:
        sandbox.check_sizes({"说明": (1, 1), "评分表": (1000, 1001)})
    assert (stop.value.code, stop.value.fields["value"]) == ("F114", "评分表")
    assert "ALM1000" in stop.value.fields["detail"]
    assert sandbox.rows_extent([[1], [1, 2, 3], []]) == (3, 3)


def test_a_helper_started_by_a_thread_that_ends_lives_on(helper, monkeypatch):
    """Linux's parent-death signal fires when the forking *thread* ends: the web page checks in pool
    threads that end when idle, and a file being read just then was reported damaged (F104)."""
    def slow(data: bytes):
        if data == b"slow":
            time.sleep(1.0)
            data = b"ok"
        return stand_in(data)

    monkeypatch.setattr(sandbox, "_calamine_values", slow)
    sent = []

    def starter() -> None:                        # starts the helper, hands it a slow read, and ends
        assert helper.submit(b"ok").outcome() == Values(*READ)
        sent.append(helper.submit(b"slow"))

    first = threading.Thread(target=starter)
    first.start()
    first.join()
    assert sent[0].outcome() == Values(*READ)


def test_the_lasting_thread_hands_back_what_went_wrong():
    from xlsx_assess import lifeline

    def fails() -> None:
        raise OSError("no fork here")

    caught = []

    def other() -> None:
        try:
            lifeline.start_lasting(fails)
        except OSError as exc:
            caught.append(str(exc))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert caught == ["no fork here"]


def test_the_helper_holds_none_of_this_process_s_pipes_or_sockets(helper):
    """The helper lives as long as the process: had it kept the copies a fork gives it, a pipe closed here
    would never end for its reader (Playwright's driver waited for ever) nor a connection the page closed."""
    import select

    r, w = os.pipe()
    assert helper.submit(b"ok").outcome() == Values(*READ)     # the helper, forked now, got a copy of both
    os.close(w)
    try:
        assert select.select([r], [], [], 5)[0] == [r], "the helper still holds the pipe open"
        assert os.read(r, 1) == b""
    finally:
        os.close(r)


def _book(sheet: str) -> bytes:
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf)
    wb.add_worksheet(sheet)
    wb.close()
    return buf.getvalue()


def test_threads_reading_through_one_helper_each_get_their_own_file():
    """The page reads through one helper from several threads (its board and a check at once): without
    the helper's lock, 196 of 240 reads came back with another file's sheets."""
    box = Helper()
    books = {n: _book(f"S{n}") for n in range(3)}
    wrong: list = []

    def reader(n: int) -> None:
        for _ in range(20):
            try:
                sheets = list(box.submit(books[n]).result()[0])
            except Exception as exc:               # a read damaged by the other thread: wrong too
                sheets = [repr(exc)]
            if sheets != [f"S{n}"]:
                wrong.append((n, sheets))

    threads = [threading.Thread(target=reader, args=(n,)) for n in books]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        box.stop()
    assert wrong == []


def test_a_read_interrupted_leaves_no_answer_for_the_next(helper, monkeypatch):
    """Ctrl+C caught by a script while a read was in flight: its answer stayed in the pipe, and every later
    read got the one before it."""
    def slow(data: bytes):
        if data == b"slow":
            time.sleep(0.5)
            return {"慢": "visible"}, {"慢": [[1.0]]}
        return stand_in(data)

    monkeypatch.setattr(sandbox, "_calamine_values", slow)
    pending = helper.submit(b"slow")
    conn = helper._conn
    real_poll = conn.poll

    def interrupted(*_):
        conn.poll = real_poll                        # once
        time.sleep(1.0)                              # the answer is in the pipe by now
        raise KeyboardInterrupt

    conn.poll = interrupted                          # Ctrl+C while waiting for it
    with pytest.raises(KeyboardInterrupt):
        pending.outcome()
    assert helper.submit(b"ok").outcome() == Values(*READ)
