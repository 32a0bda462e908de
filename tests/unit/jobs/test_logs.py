import asyncio
import os

from services.jobs.backends.ray.tail import TICK_BYTES, LogTail
from services.jobs.logs import CUT, MARK_BYTES, TRUNCATED, JobLog


def tail(logs, positions, workers=11, max_line_bytes=1000):
    return LogTail(logs, positions, workers=workers, max_line_bytes=max_line_bytes, below=logs.parent)


def test_tail_prefixes_complete_lines_and_resumes(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "worker-0.log").write_text("a\nb\npart")
    (logs / "worker-1.log").write_text("x\r50%\rdone\n")
    (logs / "worker-10.log").write_text("ten\n")
    (logs / "launcher.log").write_text("placed\n")
    positions = tmp_path / "positions.json"
    first = tail(logs, positions).read()
    assert first == [
        "[launcher] placed",
        "[worker-0] a",
        "[worker-0] b",
        "[worker-1] x\r50%\rdone",
        "[worker-10] ten",
    ]
    with (logs / "worker-0.log").open("a") as f:
        f.write("ial\nc\n")
    assert tail(logs, positions).read() == ["[worker-0] partial", "[worker-0] c"]  # a new tail resumes
    (logs / "worker-1.log").open("a").write("last")
    assert tail(logs, positions).read() == []
    assert tail(logs, positions).read(final=True) == ["[worker-1] last"]


def test_tail_reads_only_its_workers_files_and_says_once_what_it_skips(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "worker-0.log").write_text("fine\n")
    (logs / "worker-1.log").mkdir()
    os.mkfifo(logs / "worker-2.log")
    (logs / "worker-3.log").symlink_to("/dev/zero")
    (logs / "worker-4.log").write_text("not a worker of this job\n")
    positions = tmp_path / "positions.json"
    reader = tail(logs, positions, workers=4)
    lines = reader.read()
    assert lines[0] == "[worker-0] fine"
    assert lines[1:] == [
        "[lavahub] logs/worker-1.log is not read: worker-1.log is a directory, not a regular file",
        "[lavahub] logs/worker-2.log is not read: worker-2.log is a FIFO, not a regular file",
        "[lavahub] logs/worker-3.log is not read: worker-3.log is a symbolic link; links are not followed",
    ]
    assert reader.read() == [] and reader.read(final=True) == []
    assert tail(logs, positions, workers=4).read() == [], "said once, across restarts too"


def test_a_fragment_is_kept_not_reread_and_a_long_line_is_handed_over_at_the_cap(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    out = logs / "worker-0.log"
    out.write_bytes(b"progress")
    reader = tail(logs, tmp_path / "positions.json", workers=1, max_line_bytes=300)
    assert reader.read() == []
    out.open("ab").write(b" 50%")
    assert reader.read() == []
    assert reader._files["worker-0.log"].position == len(b"progress 50%"), "read once, kept as a fragment"
    out.open("ab").write(b" done\n" + b"y" * 1000)
    lines = reader.read()
    assert lines == ["[worker-0] progress 50% done", "[worker-0] " + "y" * 301]
    out.open("ab").write(b"y" * 5000 + b"\nnext\n")
    assert reader.read() == ["[worker-0] next"], "the rest of the long line is skipped"


def test_tail_reads_a_flood_a_bounded_chunk_at_a_time(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    line = b"x" * 999 + b"\n"
    (logs / "worker-0.log").write_bytes(line * (3 * TICK_BYTES // 1000))
    reader = tail(logs, tmp_path / "positions.json", workers=1)
    first = reader.read()
    assert len(first) == TICK_BYTES // 1000, "one chunk of the file, not all of it"
    assert len(first) + len(reader.read()) + len(reader.read()) + len(reader.read()) == 3 * TICK_BYTES // 1000


def test_job_log_persists_counts_lines_and_wakes_followers(tmp_path):
    async def scenario():
        log = JobLog(tmp_path / "job" / "output.log")
        waiter = asyncio.ensure_future(log.wait(0, timeout=5))
        await asyncio.sleep(0.01)
        log.append(["[worker-0] one", "[worker-1] a\rb"])
        await asyncio.wait_for(waiter, 1)
        assert log.read(1) == ["[worker-1] a\rb"]
        log.finish()
        await asyncio.wait_for(log.wait(2, timeout=5), 1)  # complete: returns at once

    asyncio.run(scenario())
    reopened = JobLog(tmp_path / "job" / "output.log")
    assert len(reopened) == 2 and reopened.tail("[worker-1] ", 5) == ["[worker-1] a\rb"]


def test_job_log_reads_any_line_from_the_file_by_its_marks(tmp_path):
    path = tmp_path / "output.log"
    log = JobLog(path)
    lines = [f"[worker-{i % 3}] line {i} " + "z" * (i % 97) for i in range(20_000)]
    for start in range(0, len(lines), 777):
        log.append(lines[start : start + 777])
    assert path.stat().st_size > 10 * MARK_BYTES and len(log._marks) > 10, "a few marks, not every line"
    for since in (0, 1, 776, 777, 5000, 12_345, 19_999):
        assert log.read(since, limit=10_000)[:3] == lines[since : since + 3], since
    assert log.read(20_000) == [] and log.read(-5, limit=100)[0] == lines[0]
    everything, seen = [], 0
    while chunk := log.read(seen, limit=64 * 2**10):
        everything += chunk
        seen += len(chunk)
    assert everything == lines
    assert log.tail("[worker-1] ", 2) == [lines[19_996], lines[19_999]]
    reopened = JobLog(path)
    assert len(reopened) == 20_000 and 5 < len(reopened._marks) <= len(log._marks)
    assert reopened.read(12_345, limit=1)[0] == lines[12_345]


def test_job_log_cuts_long_lines_and_truncates_once_at_its_cap(tmp_path):
    path = tmp_path / "output.log"
    log = JobLog(path, max_bytes=10_000, max_line_bytes=300)
    log.append(["[worker-0] " + "é" * 500, "[worker-0] short"])
    cut, short = log.read()
    marker = CUT.format(limit=300)
    assert cut.endswith(marker) and len(cut.encode()) <= 300 and short == "[worker-0] short"
    for _ in range(100):
        log.append(["[worker-0] " + "x" * 200])
    assert log.truncated and path.stat().st_size < 10_000 + 200
    last = log.read(len(log) - 1)
    assert last == [TRUNCATED.format(limit="10000 bytes")], last
    count = len(log)
    log.append(["[worker-0] more"])
    assert len(log) == count and log.read(count) == [], "nothing is kept after the truncation line"
    reopened = JobLog(path, max_bytes=10_000, max_line_bytes=300)
    assert reopened.truncated and len(reopened) == count
    assert TRUNCATED.format(limit="64MiB") == (
        "[lavahub] log truncated: this job wrote more than 64MiB; the rest is not kept"
    )


def test_a_partial_last_line_from_a_crash_is_dropped_on_reopening(tmp_path):
    path = tmp_path / "output.log"
    path.write_bytes(b"[worker-0] one\n[worker-0] tw")
    log = JobLog(path)
    assert log.read() == ["[worker-0] one"]
    log.append(["[worker-0] two"])
    assert JobLog(path).read() == ["[worker-0] one", "[worker-0] two"]
