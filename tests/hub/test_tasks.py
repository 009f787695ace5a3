"""hub.tasks.start_task: eager on Python 3.12+, a plain task before."""

from __future__ import annotations

import asyncio
import sys

from hub.tasks import EAGER, start_task


def test_eager_exactly_when_python_has_the_factory() -> None:
    """start_task is eager on 3.12+ and plain on 3.11."""
    expected = sys.version_info >= (3, 12)
    assert EAGER is expected


async def test_first_step_runs_as_the_new_task() -> None:
    """The coroutine's first step sees its own task as current, eager or not."""
    seen: list[asyncio.Task[None] | None] = []

    async def record() -> None:
        seen.append(asyncio.current_task())

    outer = asyncio.current_task()
    task = start_task(record())
    # Eager: the step already ran inside start_task; plain: it has not yet.
    assert len(seen) == (1 if EAGER else 0)
    await task
    assert seen == [task]
    assert seen[0] is not outer


async def test_timeout_inside_arms_against_the_new_task() -> None:
    """asyncio.timeout in the task's first step cancels that task, not its creator."""

    async def wait_with_timeout() -> str:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(5)
        except TimeoutError:
            return "timed out"
        return "slept"

    task = start_task(wait_with_timeout())
    # The creator keeps running past the timeout without being cancelled.
    await asyncio.sleep(0.05)
    assert await task == "timed out"


async def test_done_callback_of_a_task_done_at_creation_runs() -> None:
    """A callback added after the task already finished (eager) still runs, once."""
    calls: list[str | None] = []

    async def immediate() -> str:
        return "done"

    task = start_task(immediate())
    task.add_done_callback(lambda t: calls.append(t.result()))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert calls == ["done"]
