import asyncio

from services.jobs.backends.ray.tail import LogTail
from services.jobs.logs import JobLog


def test_tail_prefixes_complete_lines_and_resumes(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "worker-0.log").write_text("a\nb\npart")
    (logs / "worker-1.log").write_text("x\r50%\rdone\n")
    (logs / "worker-10.log").write_text("ten\n")
    (logs / "launcher.log").write_text("placed\n")
    positions = tmp_path / "positions.json"
    first = LogTail(logs, positions).read()
    assert first == [
        "[launcher] placed",
        "[worker-0] a",
        "[worker-0] b",
        "[worker-1] x\r50%\rdone",
        "[worker-10] ten",
    ]
    with (logs / "worker-0.log").open("a") as f:
        f.write("ial\nc\n")
    assert LogTail(logs, positions).read() == ["[worker-0] partial", "[worker-0] c"]  # a new tail resumes
    (logs / "worker-1.log").open("a").write("last")
    assert LogTail(logs, positions).read() == []
    assert LogTail(logs, positions).read(final=True) == ["[worker-1] last"]


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
