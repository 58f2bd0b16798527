"""A delimited interactions file cut inside its last line: the timestamp that still parses, but is short.

A dump cut short (an interrupted download or copy) ends inside a line, without its line ending. In
JSON lines that leaves an unclosed object, which is rejected as malformed. In the delimited formats
(``ratings.dat``, ``u.data``, ``ratings.csv``, MicroLens pairs) the timestamp is the last field, and
a cut leaves a shorter number that still parses: ``10::2125::5::9791``. So the timestamp of a last
line without its line ending must look like a real one, and like the file's other timestamps.
"""
import time
from datetime import datetime, timezone

from .atomic import format_number
from .errors import CUT_LINE, RecordError

# Before every supported dump (MovieLens starts in 1995, Amazon reviews in 1996).
EARLIEST = datetime(1990, 1, 1, tzinfo=timezone.utc)
# A digit count that fewer than this share of the file's other timestamps have marks a cut number.
RARE_DIGIT_COUNT_SHARE = 0.01


class CutTimestampCheck:
    """Rejects the interaction of an unterminated last line whose timestamp (in seconds) looks cut.

    ``collector`` holds the file's interactions read before that line: their timestamps are what
    "looks like the file's other timestamps" is measured against. The latest allowed timestamp is the
    time the check is created, i.e. the time of the conversion.
    """

    def __init__(self, collector):
        self.collector = collector
        self.now = time.time()

    def __call__(self, interaction):
        timestamp = interaction[3]
        if timestamp < EARLIEST.timestamp():
            raise _cut(timestamp, f"is before {EARLIEST:%Y-%m-%d}")
        if timestamp > self.now:
            raise _cut(timestamp, f"is after the time of conversion ({_utc(self.now)})")
        others = len(self.collector)
        digits = len(str(int(timestamp)))
        alike = self.collector.count_timestamps_between(10 ** (digits - 1), 10**digits)
        if others and alike < RARE_DIGIT_COUNT_SHARE * others:
            raise _cut(
                timestamp,
                f"has {digits} digits before the decimal point, like only {alike:,} of the file's {others:,} other "
                f"timestamps (at least {RARE_DIGIT_COUNT_SHARE:.0%} are needed)",
            )


def _cut(timestamp, problem):
    return RecordError(
        CUT_LINE,
        f"the last line has no line ending and its timestamp, {format_number(timestamp)} s "
        f"({_utc(timestamp)}), {problem}: the file was probably cut inside this line",
    )


def _utc(timestamp):
    try:
        return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):  # beyond the years datetime can show
        return "not a representable date"
