"""Progress that shows wherever the output goes: a tqdm bar on a terminal, and in a log
file or CI (not a terminal) one plain line at most every ``interval`` seconds, so a long
epoch or preprocessing job never looks hung."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)


class Progress:
    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        enabled: bool = True,
        leave: bool = True,
        interval: float = 30.0,
    ) -> None:
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.done, self.postfix = 0, ""
        self.began = self.last = time.monotonic()
        # No ETA until a few items are done: the first ones carry the start-up (worker
        # processes, imports) and made the estimate 100 times too long.
        self.stable_after = max(3, (total or 0) // 50)
        early = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, ETA soon{postfix}]"
        bar = (
            tqdm(total=total, desc=desc, unit=unit, leave=leave, bar_format=early)
            if enabled and _tty()
            else None
        )
        self.bar, self.plain = bar, enabled and bar is None

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            if self.done >= self.stable_after and self.bar.bar_format is not None:
                self.bar.bar_format = None  # tqdm's own format, ETA included
            self.bar.update(n)
        elif self.plain and time.monotonic() - self.last >= self.interval:
            self.last = time.monotonic()
            log.info(self.line())

    def line(self) -> str:
        elapsed = time.monotonic() - self.began
        if self.total:
            eta = elapsed / max(self.done, 1) * (self.total - self.done)
            shown = f"ETA {eta:.0f} s" if self.done >= self.stable_after else "ETA soon"
            where = f"{self.done}/{self.total} {self.unit} ({self.done / self.total:.0%}), {shown}"
        else:
            where = f"{self.done} {self.unit}"
        return f"{self.desc}: {where}, {elapsed:.0f} s elapsed{self.postfix}"

    def set_postfix(self, **values: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**values)
        self.postfix = "".join(f", {k} {v}" for k, v in values.items())

    def write(self, message: str) -> None:
        """A message that does not break the bar."""
        (self.bar.write if self.bar is not None else print)(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _tty() -> bool:
    return sys.stderr.isatty()
