"""Terminal output without extra dependencies: a progress line per phase, log lines above it, a table."""

from __future__ import annotations

import shutil
import sys
import textwrap
import threading
import time


class Console:
    """Prints lines; while a progress bar is active it is redrawn below every printed line."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self._lock = threading.Lock()
        self._bar: Progress | None = None

    def line(self, text: str = "") -> None:
        with self._lock:
            if self._bar is not None and self.tty:
                self.stream.write("\r\x1b[2K")
            self.stream.write(text + "\n")
            if self._bar is not None and self.tty:
                self.stream.write(self._bar.render())
            self.stream.flush()

    def progress(self, title: str, total: int) -> Progress:
        bar = Progress(self, title, total)
        with self._lock:
            self._bar = bar
        return bar

    def _redraw(self, bar: Progress, final: bool = False) -> None:
        with self._lock:
            if self.tty:
                self.stream.write("\r\x1b[2K" + bar.render() + ("\n" if final else ""))
            elif bar.crossed_quarter() or (final and bar.done < bar.total):
                self.stream.write(bar.render() + "\n")
            if final:
                self._bar = None
            self.stream.flush()


class Progress:
    """`title [#####.....] 120/400 rows  38/s  0:03`; on a non-terminal, one line per quarter."""

    def __init__(self, console: Console, title: str, total: int):
        self.console = console
        self.title = title
        self.total = max(total, 1)
        self.done = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._quarter = 0

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            due = now - self._last_draw >= 0.1 or self.done >= self.total
            if due:
                self._last_draw = now
        if due:
            self.console._redraw(self)

    def finish(self) -> None:
        self.console._redraw(self, final=True)

    def crossed_quarter(self) -> bool:
        quarter = 4 * self.done // self.total
        if quarter > self._quarter:
            self._quarter = quarter
            return True
        return False

    def render(self) -> str:
        width = 30
        filled = width * min(self.done, self.total) // self.total
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        mins, secs = divmod(int(elapsed), 60)
        return (
            f"  {self.title} [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done}/{self.total} rows  {rate:4.0f}/s  {mins}:{secs:02d}"
        )


def table(header: list[str], rows: list[list[str]], max_width: int | None = None) -> str:
    """A plain-text table; the first column keeps its width, the others share what is left and wrap."""
    max_width = max_width or max(100, min(shutil.get_terminal_size((140, 40)).columns, 160))
    first = max(len(str(r[0])) for r in [header, *rows])
    others = len(header) - 1
    room = max(20, (max_width - first - 3 * others - 1) // max(others, 1))
    widths = [first] + [
        min(room, max(len(line) for r in [header, *rows] for line in str(r[i]).splitlines() or [""]))
        for i in range(1, len(header))
    ]

    def cells(row: list[str]) -> list[list[str]]:
        out = []
        for i, cell in enumerate(row):
            lines = []
            for part in str(cell).splitlines() or [""]:
                lines += textwrap.wrap(part, widths[i], break_on_hyphens=False) or [""]
            out.append(lines)
        return out

    def render(row: list[str]) -> list[str]:
        wrapped = cells(row)
        height = max(len(c) for c in wrapped)
        return [
            " | ".join((c[k] if k < len(c) else "").ljust(widths[i]) for i, c in enumerate(wrapped)).rstrip()
            for k in range(height)
        ]

    rule = "-+-".join("-" * w for w in widths)
    lines = [*render(header), rule]
    for row in rows:
        lines += render(row)
    return "\n".join(lines)
