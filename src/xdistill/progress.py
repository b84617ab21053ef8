"""Progress bars that read well both in a terminal and in a log file.

In a terminal (or a Jupyter kernel) :func:`progress_bar` is tqdm's bar. Elsewhere
tqdm's carriage-return redraws pile up into one huge line of a log file, so the
bar is :class:`LogProgress` instead: a few plain lines, at the start, at every
tenth of the total and at the end, each with the count, the rate and the time.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO


class ProgressBar(Protocol):
    """What xdistill calls on a progress bar; tqdm's bar and :class:`LogProgress` both answer it."""

    def update(self, n: float = 1) -> Any: ...

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> ProgressBar: ...

    def __exit__(self, *exc: object) -> None: ...


def progress_bar(total: float | None = None, desc: str = "", unit: str = "it", disable: bool = False,
                 initial: float = 0, file: TextIO | None = None, **tqdm_options: Any) -> ProgressBar:
    """A tqdm bar when ``file`` (default: stderr) is a terminal or a Jupyter kernel shows it, else a
    :class:`LogProgress`, which prints nothing either when ``disable``.

    ``tqdm_options`` (``leave``, ``dynamic_ncols``, ...) only shape tqdm's redrawn bar.
    """
    stream = sys.stderr if file is None else file
    if _is_terminal(stream) or (file is None and _in_jupyter_kernel()):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, disable=disable, initial=initial, file=file, **tqdm_options)
    return LogProgress(total=total, desc=desc, unit=unit, disable=disable, initial=initial, file=stream)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _in_jupyter_kernel() -> bool:
    # A notebook's stderr is not a terminal, yet tqdm.auto draws a widget there, which is what its user wants.
    shell = sys.modules.get("IPython")
    ipython = getattr(shell, "get_ipython", lambda: None)() if shell is not None else None
    return ipython is not None and "IPKernelApp" in getattr(ipython, "config", {})


class LogProgress:
    """Progress as plain lines: one at the start, one at each tenth of ``total`` and one at :meth:`close`.

    At most 11 lines whatever the number of updates, none with a carriage return.
    Without a ``total`` only the start and the end are printed.
    """

    def __init__(self, total: float | None = None, desc: str = "", unit: str = "it", disable: bool = False,
                 initial: float = 0, file: TextIO | None = None) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.disable = disable
        self.initial = initial
        self.n = initial
        self.file = file
        self.postfix = ""
        self._started = time.perf_counter()
        self._tenths_reported = self._tenths()
        self._closed = False
        if not disable:
            self._write(f"started, {self._count()}" + (f" (resumed at {_number(initial)})" if initial else ""))

    def update(self, n: float = 1) -> None:
        self.n += n
        tenths = self._tenths()
        # The last tenth is left to close(), which reports the end with the final count.
        if tenths > self._tenths_reported and tenths < 10:
            self._tenths_reported = tenths
            if not self.disable:
                self._write(f"{10 * tenths}%, {self._count()}, {self._rate_and_time()}")

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        values = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.disable:
            ended = "done" if not self.total or self.n >= self.total else "stopped"
            self._write(f"{ended}, {self._count()}, {self._rate_and_time()}")

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tenths(self) -> int:
        if not self.total or self.total <= 0:
            return 0
        return min(10, int(10 * self.n / self.total))

    def _count(self) -> str:
        total = f"/{_number(self.total)}" if self.total else ""
        return f"{_number(self.n)}{total} {self.unit}"

    def _rate_and_time(self) -> str:
        elapsed = time.perf_counter() - self._started
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        shown = f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"
        return f"{shown} {self.unit}/s, {_duration(elapsed)} elapsed"

    def _write(self, text: str) -> None:
        head = f"{self.desc}: " if self.desc else ""
        tail = f" [{self.postfix}]" if self.postfix else ""
        stream = sys.stderr if self.file is None else self.file
        print(f"{head}{text}{tail}", file=stream, flush=True)


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) and not value.is_integer() else str(int(value or 0))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
