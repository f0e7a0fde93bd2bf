"""The protocol test vectors (docs/protocol-vectors.json, issue 11) against python/file_daemon.py.

The same file is read by test/protocol/vectors.test.ts against the TypeScript functions; each
group says which parties check it. Run: python3 -m unittest discover -s test/python -p 'test_*.py'
(test/protocol/vectors.test.ts runs it too, so npm test covers it). Standard library only.
"""

import base64
import json
import os
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import file_daemon as fd  # noqa: E402

with open(ROOT / "docs" / "protocol-vectors.json", encoding="utf-8") as handle:
    GROUPS = {group["name"]: group for group in json.load(handle)["groups"]}


def contents(value):
    """A case's file contents as bytes: {"text": ...} (UTF-8) or {"base64": ...}."""
    return base64.b64decode(value["base64"]) if "base64" in value else value["text"].encode("utf-8")


def python_cases(name):
    group = GROUPS[name]
    assert "python" in group["parties"], f"{name} is not checked by Python"
    return group["cases"]


class _Dir:
    """A temporary directory with a channel's files (COMMANDS, RESULTS, COMMANDS.taken)."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="file-daemon-vectors-")
        self.files = fd._Files(os.path.join(self.path, "commands"), os.path.join(self.path, "results"))
        self.channel = self.files.channel(0)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)

    def write(self, path, data):
        with open(path, "wb") as handle:
            handle.write(data)

    def read(self, path):
        return fd._read(path)


class Vectors(unittest.TestCase):
    def test_parties(self):
        """Every group names its parties and functions; the ones Python skips say why."""
        for name, group in GROUPS.items():
            self.assertTrue(group["description"] and group["functions"] and group["parties"], name)
            if "python" not in group["parties"]:
                self.assertTrue(group.get("python_lacks") or "none" in group["functions"].get("python", "none"), name)

    def test_decode_commands(self):
        for case in python_cases("decodeCommands"):
            with self.subTest(case["name"]):
                data = contents(case["contents"])
                self.assertEqual(fd._commands_free(data), case["python"]["_commands_free"])
                self.assertEqual(fd._pending_id(data), case["python"]["_pending_id"])
                # Where Python is not noted to differ, it agrees with the TypeScript decoder.
                expected = case["expected"]
                if "disagreement" not in case:
                    agrees = expected["id"] if expected["kind"] == "pending" and not expected.get("legacy") else None
                    if expected["kind"] == "refusable" and expected.get("reason_contains", "").startswith("protocol version"):
                        agrees = None  # not v 1: Python names nothing pending either
                    self.assertEqual(fd._pending_id(data), agrees)

    def test_decode_results(self):
        for case in python_cases("decodeResults"):
            with self.subTest(case["name"]):
                record = fd._decode_results(contents(case["contents"]))
                want = case["python"]["_decode_results"]
                self.assertEqual(None if record is None else {"state": record.state, "id": record.id}, want)
                expected = case["expected"]
                if record is None or expected["kind"] not in ("running", "done"):
                    continue
                self.assertEqual((record.pid, record.pidns), (expected["pid"], expected["pidns"]))
                if record.state == "done":
                    result = fd._result_of(record, 0)
                    got = {
                        "status": result.status, "code": result.code, "signal": result.signal, "message": result.message,
                        "stdoutTruncated": result.stdout_truncated, "stderrTruncated": result.stderr_truncated,
                        "durationMs": result.duration_ms,
                    }
                    self.assertEqual(got, {key: expected[key] for key in got})
                    for stream in ("stdout", "stderr"):
                        captured = getattr(result, stream)
                        self.assertEqual(None if captured is None else base64.b64encode(captured).decode(), expected.get(stream + "_base64"))

    def test_failure_codes(self):
        for case in python_cases("FAILURE_CODES"):
            with self.subTest(case["name"]):
                self.assertEqual(fd._FAILURES.get(case["status"]), case["expected"])

    def test_return_code_line(self):
        for case in python_cases("returnCodeLine"):
            with self.subTest(case["name"]):
                result = fd.CommandResult(case["code"], case["signal"], case["status"], None, None, None, False, False, 0, "c-1", 0)
                self.assertEqual(result.return_code, case["expected"])

    def test_decode_trace(self):
        for case in python_cases("decodeTrace"):
            with self.subTest(case["name"]):
                trace = fd._parse_trace(contents(case["contents"]))
                want = case["expected"]
                self.assertEqual(None if trace is None else {"epoch": trace.epoch, "entries": [list(e) for e in trace.entries]}, want)
                anchor = fd._anchor_of(trace)
                self.assertEqual(anchor, None if want is None else (want["epoch"], want["entries"][-1][0] if want["entries"] else 0))

    def test_covers_since(self):
        for case in python_cases("coversSince"):
            with self.subTest(case["name"]):
                anchor = None if case["anchor"] is None else (case["anchor"]["epoch"], case["anchor"]["seq"])
                self.assertEqual(fd._provably_not_taken(anchor, fd._parse_trace(contents(case["contents"]))), case["expected"])

    def test_decode_daemon_info(self):
        for case in python_cases("decodeDaemonInfo"):
            with self.subTest(case["name"]), _Dir() as d:
                d.write(d.files.info, contents(case["contents"]))
                os.mkdir(d.files.daemon_lock)
                daemon = fd._live_daemon(d.files)
                want = case["expected"]
                if want is None:
                    self.assertIsNone(daemon)
                    continue
                self.assertIsNotNone(daemon)
                stale_ms = 10_000 if daemon.stale is None else round(daemon.stale * 1000)
                got = {"v": daemon.v, "commands": daemon.commands, "results": daemon.results, "pid": daemon.pid, "channels": daemon.channels, "stale": stale_ms, "fileMode": daemon.file_mode}
                self.assertEqual(got, {key: want[key] for key in got})

    def test_serves_files(self):
        for case in python_cases("servesFiles"):
            with self.subTest(case["name"]):
                info = case["info"]
                daemon = fd._Daemon(1, 1, info.get("v"), info["commands"], info["results"], None)
                files = fd._Files(case["files"]["commands"], case["files"]["results"])
                error = fd._serves(daemon, files)
                want = case.get("python", {}).get("_serves", case["expected"])
                self.assertEqual(None if error is None else error.code, want)

    def test_look(self):
        for case in python_cases("look"):
            python = case["python"]
            if "skip" in python:
                continue
            with self.subTest(case["name"]), _Dir() as d:
                self._look(case, python, d)

    def _look(self, case, python, d):
        state, ctx = case["state"], case["context"]
        channel = d.channel
        before = {}
        for key, path in (("commands", channel.commands), ("results", channel.results), ("trace", channel.taken)):
            before[key] = contents(state[key])
            d.write(path, before[key])
        options = fd._Options(sleep=0.05, timeout_ms=0, capture=False, daemon_wait=5.0, running_wait=0.0, stale=None)
        sub = fd._Submission(d.files, options)
        sub.id = ctx["id"]
        sub.anchor = None if ctx["anchor"] is None else (ctx["anchor"]["epoch"], ctx["anchor"]["seq"])
        # daemonExpected: alive or gone for less than daemon_wait; daemonAlive: the same with running_wait (0).
        sub._daemon_alive_or_excused = lambda wait: ctx["daemonExpected"] if wait == options.daemon_wait else ctx["daemonAlive"]
        marks = {path: fd._try_lock(path, 10.0) for path in (channel.commands, channel.results)}
        self.assertTrue(all(marks.values()))
        held = fd._Held(channel, marks)
        try:
            outcome = sub._look_locked(held, ctx["seenRunning"])
        except fd.FileDaemonError as err:
            outcome = ("raises", err.code)
        except fd._Vanished:
            outcome = ("raises", "_Vanished")
        finally:
            for path, mark in marks.items():
                fd._unlock(path, mark)
        if "raises" in python:
            self.assertEqual(outcome, ("raises", python["raises"]))
        elif python["returns"] == "result":
            self.assertIsInstance(outcome, fd.CommandResult)
            self.assertEqual(outcome.status, python["status"])
        else:
            self.assertEqual(outcome, python["returns"])
        writes = case["expected"]["writes"]
        for key, path in (("commands", channel.commands), ("results", channel.results), ("trace", channel.taken)):
            after = d.read(path)
            if key in writes:
                self.assertEqual(after, writes[key].encode("utf-8"), f"{key} written")
            else:
                self.assertEqual(after, before[key], f"{key} unchanged")


if __name__ == "__main__":
    unittest.main()
