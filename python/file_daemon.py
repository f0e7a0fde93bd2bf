"""Run shell commands through a file-daemon without forking this Python process.

A memory-heavy program (a model in RAM, a big data frame) pays dearly for every ``fork()``
that ``subprocess`` does. With this module it never forks: it writes the command into a
file, and the file-daemon (``file-daemon RESULTS COMMANDS SLEEP_TIME``, from the npm package
``@file-daemon/node-red``) runs it and writes the result back. The two speak
``docs/PROTOCOL.md`` (version 1): ``mkdir`` lock directories, atomic renames, a JSON line 2
that names each command, so any number of submitters can share the same files.

Python 3.8 or later, standard library only: copy this one file next to your program.

Usage::

    from file_daemon import FileDaemonError, submit_command

    result = submit_command("ls -l /tmp", "/run/fd/commands", "/run/fd/results", 0.5)
    print(result.code)                    # the command's exit status (None if a signal ended it)

    result = submit_command("uname -a", commands, results, 0.5, timeout=10, capture=True)
    print(result.stdout.decode())         # bytes, exactly as the command wrote them

    try:
        submit_command("sleep 60", commands, results, 0.5, timeout=1)
    except FileDaemonError as err:
        print(err.code, err)              # TIMEOUT, and what to do about it
        print(err.result)                 # the daemon's result, when there is one

    # In a directory, with variables set and bytes on stdin; each line of output as it comes:
    result = submit_command(
        "sort | uniq -c; make test", commands, results, 0.5,
        cwd="/home/pi/project", env={"LC_ALL": "C"}, stdin=open("words.txt", "rb").read(),
        on_line=lambda line: print(line.stream, line.text),
    )
    print(result.streamed, result.missed)  # lines the daemon streamed, and how many on_line missed

Arguments, in the seed's order: the command (one line of shell), the commands file, the
results file (the same paths the daemon was started with) and ``sleep_time``, the seconds
between looks at the files. ``timeout`` (seconds, 0 = none) makes the daemon kill the
command's process group; ``capture`` returns stdout and stderr (64 KiB each at most);
``daemon_wait`` (seconds, default 5) is how long to keep looking for a daemon that is not
running (yet): one that is starting, or restarting while a command waits; after that long the
call fails with ``DAEMON_NOT_RUNNING`` and says how long it waited (0 = fail at once). A running
command whose daemon dies fails with ``DAEMON_DIED`` at once, unless ``daemon_wait`` is given:
then a restarted daemon's report (``INTERRUPTED``) is awaited that long. A
missing directory fails at once, whatever ``daemon_wait``. ``stale`` is the lock staleness in
seconds; by default the one the daemon publishes (at least 2), which all parties must share.

``cwd`` (an absolute path; the daemon refuses a directory it cannot enter, ``BAD_COMMAND``),
``env`` (a dict of str to str, set over the daemon's own environment; names are letters, digits
and ``_``, 64 KiB in all) and ``stdin`` (bytes, or a str sent as UTF-8, at most 1 MiB; without
it stdin is ``/dev/null``) are checked before anything is written. ``on_line`` follows the
command's output: it is called with an :class:`OutputLine` (``seq``, ``stream`` ``"stdout"`` or
``"stderr"``, ``text``, ``partial`` for a line over 8192 bytes that goes on in the next one,
``missed``) for every line, in order, while submit_command waits, and for the rest before it
returns, also when the command timed out or was killed. A callback that blocks holds up the
command (its output pipe fills) for up to 5 s per MiB; after that the daemon goes on and the
lines skipped show as ``missed``; the result's ``streamed`` counts them all. An exception
raised by ``on_line`` stops further calls; it is raised once the command has ended and its
result is collected. These need a daemon that lists them in its ``features``
(else ``INCOMPATIBLE``, naming what it cannot do).

Before placing anything the client checks what the daemon publishes in ``COMMANDS.daemon``: a
daemon speaking another protocol version is ``INCOMPATIBLE``, one serving other commands or
results files is ``BAD_OPTION`` (a command would run and its result never be seen).

``submit_command`` returns a :class:`CommandResult` when the command ended by itself
(``status`` ``exited`` or ``signaled``). Everything else raises :class:`FileDaemonError`
whose ``code`` is one of ``BAD_COMMAND``, ``BAD_OPTION``, ``NO_DIRECTORY``, ``PERMISSION``,
``DAEMON_NOT_RUNNING``, ``DAEMON_DIED``, ``TIMEOUT``, ``KILLED``, ``INTERRUPTED``,
``SPAWN_FAILED``, ``LOST``, ``INCOMPATIBLE`` or ``IO`` (the JavaScript client's codes; its ``ABORTED`` has no use
here, see Ctrl-C below) and whose ``result`` is set when the command ran.

Ctrl-C (``KeyboardInterrupt``) while waiting withdraws a command that has not started (it
never runs) or asks the daemon to kill a running one and waits for that to happen; then the
``KeyboardInterrupt`` goes on as usual.

As a script, mirroring the seed's helper (exit status = the command's, 128+N when signal N
ended it, 124 when it timed out as with timeout(1), 125 when the file-daemon itself failed)::

    python3 file_daemon.py COMMANDS RESULTS SLEEP_TIME [--timeout S] [--output] -- COMMAND...
"""

from __future__ import annotations

import argparse
import base64
import binascii
import codecs
import contextlib
import dataclasses
import errno
import functools
import json
import math
import os
import random
import re
import secrets
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from stat import S_ISREG
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, TypeVar, Union

__all__ = ["CommandResult", "FileDaemonError", "MAX_COMMAND_BYTES", "OutputLine", "submit_command"]

PROTOCOL_VERSION = 1
#: Largest command accepted, in UTF-8 bytes.
MAX_COMMAND_BYTES = 65_536
DEFAULT_STALE = 10.0
MIN_STALE = 2.0
# Seconds a submitter waits for a daemon to appear (one may be starting), as the JavaScript client.
DEFAULT_DAEMON_WAIT = 5.0
MAX_SLEEP_TIME = 3600.0
MAX_TIMEOUT = 2_147_483.0
#: How many times a command that vanished before it started is placed again.
MAX_REPLACEMENTS = 3
#: The longest ``cwd``, in UTF-8 bytes (PROTOCOL.md section 4).
MAX_CWD_BYTES = 4096
#: The most bytes of ``env``: every name and value, plus 2 per pair (the ``=`` and execve's NUL).
MAX_ENV_BYTES = 65_536
#: The most bytes of ``stdin``.
MAX_STDIN_BYTES = 1024 * 1024
#: Seconds between looks at the stream file while a command's output is followed.
FOLLOW_SLEEP = 0.05
#: Mode of the files a submitter creates unless the daemon publishes another (PROTOCOL.md §3 ``fileMode``).
FILE_MODE = 0o600
LOCK_MODE = 0o700

_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
_STATUSES = ("exited", "signaled", "timeout", "killed", "interrupted", "failed", "refused")
_FAILURES = {
    "timeout": "TIMEOUT",
    "killed": "KILLED",
    "interrupted": "INTERRUPTED",
    "failed": "SPAWN_FAILED",
    "refused": "BAD_COMMAND",
}
_ADVICE = {
    "timeout": "raise timeout= if it needs longer",
    "killed": "it was killed on request or because the daemon was stopping",
    "interrupted": "the daemon died while it ran; its outcome is unknown and it was not run again",
    "failed": "check the daemon's shell and its log",
    "refused": "the daemon would not run it; see the message",
}
# "Blank" as PROTOCOL.md section 1 defines it: only these bytes.
_BLANK = " \t\v\f\r\n"
# Codes decided under the locks: nothing of ours is left pending when they are raised.
_SETTLED = ("DAEMON_NOT_RUNNING", "DAEMON_DIED", "INTERRUPTED", "LOST")


