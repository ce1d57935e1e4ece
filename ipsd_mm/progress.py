"""Progress that reads well on a terminal and in a log file."""
import sys

from mmengine.logging import print_log
from mmengine.utils import ProgressBar


class LogProgress:
    """A line per tenth of the work (and one at the end), for output that is not a terminal:
    a log file gets a few lines, not a carriage-return redraw per item."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what, self.done, self._next = total, what, 0, 1

    def update(self, num: int = 1) -> None:
        self.done += num
        if self.done >= self.total or self.done * 10 >= self._next * self.total:
            print_log(f'{self.what}: {self.done}/{self.total}', logger='current')
            self._next = self.done * 10 // max(self.total, 1) + 1


def progress(total: int, what: str):
    """mmengine's ``ProgressBar`` on a terminal, :class:`LogProgress` otherwise."""
    if sys.stdout.isatty():
        return ProgressBar(total)
    return LogProgress(total, what)
