"""Reading sysfs attributes the way a live kernel actually answers.

A sysfs attribute is one small text value, but on a live system reading it can fail in
ways that mean different things, and the collectors must tell them apart:

* the file does not exist: this kernel or driver does not offer the value (``None``);
* the file exists but the read fails (``EIO`` from a sensor on a dead I2C bus,
  ``ENODATA`` from a thermal zone with no reading yet): the value is *unavailable now*
  (:class:`Unreadable`), which a collector reports as an unavailable sensor;
* the file reads but the text is garbage (``"abc"``, empty): logged once with the
  path and content, then treated as unreadable so only that value is skipped.

The low-level read is injectable (``SysfsReader(read=...)``), so tests can make one
file raise ``OSError(errno.EIO)`` exactly like a real kernel driver does.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from novacron.protos.runtime.jsonlog import LogOnce

ReadBytes = Callable[[Path], bytes]

# Missing files: the attribute is not offered here. Anything else from open()/read()
# means the attribute exists but cannot be read now.
_ABSENT_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR})
# What the kernel prints with %d/%u/%lld; int() alone would also take "1_000" or "٣".
_DECIMAL = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class Unreadable:
    """An attribute that exists but gave no usable value this time, and why."""

    reason: str


def read_bytes(path: Path) -> bytes:
    """The real low-level read (a sysfs attribute is at most one page of text)."""
    return path.read_bytes()


def parse_int(text: str) -> int:
    """Parse a sysfs integer attribute (decimal, surrounding whitespace allowed).

    Raises ValueError for anything else, including the empty string.
    """
    stripped = text.strip()
    if not _DECIMAL.fullmatch(stripped):
        raise ValueError(f"not a decimal integer: {stripped[:64]!r}")
    return int(stripped)


def os_error_reason(exc: OSError) -> str:
    """A short, stable reason for an OSError: ``"EIO: Input/output error"``."""
    if exc.errno is None:
        return str(exc)
    name = errno.errorcode.get(exc.errno, f"errno {exc.errno}")
    return f"{name}: {exc.strerror or os.strerror(exc.errno)}"


def numbered_entries(names: Iterable[str], prefix: str) -> list[tuple[int, str]]:
    """``(number, name)`` for names ``<prefix><N>``, sorted by N (``mc10`` after ``mc9``)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)")
    found = []
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            found.append((int(match.group(1)), name))
    return sorted(found)


def list_names(directory: Path) -> list[str] | None:
    """Entry names in ``directory``; None when it is missing or cannot be listed."""
    try:
        return os.listdir(directory)
    except OSError:
        return None


class SysfsReader:
    """Read sysfs attributes as text or int, logging each bad file once.

    ``logger`` is the collector's logger, so log lines name the collector.
    """

    def __init__(self, logger: logging.Logger, read: ReadBytes = read_bytes) -> None:
        self._read = read
        self._log = LogOnce(logger)

    def text(self, path: Path) -> str | Unreadable | None:
        """The attribute's text without surrounding whitespace; None if it does not exist."""
        try:
            raw = self._read(path)
        except OSError as exc:
            if exc.errno in _ABSENT_ERRNOS:
                return None
            reason = os_error_reason(exc)
            self._log.problem(
                str(path),
                logging.DEBUG,
                "sysfs attribute unreadable",
                path=str(path),
                reason=reason,
            )
            return Unreadable(reason)
        self._log.recovered(str(path), "sysfs attribute readable again", path=str(path))
        return raw.decode("utf-8", errors="replace").strip()

    def integer(self, path: Path) -> int | Unreadable | None:
        """The attribute as an int; garbage is logged once and returned as Unreadable."""
        text = self.text(path)
        if text is None or isinstance(text, Unreadable):
            return text
        key = f"{path}:malformed"
        try:
            value = parse_int(text)
        except ValueError:
            self._log.problem(
                key,
                logging.WARNING,
                "malformed sysfs value, skipped",
                path=str(path),
                value=text[:64],
            )
            return Unreadable(f"malformed value {text[:64]!r}")
        self._log.recovered(key, "sysfs value well-formed again", path=str(path))
        return value

    def optional_text(self, path: Path) -> str | None:
        """Text for an optional attribute: missing or unreadable both give None."""
        value = self.text(path)
        return None if isinstance(value, Unreadable) else value

    def optional_int(self, path: Path) -> int | None:
        """Int for an optional attribute: missing, unreadable or garbage give None."""
        value = self.integer(path)
        return None if isinstance(value, Unreadable) else value


__all__ = [
    "ReadBytes",
    "SysfsReader",
    "Unreadable",
    "list_names",
    "numbered_entries",
    "os_error_reason",
    "parse_int",
    "read_bytes",
]