@dataclass(frozen=True)
class CommandResult:
    """How a command ended, as the daemon reported it."""

    code: Optional[int]
    """Exit status, or None when a signal ended the command."""
    signal: Optional[str]
    """Signal name such as ``SIGTERM``, or None."""
    status: str
    """exited, signaled, timeout, killed, interrupted, failed or refused."""
    message: Optional[str]
    stdout: Optional[bytes]
    """Captured bytes (None unless ``capture=True``)."""
    stderr: Optional[bytes]
    stdout_truncated: bool
    stderr_truncated: bool
    duration_ms: float
    id: str
    channel: int
    streamed: Optional[int] = None
    """For a command followed with ``on_line``: how many lines the daemon gave its output (None otherwise)."""
    missed: Optional[int] = None
    """For a followed command: how many of those lines ``on_line`` never got (0 when it kept up)."""

    @property
    def return_code(self) -> int:
        """The number a shell's ``$?`` shows: the exit status, 128 + signal number, or -1."""
        if self.code is not None:
            return self.code
        if self.signal is not None and self.signal in signal.Signals.__members__:
            return 128 + int(signal.Signals[self.signal])
        return -1


@dataclass(frozen=True)
class OutputLine:
    """A line of a followed command's output (``on_line``), as the daemon streamed it."""

    seq: int
    """1, 2, 3 ... over stdout and stderr together, in the order the daemon read them."""
    stream: str
    """``stdout`` or ``stderr``."""
    text: str
    """The line without its end of line; bytes that were not UTF-8 show as U+FFFD."""
    partial: bool
    """The line was longer than 8192 bytes: it goes on in the next line of the same stream."""
    missed: int
    """Lines this follower did not get just before this one (it fell behind, or the daemon could not write them)."""


class FileDaemonError(Exception):
    """A command that did not end by itself, or could not be handed to the daemon."""

    def __init__(self, code: str, message: str, result: Optional[CommandResult] = None) -> None:
        super().__init__(message)
        self.code = code
        self.result = result

    def __repr__(self) -> str:
        return f"FileDaemonError({self.code!r}, {str(self)!r})"


def submit_command(
    command: str,
    commands: str,
    results: str,
    sleep_time: float,
    timeout: float = 0,
    capture: bool = False,
    daemon_wait: Optional[float] = None,
    stale: Optional[float] = None,
    cwd: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    stdin: Union[bytes, str, None] = None,
    on_line: Optional[Callable[[OutputLine], object]] = None,
) -> CommandResult:
    """Runs ``command`` through the daemon serving ``commands``/``results`` and returns its result.

    ``cwd`` (an absolute directory where the daemon runs), ``env`` (variables set over the
    daemon's environment) and ``stdin`` (bytes, or text sent as UTF-8, at most 1 MiB) shape the
    command's process; ``on_line`` is called with an :class:`OutputLine` for every line of its
    output, in order, while it runs (and after, until every line is in).

    Never starts a process: only file operations. Raises :class:`FileDaemonError`.
    """
    _validate_command(command)
    extras = _validate_extras(cwd, env, stdin, on_line)
    files = _Files(_check_path(commands, "commands"), _check_path(results, "results"))
    options = _Options(
        sleep=_check_seconds(sleep_time, "sleep_time", MAX_SLEEP_TIME, zero_ok=False),
        timeout_ms=round(_check_seconds(timeout, "timeout", MAX_TIMEOUT) * 1000),
        capture=_check_flag(capture, "capture"),
        daemon_wait=DEFAULT_DAEMON_WAIT if daemon_wait is None else _check_seconds(daemon_wait, "daemon_wait", MAX_TIMEOUT),
        running_wait=0 if daemon_wait is None else _check_seconds(daemon_wait, "daemon_wait", MAX_TIMEOUT),
        stale=None if stale is None else max(MIN_STALE, _check_seconds(stale, "stale", MAX_TIMEOUT, zero_ok=False)),
    )
    return _Submission(files, options, extras).run(command)


# --- checks -----------------------------------------------------------------------------


def _validate_command(command: object) -> None:
    if not isinstance(command, str):
        raise FileDaemonError("BAD_COMMAND", f"the command must be a str, got {type(command).__name__}; convert it to text first")
    if command.strip(_BLANK) == "":
        raise FileDaemonError("BAD_COMMAND", "the command is empty; give the shell command to run")
    if "\n" in command or "\r" in command:
        raise FileDaemonError(
            "BAD_COMMAND",
            "the command contains a line break; the commands file holds one command on one line: join the parts with ';' or '&&'",
        )
    if "\0" in command:
        raise FileDaemonError("BAD_COMMAND", "the command contains a NUL character, which no shell command can hold; remove it")
    try:
        size = len(command.encode("utf-8"))
    except UnicodeEncodeError:
        raise FileDaemonError(
            "BAD_COMMAND", "the command is not valid Unicode text (it holds a lone surrogate); fix its encoding"
        ) from None
    if size > MAX_COMMAND_BYTES:
        raise FileDaemonError(
            "BAD_COMMAND",
            f"the command is {size} bytes long; the limit is {MAX_COMMAND_BYTES} bytes: pass large data through a file instead",
        )


@dataclass(frozen=True)
class _Extras:
    """What a command asks beyond line 1 (PROTOCOL.md section 4, line 2), checked; None = not used."""

    cwd: Optional[str]
    env: Optional[Dict[str, str]]
    stdin: Optional[bytes]
    on_line: Optional[Callable[[OutputLine], object]]

    @property
    def features(self) -> List[str]:
        """The daemon features (``COMMANDS.daemon`` ``features``) these need."""
        used = (("cwd", self.cwd), ("env", self.env), ("stdin", self.stdin), ("stream", self.on_line))
        return [name for name, value in used if value is not None]

    def line2(self) -> Dict[str, Any]:
        """The line 2 keys, only those used (a daemon without these features still runs plain commands)."""
        keys: Dict[str, Any] = {}
        if self.cwd is not None:
            keys["cwd"] = self.cwd
        if self.env is not None:
            keys["env"] = self.env
        if self.stdin is not None:
            keys["stdin"] = base64.b64encode(self.stdin).decode("ascii")
        if self.on_line is not None:
            keys["stream"] = True
        return keys


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _validate_extras(cwd: object, env: object, stdin: object, on_line: object) -> _Extras:
    """Checks ``cwd``, ``env`` and ``stdin`` by the rules the daemon applies (BAD_COMMAND, before anything is written)."""
    if on_line is not None and not callable(on_line):
        raise FileDaemonError("BAD_OPTION", f"on_line must be a function taking an OutputLine, got {type(on_line).__name__}")
    return _Extras(_checked_cwd(cwd), _checked_env(env), _checked_stdin(stdin), on_line)  # type: ignore[arg-type]


def _checked_cwd(cwd: object) -> Optional[str]:
    if cwd is None:
        return None
    text = os.fspath(cwd) if isinstance(cwd, os.PathLike) else cwd
    if not isinstance(text, str):
        raise FileDaemonError("BAD_COMMAND", f"cwd must be a str naming a directory, got {type(cwd).__name__}")
    if not text.startswith("/"):
        raise FileDaemonError("BAD_COMMAND", f"cwd must be an absolute path (starting with /), got {text[:80]!r}; the daemon resolves nothing against your directory")
    if "\0" in text:
        raise FileDaemonError("BAD_COMMAND", "cwd must not contain a NUL character; fix the path")
    size = _utf8_size(text, "cwd")
    if size > MAX_CWD_BYTES:
        raise FileDaemonError("BAD_COMMAND", f"cwd is {size} bytes long; the limit is {MAX_CWD_BYTES}: give a shorter path")
    return text


