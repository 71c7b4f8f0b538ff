"""Run smartctl: an argument list (never a shell), a hard timeout, a C locale.

A sick disk can keep smartctl waiting on the kernel for minutes, so every call has a
deadline. On timeout the process is killed and reaped for at most a second; one stuck
in uninterruptible sleep (state D) cannot die until the kernel lets go, so it is left
to ``subprocess``'s own reaper instead of blocking this thread. The C locale keeps
numbers in the text output free of locale-specific thousands separators.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

# How long to wait for a killed smartctl to exit before leaving it behind.
_REAP_SECONDS = 1.0
# Version from the first line of `smartctl --version`: "smartctl 7.3 2022-02-28 r5338 ..."
_VERSION_RE = re.compile(r"^smartctl\s+(\d+)\.(\d+)\b")
# smartctl --json exists since 7.0.
JSON_MIN_VERSION = (7, 0)


class SmartctlError(Exception):
    """smartctl could not be run or did not answer; the message says why."""


class SmartctlNotFound(SmartctlError):
    """The configured smartctl executable does not exist or cannot be executed."""


class SmartctlTimeout(SmartctlError):
    """smartctl did not finish before the deadline (it was killed)."""

    def __init__(self, args: Sequence[str], timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        super().__init__(f"timed out after {timeout_seconds:g} s: smartctl {' '.join(args)}")


@dataclass(frozen=True)
class SmartctlResult:
    returncode: int  # smartctl's exit status bit mask (negative: killed by that signal)
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        """stdout as text; smartctl prints ASCII, stray bytes are replaced, not fatal."""
        return self.stdout.decode("utf-8", errors="replace")


def run_smartctl(path: str, args: Sequence[str], timeout_seconds: float) -> SmartctlResult:
    """Run ``path args...`` and return its exit status and output.

    Raises :class:`SmartctlNotFound` when ``path`` cannot be executed and
    :class:`SmartctlTimeout` when it runs longer than ``timeout_seconds``.
    """
    command = [path, *args]
    env = dict(os.environ, LC_ALL="C")
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            shell=False,
        )
    except FileNotFoundError:
        raise SmartctlNotFound(f"{path}: no such file") from None
    except OSError as exc:  # permission denied, not an executable, ...
        raise SmartctlNotFound(f"{path}: cannot execute: {exc.strerror or exc}") from None
    try:
        stdout, stderr = process.communicate(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        _kill(process)
        raise SmartctlTimeout(args, timeout_seconds) from None
    return SmartctlResult(process.returncode, stdout, stderr)


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    try:
        process.communicate(timeout=_REAP_SECONDS)
    except subprocess.TimeoutExpired:
        # Still in the kernel: subprocess reaps it on a later Popen; close our ends now.
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def output_excerpt(stdout: bytes, limit: int = 160) -> str:
    """The start of smartctl's output minus its two-line banner, on one line, for logs.

    ``"=======> UNRECOGNIZED OPTION: json / Use smartctl -h to get a usage summary"``
    says more than the banner every smartctl message starts with.
    """
    lines = [line.strip() for line in stdout.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line and not line.startswith(("smartctl ", "Copyright (C)"))]
    text = " / ".join(lines)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_version(text: str) -> tuple[int, int] | None:
    """``"smartctl 7.3 2022-02-28 r5338 [...]"`` -> ``(7, 3)``; None if not smartctl's banner."""
    for line in text.splitlines():
        match = _VERSION_RE.match(line.strip())
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def probe_version(path: str, timeout_seconds: float) -> tuple[int, int] | None:
    """Ask ``smartctl --version``; None when it answers with something unrecognisable."""
    return parse_version(run_smartctl(path, ["--version"], timeout_seconds).text)


__all__ = [
    "JSON_MIN_VERSION",
    "SmartctlError",
    "SmartctlNotFound",
    "SmartctlResult",
    "SmartctlTimeout",
    "output_excerpt",
    "parse_version",
    "probe_version",
    "run_smartctl",
]
