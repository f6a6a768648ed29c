"""Progress of long commands: a rich bar on a terminal, a plain line now and then when stderr goes to a log.

Rich draws nothing when stderr is not a terminal, so a piped or logged ``profile``, ``train`` or ``search`` showed no
progress at all. :func:`progress_bar` returns a rich :class:`~rich.progress.Progress` on a terminal and otherwise a
:class:`PlainProgress` with the same small API, which prints one line on stderr every tenth of the work or every
:data:`PLAIN_EVERY_S` seconds, whichever comes first.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from rich.text import Text

from edgenas.cli._app import err

#: A plain progress line at least this often (s) while work goes on.
PLAIN_EVERY_S = 30.0
#: ... and at every such share of the total.
PLAIN_EVERY_SHARE = 0.1


class PlainProgress:
    """Line-by-line progress for logs; the subset of rich's ``Progress`` API that the commands use."""

    def __init__(self, head: str, tail: str, *, every_s: float = PLAIN_EVERY_S) -> None:
        self.head, self.tail, self.every_s = head, tail, every_s
        self.console = err
        self._tasks: dict[int, dict[str, Any]] = {}
        self._next_id = 0

    def add_task(self, description: str, *, total: float | None = None, completed: float = 0, **fields: Any) -> int:
        task_id = self._next_id
        self._next_id += 1
        now = time.monotonic()
        self._tasks[task_id] = {
            "description": description,
            "total": total,
            "completed": completed,
            "fields": fields,
            "start": now,
            "printed_at": now,
            "printed_share": (completed / total) if total else 0.0,
        }
        return task_id

    def update(
        self, task_id: int, *, completed: float | None = None, total: float | None = None, **fields: Any
    ) -> None:
        task = self._tasks[task_id]
        if completed is not None:
            task["completed"] = completed
        if total is not None:
            task["total"] = total
        task["fields"].update(fields)
        now = time.monotonic()
        share = task["completed"] / task["total"] if task["total"] else 0.0
        due = share >= task["printed_share"] + PLAIN_EVERY_SHARE or share >= 1.0 > task["printed_share"]
        if due or now - task["printed_at"] >= self.every_s:
            task["printed_at"], task["printed_share"] = now, share
            self.console.print(self.line(task_id), markup=False, highlight=False)

    def line(self, task_id: int) -> str:
        """The plain text of a task: head, done/total (share), elapsed seconds, tail."""
        task = self._tasks[task_id]
        view = SimpleNamespace(fields=task["fields"], completed=task["completed"], total=task["total"])
        head = Text.from_markup(self.head.format(task=view)).plain
        tail = Text.from_markup(self.tail.format(task=view)).plain if self.tail else ""
        total = task["total"]
        done = f"{task['completed']:.0f}/{total:.0f} ({100 * task['completed'] / total:.0f}%)" if total else ""
        elapsed = time.monotonic() - task["start"]
        return " ".join(p for p in (head, done, f"{elapsed:.0f} s", tail) if p)

    def remove_task(self, task_id: int) -> None:
        self._tasks.pop(task_id, None)

    def start(self) -> None:
        """Nothing to start: lines are printed as updates come."""

    def stop(self) -> None:
        """Nothing to stop."""

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def progress_bar(head: str, tail: str = "", *, quiet: bool = False) -> Any:
    """A progress display on stderr: rich's bar on a terminal, :class:`PlainProgress` lines otherwise.

    Args:
        head: text before the bar, a format string over ``task`` (``{task.fields[epoch]}``), rich markup allowed.
        tail: text after the bar, same form.
        quiet: draw nothing (``--json``, or a process other than rank 0).
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if not quiet and not err.is_terminal:
        return PlainProgress(head, tail)
    columns = [TextColumn(head), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    if tail:
        columns.append(TextColumn(tail))
    return Progress(*columns, console=err, transient=True, disable=quiet)