def _checked_env(env: object) -> Optional[Dict[str, str]]:
    if env is None:
        return None
    if not isinstance(env, Mapping):
        raise FileDaemonError("BAD_COMMAND", f"env must be a dict of NAME: 'value' str pairs, got {type(env).__name__}")
    checked: Dict[str, str] = {}
    size = 0
    for name, value in env.items():
        if not isinstance(name, str) or _ENV_NAME.match(name) is None:
            raise FileDaemonError(
                "BAD_COMMAND", f"env has the name {name!r}; a variable name is a letter or _ followed by letters, digits or _: rename it"
            )
        if not isinstance(value, str):
            raise FileDaemonError("BAD_COMMAND", f"env {name} must be a str, got {type(value).__name__}; convert it to text first")
        if "\0" in value:
            raise FileDaemonError("BAD_COMMAND", f"env {name} contains a NUL character, which no environment variable can hold; remove it")
        size += len(name) + _utf8_size(value, f"env {name}") + 2
        checked[name] = value
    if size > MAX_ENV_BYTES:
        raise FileDaemonError(
            "BAD_COMMAND", f"env is {size} bytes long; the limit is {MAX_ENV_BYTES}: pass large data through a file or stdin instead"
        )
    return checked


def _checked_stdin(stdin: object) -> Optional[bytes]:
    if stdin is None:
        return None
    if isinstance(stdin, str):
        _utf8_size(stdin, "stdin")  # raises for a lone surrogate
        data = stdin.encode("utf-8")
    elif isinstance(stdin, (bytes, bytearray, memoryview)):
        data = bytes(stdin)
    else:
        raise FileDaemonError("BAD_COMMAND", f"stdin must be bytes or a str, got {type(stdin).__name__}")
    if len(data) > MAX_STDIN_BYTES:
        raise FileDaemonError(
            "BAD_COMMAND", f"stdin is {len(data)} bytes long; the limit is {MAX_STDIN_BYTES} (1 MiB): pass larger data through a file"
        )
    return data


def _utf8_size(text: str, name: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise FileDaemonError("BAD_COMMAND", f"{name} is not valid Unicode text (it holds a lone surrogate); fix its encoding") from None


def _check_path(path: object, name: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise FileDaemonError("BAD_OPTION", f"the {name} file path must be a str, got {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str) or text.strip() == "" or "\0" in text:
        raise FileDaemonError("BAD_OPTION", f"the {name} file path must be a non-empty string without NUL, got {text!r}")
    return os.path.abspath(text)


def _check_seconds(value: object, name: str, maximum: float, zero_ok: bool = True) -> float:
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    low_ok = number is not None and (number >= 0 if zero_ok else number > 0)
    if number is None or not math.isfinite(number) or not low_ok or number > maximum:
        low = "from 0" if zero_ok else "above 0"
        raise FileDaemonError("BAD_OPTION", f"{name} must be a number of seconds {low} and at most {maximum:g}, got {value!r}")
    return float(number)


def _check_flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise FileDaemonError("BAD_OPTION", f"{name} must be True or False, got {value!r}")
    return value


# --- files, reads and atomic writes ---------------------------------------------------------


@dataclass(frozen=True)
class _Channel:
    index: int
    commands: str
    results: str

    @property
    def kill(self) -> str:
        return self.commands + ".kill"

    @property
    def taken(self) -> str:
        """The daemon's trace of the ids it took from this channel (design C)."""
        return self.commands + ".taken"


@dataclass(frozen=True)
class _Files:
    commands: str
    results: str

    def __post_init__(self) -> None:
        if self.commands == self.results:
            raise FileDaemonError("BAD_OPTION", f"the commands and results files must be different files, got {self.commands} for both")

    @property
    def info(self) -> str:
        return self.commands + ".daemon"

    @property
    def daemon_lock(self) -> str:
        return self.commands + ".daemon.lock"

    @property
    def directories(self) -> List[str]:
        return sorted({os.path.dirname(self.commands), os.path.dirname(self.results)})

    def channel(self, index: int) -> _Channel:
        suffix = "" if index == 0 else f".{index}"
        return _Channel(index, self.commands + suffix, self.results + suffix)


def _fs_error(err: OSError, path: str, doing: str) -> FileDaemonError:
    if err.errno == errno.ENOENT:
        return FileDaemonError("NO_DIRECTORY", f"cannot {doing} {path}: the directory does not exist; create it or fix the path")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        name = errno.errorcode.get(err.errno, str(err.errno))
        return FileDaemonError("PERMISSION", f"cannot {doing} {path}: permission denied ({name}); make the directory writable by this user")
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return FileDaemonError("IO", f"cannot {doing} {path}: the disk is full; free some space")
    return FileDaemonError("IO", f"cannot {doing} {path}: {err.strerror or err}")


def _read(path: str) -> bytes:
    """A file's content; a missing file reads as empty."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return b""
    except OSError as err:
        raise _fs_error(err, path, "read") from err


def _write_atomic(path: str, data: bytes, mode: int = FILE_MODE) -> None:
    """Replaces ``path`` with ``data`` in one step: a temp file in the same directory, renamed over
    it. The file gets ``mode`` exactly, whatever the umask (PROTOCOL.md section 1)."""
    temp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        # Exclusively (O_EXCL): never write through a name that exists, someone else's or a link.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as err:
        raise _fs_error(err, path, "write") from err
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            os.fchmod(handle.fileno(), mode)  # the umask may have narrowed it
        _give_to_directory_owner(temp)
        os.rename(temp, path)
    except OSError as err:
        _remove_quietly(temp)
        raise _fs_error(err, path, "write") from err
    except BaseException:
        _remove_quietly(temp)
        raise


def _give_to_directory_owner(temp: str) -> None:
    """As root, hand a new file to the owner of its directory (PROTOCOL.md section 1), so a
    daemon running as that user can read it."""
    if os.geteuid() != 0:
        return
    directory = os.stat(os.path.dirname(os.path.abspath(temp)))
    if directory.st_uid != 0:
        os.chown(temp, directory.st_uid, directory.st_gid)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _first_two_lines(content: bytes) -> Tuple[bytes, bytes]:
    lines = content.split(b"\n", 2)
    line1 = lines[0]
    line2 = lines[1] if len(lines) > 1 else b""
    return _strip_cr(line1), _strip_cr(line2)


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


def _is_blank(data: bytes) -> bool:
    return data.decode("latin-1").strip(_BLANK) == ""


def _parse_json_line(line: bytes) -> Optional[Dict[str, Any]]:
    if not line.startswith(b"{"):
        return None
    try:
        value = json.loads(line.decode("utf-8"), parse_constant=_not_json)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _not_json(name: str) -> None:
    """NaN, Infinity and -Infinity are not JSON (json.loads accepts them; JavaScript's JSON.parse does not)."""
    raise ValueError(f"{name} is not JSON")


def _as_int(value: object) -> Optional[int]:
    """A JSON number that is a safe integer, as JavaScript's Number.isSafeInteger sees it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    number = int(value)
    return number if abs(number) <= 2**53 - 1 else None


def _as_pid(value: object) -> Optional[int]:
    number = _as_int(value)
    return number if number is not None and number > 0 else None


def _as_str(value: object) -> Optional[str]:
    return value if isinstance(value, str) else None


def _valid_meta(meta: Optional[Dict[str, Any]]) -> bool:
    return meta is not None and _as_int(meta.get("v")) == PROTOCOL_VERSION and _is_id(meta.get("id"))


def _is_id(value: object) -> bool:
    return isinstance(value, str) and _ID_PATTERN.match(value) is not None


# --- records ---------------------------------------------------------------------------------


def _encode_command(command: str, command_id: str, timeout_ms: int, capture: bool, extras: Optional[Dict[str, Any]] = None) -> bytes:
    meta = {"v": PROTOCOL_VERSION, "id": command_id, "pid": os.getpid(), "pidns": _own_pid_namespace(), "timeout": timeout_ms, "capture": capture}
    meta.update(extras or {})
    return f"{command}\n{json.dumps(meta, separators=(',', ':'))}\n".encode("utf-8")


def _commands_free(content: bytes) -> bool:
    """True when the commands file holds nothing pending (empty, or line 1 blank)."""
    return _is_blank(_first_two_lines(content)[0])


def _pending_id(content: bytes) -> Optional[str]:
    """The id of the pending command, or None (nothing pending, or a seed-style command)."""
    line1, line2 = _first_two_lines(content)
    if _is_blank(line1):
        return None
    meta = _parse_json_line(line2)
    return meta["id"] if meta is not None and _valid_meta(meta) else None


@dataclass(frozen=True)
class _Record:
    """A ``running`` or ``done`` record of the results file; ``meta`` is its line 2."""

    state: str
    id: str
    pid: Optional[int]
    pidns: Optional[str]
    meta: Dict[str, Any]


def _decode_results(content: bytes) -> Optional[_Record]:
    """Our kind of record, or None (empty, a seed-style result, garbage)."""
    if _is_blank(content):
        return None
    line1, line2 = _first_two_lines(content)
    meta = _parse_json_line(line2)
    if meta is None or not _valid_meta(meta):
        return None
    state = meta.get("state")
    running = state == "running" and line1 == b""
    done = state == "done" and meta.get("status") in _STATUSES
    if not (running or done):
        return None
    return _Record(str(state), meta["id"], _as_pid(meta.get("pid")), _as_str(meta.get("pidns")), meta)


def _decode_output(value: object) -> Optional[bytes]:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value)
    except (binascii.Error, ValueError):
        return None


def _result_of(record: _Record, channel: int) -> CommandResult:
    meta = record.meta
    duration = meta.get("durationMs")
    return CommandResult(
        code=_as_int(meta.get("code")),
        signal=_as_str(meta.get("signal")),
        status=str(meta["status"]),
        message=_as_str(meta.get("message")),
        stdout=_decode_output(meta.get("stdout")),
        stderr=_decode_output(meta.get("stderr")),
        stdout_truncated=meta.get("stdoutTruncated") is True,
        stderr_truncated=meta.get("stderrTruncated") is True,
        duration_ms=duration if isinstance(duration, (int, float)) and not isinstance(duration, bool) and math.isfinite(duration) else 0,
        id=record.id,
        channel=channel,
        streamed=_as_count(meta.get("streamed")),
    )


def _as_count(value: object) -> Optional[int]:
    number = _as_int(value)
    return number if number is not None and number >= 0 else None


# --- processes -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _own_pid_namespace() -> Optional[str]:
    """The target of /proc/self/ns/pid, e.g. ``pid:[4026531836]``; pids only compare within one."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_start_time(pid: int) -> Optional[str]:
    """Field 22 of /proc/<pid>/stat: tells a reused pid apart. None for no such process, or
    one that has ended and waits to be reaped (state Z or X, PROTOCOL.md section 3)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("latin-1")
    except OSError:
        return None
    # The process name (field 2) may hold spaces and parentheses: count from the last ')'.
    fields = stat[stat.rfind(")") + 1 :].split()
    if fields and fields[0] in ("Z", "X"):
        return None
    return fields[19] if len(fields) > 19 else None


def _owner_gone(record: _Record) -> bool:
    """True only when the submitter is known to be dead (same pid namespace, no such pid)."""
    own = _own_pid_namespace()
    if record.pid is None or record.pidns is None or own is None or record.pidns != own:
        return False
    return not _pid_exists(record.pid)


@dataclass(frozen=True)
class _Daemon:
    """What ``COMMANDS.daemon`` says about a live daemon (PROTOCOL.md §3)."""

    pid: int
    channels: int
    v: object
    commands: str
    results: str
    stale: Optional[float]
    """The daemon's lock staleness in seconds, or None when it published none."""
    file_mode: int = FILE_MODE
    """The mode the daemon publishes for every file a submitter creates (``fileMode``)."""
    features: Tuple[str, ...] = ()
    """The line 2 options added after version 1 first shipped that it honours (PROTOCOL.md section 3)."""
    version: str = "unknown"


def _read_info(files: _Files) -> bytes:
    """``COMMANDS.daemon``; missing or unreadable as a file reads as empty (no daemon), but a
    directory this user may not read is PERMISSION, not "no daemon"."""
    try:
        with open(files.info, "rb") as handle:
            return handle.read()
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM):
            name = errno.errorcode.get(err.errno, str(err.errno))
            raise FileDaemonError(
                "PERMISSION",
                f"cannot read {files.info}: permission denied ({name}); this user may not use the file-daemon's "
                "directory: run as the daemon's user or group, or give this user access to the directory",
            ) from err
        return b""


def _live_daemon(files: _Files) -> Optional[_Daemon]:
    """The daemon serving these files, or None when none is alive (PROTOCOL.md §3)."""
    meta = _parse_json_line(_first_two_lines(_read_info(files))[0])
    if meta is None:
        return None
    pid = _as_pid(meta.get("pid"))
    commands, results = meta.get("commands"), meta.get("results")
    if pid is None or not isinstance(commands, str) or not isinstance(results, str):
        return None  # without the files it serves, the info file does not parse (no daemon)
    start_time = meta.get("startTime")
    if isinstance(start_time, str):
        if _process_start_time(pid) != start_time:
            return None
    elif not _pid_exists(pid):
        return None
    if not os.path.isdir(files.daemon_lock):
        return None
    channels = _as_int(meta.get("channels"))
    stale = meta.get("stale")
    stale_s = stale / 1000 if isinstance(stale, (int, float)) and not isinstance(stale, bool) and math.isfinite(stale) and stale > 0 else None
    features = meta.get("features")
    known = tuple(name for name in _FEATURES if isinstance(features, list) and name in features)
    version = meta.get("version")
    return _Daemon(
        pid, channels if channels is not None and channels >= 1 else 1, meta.get("v"), commands, results, stale_s,
        _file_mode(meta.get("fileMode")), known, version if isinstance(version, str) else "unknown",
    )


#: What each line 2 option of ``features`` lets a command do, for INCOMPATIBLE's message.
_FEATURES = {
    "cwd": "set a command's working directory",
    "env": "set a command's environment",
    "stdin": "write to a command's standard input",
    "stream": "stream a command's output",
}


def _unsupported(daemon: _Daemon, used: List[str], files: _Files) -> Optional[FileDaemonError]:
    """INCOMPATIBLE when the daemon does not list every feature the command uses (it would refuse it)."""
    missing = [name for name in used if name not in daemon.features]
    if not missing:
        return None
    return FileDaemonError(
        "INCOMPATIBLE",
        f"the file-daemon serving {files.commands} (version {daemon.version}) cannot "
        f"{' or '.join(_FEATURES[name] for name in missing)}: upgrade it to the version of this client; nothing was written",
    )


def _file_mode(value: object) -> int:
    """The published ``fileMode`` (PROTOCOL.md §3): an octal string of a mode the owner may read
    and write and nobody else write; anything else reads as 0600."""
    if not isinstance(value, str) or re.fullmatch(r"0?[0-7]{3}", value) is None:
        return FILE_MODE
    mode = int(value, 8)
    return mode if mode & 0o600 == 0o600 and mode & 0o002 == 0 else FILE_MODE



def _serves(daemon: _Daemon, files: _Files) -> Optional[FileDaemonError]:
    """Why a submitter on ``files`` must not hand commands to ``daemon``, or None (design A)."""
    if _as_int(daemon.v) != PROTOCOL_VERSION:
        return FileDaemonError(
            "INCOMPATIBLE",
            f"the file-daemon serving {files.commands} speaks protocol version {json.dumps(daemon.v)}; this client speaks "
            f"version {PROTOCOL_VERSION}: install the same version of file-daemon on both sides",
        )
    if not _same_path(daemon.results, files.results) or not _same_path(daemon.commands, files.commands):
        return FileDaemonError(
            "BAD_OPTION",
            f"the file-daemon serving {daemon.commands} writes its results to {daemon.results}, but this submitter "
            f"reads {files.results}: use the same commands and results files as the daemon",
        )
    return None


def _same_path(a: str, b: str) -> bool:
    """The same file: the same path, or the same basename in the same directory through realpath."""
    if a == b:
        return True
    try:
        return os.path.basename(a) == os.path.basename(b) and os.path.realpath(os.path.dirname(a)) == os.path.realpath(os.path.dirname(b))
    except (OSError, ValueError):
        return False


# --- the taken trace (C.taken) ---------------------------------------------------------------

#: Where the trace stood when we placed: (epoch, seq of its last entry or 0); None = no trace.
_Anchor = Optional[Tuple[str, int]]
_TRACE_HEADER = re.compile(r"trace ([0-9a-f]{16})\Z")
_TRACE_ENTRY = re.compile(r"([1-9][0-9]{0,14}) (\S+)\Z")


@dataclass(frozen=True)
class _Trace:
    epoch: str
    entries: List[Tuple[int, str]]
    """(seq, id), oldest first, seq contiguous."""


def _parse_trace(content: bytes) -> Optional[_Trace]:
    """``C.taken`` (design C): line 1 ``trace <epoch>``, then ``<seq> <id>`` lines with contiguous
    seq. Anything else (missing, empty, damaged) is None: no trace, it proves nothing."""
    try:
        lines = content.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return None
    if lines[-1] == "":
        lines.pop()
    header = _TRACE_HEADER.match(lines[0]) if lines else None
    if header is None:
        return None
    entries: List[Tuple[int, str]] = []
    for line in lines[1:]:
        match = _TRACE_ENTRY.match(line)
        if match is None or not _is_id(match.group(2)):
            return None
        seq = int(match.group(1))
        if entries and seq != entries[-1][0] + 1:
            return None
        entries.append((seq, match.group(2)))
    return _Trace(header.group(1), entries)


def _anchor_of(trace: Optional[_Trace]) -> _Anchor:
    if trace is None:
        return None
    return (trace.epoch, trace.entries[-1][0] if trace.entries else 0)


def _provably_not_taken(anchor: _Anchor, trace: Optional[_Trace]) -> bool:
    """Design C rule 2: the trace still shows every take since we placed (same epoch, nothing dropped since)."""
    if anchor is None or trace is None or trace.epoch != anchor[0]:
        return False
    if not trace.entries:
        return anchor[1] == 0
    return trace.entries[0][0] <= anchor[1] + 1


# --- locks -----------------------------------------------------------------------------------

#: What a lock directory was when we made it: (st_ino, st_mtime_ns). Another mark means another lock.
_Mark = Tuple[int, int]
#: How soon a busy lock is tried again, in seconds (doubling up to sleep_time).
BUSY_RETRY = 0.002
_BUSY = "busy"


class _LockLost(Exception):
    """A lock we took is gone or is another directory now (a stale takeover): write nothing more."""


def _lock_mark(lock: str) -> Optional[_Mark]:
    try:
        stat = os.stat(lock)
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns)


def _try_lock(path: str, stale: float) -> Optional[_Mark]:
    """One attempt at the lock on ``path`` (the directory ``path.lock``); a stale one is taken over.
    Returns the lock directory's mark when we hold it, None when it is busy."""
    lock = path + ".lock"
    if _mkdir_lock(lock):
        return _lock_mark(lock)
    state = _lock_state(lock, stale)
    if state == "held":
        return None
    if state == "stale":
        try:
            os.rmdir(lock)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise _fs_error(err, lock, "remove the stale lock") from err
    # "gone": released between our mkdir and stat; never rmdir then, it may be someone's new lock.
    return _lock_mark(lock) if _mkdir_lock(lock) else None


def _mkdir_lock(lock: str) -> bool:
    try:
        os.mkdir(lock, LOCK_MODE)
    except FileExistsError:
        return False
    except OSError as err:
        raise _fs_error(err, lock, "lock") from err
    return True


def _lock_state(lock: str, stale: float) -> str:
    """What the lock directory is: "stale" when its mtime is more than ``stale`` s from now, in
    the past or (a clock that jumped back) in the future; "gone" when it no longer exists; else "held"."""
    try:
        mtime = os.stat(lock).st_mtime
    except FileNotFoundError:
        return "gone"
    except OSError as err:
        raise _fs_error(err, lock, "check the lock") from err
    return "stale" if abs(time.time() - mtime) > stale else "held"


def _unlock(path: str, mark: Optional[_Mark]) -> None:
    """Releases the lock on ``path`` if it is still the one we made (never someone else's)."""
    lock = path + ".lock"
    if mark is None or _lock_mark(lock) != mark:
        return  # taken over as stale by someone else: not ours to remove
    try:
        os.rmdir(lock)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise _fs_error(err, lock, "release the lock") from err


class _Held:
    """Both locks of a channel, held: every write first checks that they are still ours (design F)."""

    def __init__(self, channel: _Channel, marks: Dict[str, _Mark], file_mode: int = FILE_MODE) -> None:
        self.channel = channel
        self.marks = marks
        self.file_mode = file_mode

    def check(self) -> None:
        for path, mark in self.marks.items():
            if _lock_mark(path + ".lock") != mark:
                raise _LockLost()

    def write(self, path: str, data: bytes) -> None:
        self.check()
        _write_atomic(path, data, self.file_mode)


_T = TypeVar("_T")


def _locked(channel: _Channel, stale: float, action: Callable[[_Held], _T], file_mode: int = FILE_MODE) -> Union[_T, str]:
    """Runs ``action`` holding the commands lock, then the results lock. Returns "busy" (holding
    nothing) when either is busy, or when one was lost to a stale takeover while we held it."""
    commands_mark = _try_lock(channel.commands, stale)
    if commands_mark is None:
        return _BUSY
    try:
        results_mark = _try_lock(channel.results, stale)
        if results_mark is None:
            return _BUSY
        try:
            return action(_Held(channel, {channel.commands: commands_mark, channel.results: results_mark}, file_mode))
        except _LockLost:
            return _BUSY
        finally:
            _unlock(channel.results, results_mark)
    finally:
        _unlock(channel.commands, commands_mark)


# --- following a command's output (R.stream) ------------------------------------------------

_STREAM_HEADER = re.compile(r"stream (\S+) ([1-9][0-9]{0,15})\Z")
_STREAM_RECORD = re.compile(r"([1-9][0-9]{0,15}) ([oe])(\+?) ", re.ASCII)
#: Bytes read from a stream file per call of os.read.
_SLICE_BYTES = 64 * 1024


class _OpenStream:
    """A stream file the follower holds open, and where it is in it."""

    def __init__(self, fd: int, key: Tuple[int, int]) -> None:
        self.fd = fd
        self.key = key
        """(st_ino, st_ctime_ns): a file renamed into place later is another file, even on a reused inode."""
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.rest = ""
        """Text after the last newline read so far."""
        self.header = True
        """Its first line, the header, is still to be read."""
        self.closed = False


class _StreamFollower:
    """The submitter's side of ``R.stream`` (PROTOCOL.md section 5, "Follow"): reads it as the
    daemon appends, tells the daemon which file it holds (``R.stream.read``), moves to the next
    file when a full one is replaced, and counts what it did not get from the gaps in ``seq``."""

    def __init__(self, channel: _Channel, command_id: str, on_line: Callable[[OutputLine], object], file_mode: int = FILE_MODE) -> None:
        self.file_mode = file_mode
        """The daemon's published mode, for the mark (PROTOCOL.md section 3)."""
        self.path = channel.results + ".stream"
        self.read_mark = channel.results + ".stream.read"
        self.id = command_id
        self.on_line = on_line
        self.current: Optional[_OpenStream] = None
        self.latest: Optional[_OpenStream] = None
        """The newest file, opened under the locks at collect just before the stream file was removed."""
        self.foreign: Optional[Tuple[int, int]] = None
        """A file whose header names another command (a leftover): not opened again."""
        self.next = 1
        self.missed = 0
        self.muted = False
        self.detached = False
        """The stream file and the mark are removed: nothing more is appended, nobody reads a new mark."""
        self.error: Optional[Exception] = None
        """What ``on_line`` raised: no more calls; raised once the result is collected."""

    def poll(self) -> None:
        """Reads everything that has arrived, moving on to newer files as the daemon replaces them."""
        while True:
            if self.current is None:
                self.current = self._newer()
                if self.current is None:
                    return
            current = self.current
            self._read_to_end(current)
            if current.closed:
                self.current = None  # another command's file: look for ours
                continue
            newer = self._newer()
            if newer is None:
                return
            # The daemon writes nothing to a file it has replaced: all it wrote there is there now.
            self._read_to_end(current)
            self._close(current)
            self.current = newer

    def detach(self, held: _Held) -> None:
        """At collect, under the locks: opens the newest stream file if it is not the one being
        read, then removes the stream file and the mark (the command has ended: nothing more will
        be appended), so that the rest is read after the locks are released."""
        newest = self._open()
        if newest is not None and (self.current is None or newest.key != self.current.key):
            self.latest = newest
        elif newest is not None:
            self._close(newest)
        held.check()
        self.detached = True
        for path in (self.path, self.read_mark):
            _remove_quietly(path)

    def finish(self, streamed: Optional[int]) -> None:
        """After collect: reads all that is left, then counts the lines of ``streamed`` never received."""
        self.poll()
        self.close()
        received = self.next - 1
        if streamed is not None and received < streamed:
            self.missed += streamed - received

    def close(self) -> None:
        for file in (self.current, self.latest):
            if file is not None:
                self._close(file)
        self.current = self.latest = None

    def _newer(self) -> Optional[_OpenStream]:
        """A newer file than the current one: the one opened at collect, or the stream file once replaced."""
        latest, self.latest = self.latest, None
        if latest is not None:
            return latest
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        key = (stat.st_ino, stat.st_ctime_ns)
        if key == self.foreign or (self.current is not None and stat.st_ino == self.current.key[0]):
            return None
        opened = self._open()
        if opened is not None and self.current is not None and opened.key[0] == self.current.key[0]:
            self._close(opened)
            return None
        return opened

    def _open(self) -> Optional[_OpenStream]:
        try:
            # Not through a symbolic link, and no wait on a FIFO a third party put there.
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return None
        stat = os.fstat(fd)
        if not S_ISREG(stat.st_mode):
            os.close(fd)
            return None
        return _OpenStream(fd, (stat.st_ino, stat.st_ctime_ns))

    @staticmethod
    def _close(file: _OpenStream) -> None:
        if not file.closed:
            file.closed = True
            with contextlib.suppress(OSError):
                os.close(file.fd)

    def _read_to_end(self, file: _OpenStream) -> None:
        while not file.closed:
            try:
                data = os.read(file.fd, _SLICE_BYTES)
            except OSError:
                return
            if not data:
                return
            self._consume(file, file.decoder.decode(data))

    def _consume(self, file: _OpenStream, text: str) -> None:
        lines = (file.rest + text).split("\n")
        file.rest = lines.pop()
        for line in lines:
            if line.endswith("\r"):
                line = line[:-1]
            if file.header:
                if not self._take_header(file, line):
                    return
                continue
            match = _STREAM_RECORD.match(line)
            # Not a record (a damaged file): nothing to attribute it to; the numbers show the gap.
            if match is None:
                continue
            seq = int(match.group(1))
            if seq < self.next or seq > 2**53 - 1:
                continue
            missed = seq - self.next
            self.missed += missed
            self.next = seq + 1
            stream = "stdout" if match.group(2) == "o" else "stderr"
            self._deliver(OutputLine(seq, stream, line[match.end() :], match.group(3) == "+", missed))

    def _take_header(self, file: _OpenStream, line: str) -> bool:
        """The file's first line: ours (the daemon is told we hold it), or another command's (dropped)."""
        header = _STREAM_HEADER.match(line)
        if header is None or header.group(1) != self.id:
            self.foreign = file.key
            self._close(file)
            return False
        file.header = False
        if self.detached:
            return True  # a file first read after collect: a mark now would be left behind
        with contextlib.suppress(FileDaemonError):
            # Should this fail, the daemon waits its bound for this file and goes on: only lines could be lost.
            _write_atomic(self.read_mark, f"{self.id} {header.group(2)}\n".encode("ascii"), self.file_mode)
        return True

    def _deliver(self, line: OutputLine) -> None:
        if self.muted:
            return
        try:
            self.on_line(line)
        except Exception as err:  # noqa: BLE001 - handed back to the caller once the result is in
            self.error = err
            self.muted = True


# --- the submission --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    sleep: float
    timeout_ms: int
    capture: bool
    daemon_wait: float
    # How long a running command's vanished daemon is waited for (0 unless daemon_wait was given).
    running_wait: float
    stale: Optional[float]


class _Vanished(Exception):
    """Our pending command disappeared, provably before the daemon took it (design C rule 2)."""


class _Submission:
    def __init__(self, files: _Files, options: _Options, extras: Optional[_Extras] = None) -> None:
        self.files = files
        self.options = options
        self.extras = extras if extras is not None else _Extras(None, None, None, None)
        self.follower: Optional[_StreamFollower] = None
        """Reads the command's output while it is waited for (``on_line``)."""
        self.id = str(uuid.uuid4())
        self.channel: Optional[_Channel] = None
        self.anchor: _Anchor = None
        self.dead_since: Optional[float] = None
        self.stale = options.stale if options.stale is not None else DEFAULT_STALE
        self.file_mode = FILE_MODE
        """The daemon's published file mode: every file this submitter creates gets it."""
        self.pause = BUSY_RETRY
        """The next wait between looks: short while the channel is moving, doubling up to sleep_time."""
        self.busy_pause = BUSY_RETRY
        """The next wait after a busy lock (design J): 2 ms after a success, doubling up to sleep_time."""
        self.busy = False

    def run(self, command: str) -> CommandResult:
        record = _encode_command(command, self.id, self.options.timeout_ms, self.options.capture, self.extras.line2())
        try:
            self._check_directories()
            result = self._place_and_wait(record)
            if self.follower is not None:
                # Every line is handed on before the result, also for a killed or timed-out command.
                self.follower.finish(result.streamed)
                result = dataclasses.replace(result, missed=self.follower.missed)
        except KeyboardInterrupt:
            if self.follower is not None:
                self.follower.muted = True
            with contextlib.suppress(FileDaemonError):
                self._cancel()
            raise
        except FileDaemonError as err:
            if err.code not in _SETTLED:
                self._withdraw_quietly()
            if self.follower is not None:
                self.follower.finish(None)  # what the command wrote before its result went missing
            raise
        except BaseException:
            self._withdraw_quietly()
            raise
        finally:
            if self.follower is not None:
                self.follower.close()
        if self.follower is not None and self.follower.error is not None:
            raise self.follower.error
        return _checked(result)

    def _place_and_wait(self, record: bytes) -> CommandResult:
        on_line = self.extras.on_line
        for _ in range(MAX_REPLACEMENTS + 1):
            channel = self._place(record)
            self.follower = None if on_line is None else _StreamFollower(channel, self.id, on_line, self.file_mode)
            try:
                return self._wait(channel)
            except _Vanished:
                if self.follower is not None:
                    self.follower.close()
                    self.follower = None
        raise FileDaemonError(
            "LOST",
            f"the command vanished from {self.files.commands} {MAX_REPLACEMENTS + 1} times before it started "
            "(another program is writing these files?); it did not run",
        )

    def _locked(self, channel: _Channel, action: Callable[[_Held], _T]) -> Union[_T, str]:
        """``_locked`` with our staleness; a busy lock is tried again within ms (design J)."""
        outcome = _locked(channel, self.stale, action, self.file_mode)
        if outcome == _BUSY:
            self.busy = True
        else:
            self.busy_pause = BUSY_RETRY
        return outcome

    def _sleep(self) -> None:
        """Waits before the next look: after a busy lock 2 ms (doubling while it stays busy), else
        ``pause`` (short while the channel is moving), both doubling up to sleep_time."""
        # While following output, look at least every FOLLOW_SLEEP: lines are read on every wake.
        longest = self.options.sleep if self.follower is None else min(self.options.sleep, FOLLOW_SLEEP)
        if self.busy:
            time.sleep(min(self.busy_pause, longest))
            self.busy_pause = min(self.busy_pause * 2, longest)
            self.busy = False
            return
        time.sleep(min(self.pause, longest))
        self.pause = min(self.pause * 2, longest)

    # placing

    def _place(self, record: bytes) -> _Channel:
        """Writes the command into the first free channel, waiting for one to free up."""
        offset = random.randrange(64)
        seen: Dict[int, Tuple[bytes, bytes]] = {}
        while True:
            daemon = self._require_daemon()
            if daemon is not None:
                for i in range(daemon.channels):
                    channel = self.files.channel((offset + i) % daemon.channels)
                    if self._try_place(channel, record, seen) is True:
                        return channel
            self._sleep()

    def _try_place(self, channel: _Channel, record: bytes, seen: Dict[int, Tuple[bytes, bytes]]) -> Union[bool, str]:
        commands, results = _read(channel.commands), _read(channel.results)
        if seen.get(channel.index, (commands, results)) != (commands, results):
            # The channel is moving (a command came, started or ended): it may free up within ms.
            # Look again soon rather than after sleep_time (the JavaScript client is woken by inotify).
            self.pause = BUSY_RETRY
        seen[channel.index] = (commands, results)
        if not _commands_free(commands):
            return False
        if not _is_blank(results):
            previous = _decode_results(results)
            if previous is None or previous.state != "done" or not _owner_gone(previous):
                return False  # a result still to be collected (a hint: no need to lock)
        self.channel = channel  # from here on, cleanup looks for our id on this channel
        return self._locked(channel, lambda held: self._place_locked(held, record))

    def _place_locked(self, held: _Held, record: bytes) -> bool:
        channel = held.channel
        commands, results, taken = _read(channel.commands), _read(channel.results), _read(channel.taken)
        if not _commands_free(commands):
            return False
        if not _is_blank(results):
            previous = _decode_results(results)
            # A finished result whose submitter has died will never be collected: clear it.
            if previous is None or previous.state != "done" or not _owner_gone(previous):
                return False
            held.write(channel.results, b"")
        held.write(channel.commands, record)
        self.anchor = _anchor_of(_parse_trace(taken))
        self.pause = BUSY_RETRY  # a command often ends within ms: look soon, then less often
        return True

    def _require_daemon(self) -> Optional[_Daemon]:
        daemon = _live_daemon(self.files)
        if daemon is not None:
            mismatch = _serves(daemon, self.files) or _unsupported(daemon, self.extras.features, self.files)
            if mismatch is not None:
                raise mismatch
            self.dead_since = None
            self.file_mode = daemon.file_mode
            if self.options.stale is None:
                self.stale = max(MIN_STALE, daemon.stale if daemon.stale is not None else DEFAULT_STALE)
            return daemon
        if self._excused(self.options.daemon_wait):
            return None
        raise FileDaemonError(
            "DAEMON_NOT_RUNNING",
            f"no file-daemon serves {self.files.commands} (waited {self.options.daemon_wait:g} s for one); nothing was "
            f"written and the command did not run. Start it with: file-daemon {self.files.results} {self.files.commands} {self.options.sleep:g}",
        )

    def _excused(self, wait: float) -> bool:
        """Called when no daemon is alive: True while it has been gone for less than ``wait``."""
        now = time.monotonic()
        if self.dead_since is None:
            self.dead_since = now
        return now - self.dead_since < wait

    def _daemon_alive_or_excused(self, wait: float) -> bool:
        if _live_daemon(self.files) is not None:
            self.dead_since = None
            return True
        return self._excused(wait)

    def _check_directories(self) -> None:
        """A missing or unusable directory fails at once, before any wait for a daemon (design B)."""
        for directory in self.files.directories:
            try:
                os.stat(directory)
            except OSError as err:
                raise _fs_error(err, directory, "use the directory") from err
            if not os.path.isdir(directory):
                raise FileDaemonError("NO_DIRECTORY", f"cannot use {directory}: it is not a directory; fix the path")

    # waiting and collecting

    def _wait(self, channel: _Channel) -> CommandResult:
        """Waits for our result on ``channel``; raises _Vanished if the command provably disappeared unstarted."""
        started = False
        while True:
            if self.follower is not None:
                self.follower.poll()
            hint = _decode_results(_read(channel.results))
            look = True
            if hint is not None and hint.id == self.id and hint.state == "running":
                started = True
                look = not self._daemon_alive_or_excused(self.options.running_wait)
            elif hint is None and not started and _pending_id(_read(channel.commands)) == self.id:
                # Still pending (a hint): no need to lock while the daemon has yet to take it.
                look = not self._daemon_alive_or_excused(self.options.daemon_wait)
            if look:
                was_started = started
                seen = self._locked(channel, lambda held: self._look_locked(held, was_started))
                if isinstance(seen, CommandResult):
                    return seen
                if seen == "running":
                    started = True
            self._sleep()

    def _look_locked(self, held: _Held, started: bool) -> Union[CommandResult, str]:
        """One look under both locks (read in the protocol's order: commands, results, trace):
        the result, or "pending" or "running"; raises when there is nothing more to wait for."""
        channel = held.channel
        commands, results_raw, taken = _read(channel.commands), _read(channel.results), _read(channel.taken)
        pending = _pending_id(commands) == self.id
        results = _decode_results(results_raw)
        if results is not None and results.id == self.id:
            if results.state == "done":
                if self.follower is not None:
                    self.follower.detach(held)  # the stream files are the follower's to remove
                if pending:
                    held.write(channel.commands, b"")  # a duplicate placement of ours (design E)
                held.write(channel.results, b"")
                return _result_of(results, channel.index)
            seen = "running"
        elif pending:
            seen = "pending"
        else:
            held.check()  # act only on what we read while the locks were ours
            self._gone(channel, taken, started)
        if self._daemon_alive_or_excused(self.options.daemon_wait if seen == "pending" else self.options.running_wait):
            return seen
        if seen == "pending":
            held.write(channel.commands, b"")
            held.check()  # "withdrawn, did not run" only while still ours (design F)
            raise FileDaemonError(
                "DAEMON_NOT_RUNNING",
                f"no file-daemon has served {self.files.commands} for {self.options.daemon_wait:g} s; the command was withdrawn "
                f"and did not run. Start the daemon (file-daemon {self.files.results} {self.files.commands} {self.options.sleep:g}) and submit again",
            )
        # Nobody will write this result now; leave the channel free for the next daemon.
        held.write(channel.results, b"")
        raise FileDaemonError(
            "DAEMON_DIED",
            f"the file-daemon serving {self.files.commands} died while the command ran; "
            "its outcome is unknown and it will not be run again. Restart the daemon and check its log",
        )

    def _gone(self, channel: _Channel, taken: bytes, started: bool) -> None:
        """Neither file holds our id (design C): raises INTERRUPTED, or _Vanished when provably not taken."""
        trace = _parse_trace(taken)
        in_trace = trace is not None and any(entry[1] == self.id for entry in trace.entries)
        if started or in_trace:
            raise FileDaemonError(
                "INTERRUPTED",
                f"the command was taken by the daemon but its result disappeared from {channel.results} "
                "(taken by another reader?); its outcome is unknown; it is not run again",
            )
        if _provably_not_taken(self.anchor, trace):
            raise _Vanished()
        raise FileDaemonError(
            "INTERRUPTED",
            f"the command vanished from {channel.commands} and the daemon's trace {channel.taken} cannot show whether "
            "it was taken (missing, damaged, replaced or rotated); its outcome is unknown; it is not run again",
        )

    # giving up

    def _cancel(self) -> None:
        """After Ctrl-C: withdraw our pending command, or kill our running one and wait for its result."""
        channel = self.channel
        if channel is None:
            return
        state = self._withdraw(channel)
        if state == _BUSY:
            # Never "did not run" without having withdrawn it: say what we do not know.
            print(f"file_daemon: interrupted, but {channel.commands} stayed locked, so the command could not be withdrawn; it may still run", file=sys.stderr)
        if state != "running":
            return
        _write_atomic(channel.kill, f"{self.id}\n".encode("utf-8"), self.file_mode)
        with contextlib.suppress(FileDaemonError, _Vanished):
            self._wait(channel)

    def _withdraw_quietly(self) -> None:
        if self.channel is None:
            return
        with contextlib.suppress(FileDaemonError):
            self._withdraw(self.channel)

    def _withdraw(self, channel: _Channel) -> str:
        """Empties the commands file if it still holds our command. Returns what was found:
        "withdrawn", "running", "done" or "gone" (or "busy" when the locks stayed taken)."""
        # A lock held by a frozen party goes stale `stale` after its last refresh: wait that long, twice over.
        deadline = time.monotonic() + 2 * self.stale + self.options.sleep
        while True:
            state = self._locked(channel, self._withdraw_locked)
            if state != _BUSY or time.monotonic() >= deadline:
                return state
            self._sleep()

    def _withdraw_locked(self, held: _Held) -> str:
        channel = held.channel
        pending = _pending_id(_read(channel.commands)) == self.id
        results = _decode_results(_read(channel.results))
        ours = results is not None and results.id == self.id
        if ours and results is not None and results.state == "done":
            if self.follower is not None:
                self.follower.detach(held)
            if pending:
                held.write(channel.commands, b"")
            held.write(channel.results, b"")
            return "done"
        if pending:
            held.write(channel.commands, b"")
            held.check()
            return "withdrawn"
        return "running" if ours else "gone"


def _checked(result: CommandResult) -> CommandResult:
    """Returns a result that ended by itself; raises for timeout, killed, interrupted, failed, refused."""
    code = _FAILURES.get(result.status)
    if code is None:
        return result
    reason = result.message or f"the command ended with status {result.status}"
    raise FileDaemonError(code, f"{reason} ({_ADVICE[result.status]})", result)


# --- command line ----------------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    """``python3 file_daemon.py COMMANDS RESULTS SLEEP_TIME [options] -- COMMAND...``"""
    parser = argparse.ArgumentParser(
        prog="file_daemon.py",
        description="Run COMMAND through the file-daemon serving COMMANDS/RESULTS and exit with its "
        "exit status (128+N if signal N ended it; 124 if it timed out; 125 if the file-daemon itself failed).",
    )
    parser.add_argument("commands", help="the commands file the daemon reads")
    parser.add_argument("results", help="the results file the daemon writes")
    parser.add_argument("sleep_time", type=float, help="seconds between looks at the files, e.g. 0.5")
    parser.add_argument("command", nargs="+", help="the shell command (put -- before it)")
    parser.add_argument("--timeout", type=float, default=0, help="kill the command after this many seconds")
    parser.add_argument("--output", action="store_true", help="print the command's stdout and stderr")
    parser.add_argument("--wait", type=float, default=None, help="seconds to wait for a daemon to appear (default 5; 0 fails at once)")
    parser.add_argument("--follow", "-f", action="store_true", help="print each line of its stdout and stderr as it comes")
    parser.add_argument("--cwd", default=None, help="run it in this directory (relative to here)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="set a variable for it (repeatable)")
    parser.add_argument("--stdin", default=None, metavar="FILE", help="write FILE ('-': this program's standard input, up to 1 MiB) to its standard input")
    args = parser.parse_args(argv)
    if args.follow and args.output:
        parser.error("--follow prints the output as it comes and --output once it has ended: use one of them")
    env: Optional[Dict[str, str]] = None
    for pair in args.env:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            parser.error(f"--env expects NAME=VALUE, got {pair!r}")
        env = {**(env or {}), name: value}
    stdin: Optional[bytes] = None
    if args.stdin is not None:
        try:
            with (open(sys.stdin.fileno(), "rb", closefd=False) if args.stdin == "-" else open(args.stdin, "rb")) as source:
                stdin = source.read(MAX_STDIN_BYTES + 1)
        except OSError as err:
            parser.error(f"--stdin {args.stdin}: cannot read it ({err.strerror})")
    try:
        result = submit_command(
            " ".join(args.command), args.commands, args.results, args.sleep_time,
            timeout=args.timeout, capture=args.output, daemon_wait=args.wait,
            cwd=None if args.cwd is None else os.path.abspath(args.cwd), env=env, stdin=stdin,
            on_line=_print_line if args.follow else None,
        )
    except FileDaemonError as err:
        print(f"file_daemon: {err} [{err.code}]", file=sys.stderr)
        if err.result is None:
            return 125
        _print_output(err.result)
        if err.code == "TIMEOUT":
            return 124  # as timeout(1)
        return err.result.return_code if err.result.return_code >= 0 else 125
    except KeyboardInterrupt:
        return 130
    _print_output(result)
    return result.return_code if result.return_code >= 0 else 125


def _print_line(line: OutputLine) -> None:
    """A followed line, to the stream it came from; a part of a long line without its line break."""
    out = sys.stdout if line.stream == "stdout" else sys.stderr
    out.write(line.text if line.partial else line.text + "\n")
    out.flush()


def _print_output(result: CommandResult) -> None:
    if result.stdout is not None:
        sys.stdout.buffer.write(result.stdout)
        sys.stdout.flush()
    if result.stderr is not None:
        sys.stderr.buffer.write(result.stderr)
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
