// The default directory of a config node with empty paths: where it is (XDG_RUNTIME_DIR,
// /dev/shm, the temp directory, or the admin's), and that it is made private and that one
// someone else prepared is refused. /dev/shm and XDG_RUNTIME_DIR are stand-ins made per test:
// the real /dev/shm/file-daemon-<uid> belongs to whatever Node-RED runs on this machine.
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, rmdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { FileDaemonError } from "../../src/protocol/errors";
import { ensureDefaultDirectory, resolveDefaultDirectory } from "../../src/shared/default-directory";
import { IS_ROOT, NOBODY, useTempDir } from "./support";

const UID = process.getuid?.() ?? 0;

function mode(file: string): string {
  return (lstatSync(file).mode & 0o7777).toString(8).padStart(4, "0");
}

/** Runs `make` and returns the FileDaemonError it throws (failing when it throws none, or another error). */
function refusal(make: () => unknown): FileDaemonError {
  try {
    make();
  } catch (err) {
    assert.ok(err instanceof FileDaemonError, `not a FileDaemonError: ${String(err)}`);
    return err;
  }
  assert.fail("it was accepted");
}

describe("hardening: the default directory", function () {
  const tmp = useTempDir();
  /** A stand-in for /dev/shm: a directory every user may write, sticky, like the real one. */
  const shm = () => {
    const dir = tmp.file("shm");
    if (!existsSync(dir)) {
      mkdirSync(dir);
      chmodSync(dir, 0o1777);
    }
    return dir;
  };
  const runtimeDir = () => {
    const dir = tmp.file("run-user");
    if (!existsSync(dir)) mkdirSync(dir, { mode: 0o700 });
    return dir;
  };

  describe("where it is", function () {
    it("$XDG_RUNTIME_DIR/file-daemon when XDG_RUNTIME_DIR is this user's private directory", function () {
      assert.equal(resolveDefaultDirectory({ env: { XDG_RUNTIME_DIR: runtimeDir() }, shm: shm() }), path.join(runtimeDir(), "file-daemon"));
    });

    it("/dev/shm/file-daemon-<uid> when XDG_RUNTIME_DIR is unset, relative, missing, shared or someone else's", function () {
      const expected = path.join(shm(), `file-daemon-${UID}`);
      const open = tmp.file("open");
      mkdirSync(open);
      chmodSync(open, 0o777);
      const cases: (string | undefined)[] = [undefined, "", "run/user/0", tmp.file("missing"), open];
      if (IS_ROOT) {
        const theirs = tmp.file("theirs");
        mkdirSync(theirs, { mode: 0o700 });
        chownSync(theirs, NOBODY, NOBODY);
        cases.push(theirs);
      }
      for (const XDG_RUNTIME_DIR of cases) assert.equal(resolveDefaultDirectory({ env: { XDG_RUNTIME_DIR }, shm: shm() }), expected, `XDG_RUNTIME_DIR=${String(XDG_RUNTIME_DIR)}`);
    });

    it("without a RAM disk: file-daemon-<uid> in the temp directory", function () {
      assert.equal(resolveDefaultDirectory({ env: {}, shm: tmp.file("no-shm"), tmp: tmp.path }), path.join(tmp.path, `file-daemon-${UID}`));
    });

    it("the real one: /dev/shm/file-daemon-<uid> for a process without XDG_RUNTIME_DIR (as nodered.service runs)", function () {
      if (!existsSync("/dev/shm")) this.skip();
      assert.equal(resolveDefaultDirectory({ env: {} }), `/dev/shm/file-daemon-${UID}`);
    });

    it("the admin's fileDaemonDefaultDirectory wins; a relative one is a BAD_OPTION", function () {
      assert.equal(resolveDefaultDirectory({ configured: " /srv/fd/ ", env: { XDG_RUNTIME_DIR: runtimeDir() } }), "/srv/fd");
      assert.equal(resolveDefaultDirectory({ configured: "", env: { XDG_RUNTIME_DIR: runtimeDir() } }), path.join(runtimeDir(), "file-daemon"));
      for (const configured of ["fd", 42]) {
        const err = refusal(() => resolveDefaultDirectory({ configured }));
        assert.equal(err.code, "BAD_OPTION");
        assert.match(err.message, /^fileDaemonDefaultDirectory in settings\.js must be an absolute path/);
      }
    });

    it("resolving creates nothing", function () {
      resolveDefaultDirectory({ env: {}, shm: shm() });
      assert.deepEqual(readdirSync(shm()), []);
    });
  });

  describe("making it", function () {
    it("creates it 0700, even under umask 0277, and accepts it again on the next start with its files kept", function () {
      const dir = path.join(shm(), `file-daemon-${UID}`);
      const umask = process.umask(0o277);
      try {
        assert.equal(ensureDefaultDirectory(dir), dir);
      } finally {
        process.umask(umask);
      }
      assert.ok(lstatSync(dir).isDirectory());
      assert.equal(lstatSync(dir).uid, UID);
      assert.equal(mode(dir), "0700");
      writeFileSync(path.join(dir, "commands"), "");
      assert.equal(ensureDefaultDirectory(dir), dir);
      assert.deepEqual(readdirSync(dir), ["commands"]);
    });

    it("accepts an existing private directory of this user (0700 or 0755) as it is", function () {
      for (const [name, bits] of [["a", 0o700], ["b", 0o755]] as const) {
        const dir = path.join(shm(), name);
        mkdirSync(dir);
        chmodSync(dir, bits);
        assert.equal(ensureDefaultDirectory(dir), dir);
        assert.equal(mode(dir), bits.toString(8).padStart(4, "0"));
      }
    });

    it("makes only the last component: a missing parent is NO_DIRECTORY with the mkdir to run", function () {
      const dir = tmp.file("missing/file-daemon");
      const err = refusal(() => ensureDefaultDirectory(dir));
      assert.equal(err.code, "NO_DIRECTORY");
      assert.match(err.message, new RegExp(`${tmp.file("missing")} does not exist; create it \\(mkdir -p -m 700 ${dir}\\)`));
      assert.equal(existsSync(tmp.file("missing")), false);
    });
  });

  describe("refusing one someone else prepared in /dev/shm (never used, never repaired)", function () {
    const predicted = () => path.join(shm(), `file-daemon-${UID}`);

    it("a symbolic link (to a directory of this user's): UNSAFE_FILES naming it and its target; nothing is made where it points", function () {
      const target = tmp.file("elsewhere");
      mkdirSync(target, { mode: 0o700 });
      symlinkSync(target, predicted());
      const err = refusal(() => ensureDefaultDirectory(predicted()));
      assert.equal(err.code, "UNSAFE_FILES");
      assert.equal(
        err.message,
        `refusing the default directory: ${predicted()} is a symbolic link (to ${target}), not a directory of its own: a link could lead the daemon's files anywhere; check who made it and remove it (rm -r ${predicted()}: it is made again, private, on the next start), or set fileDaemonDefaultDirectory in settings.js, or give the config node its own paths. Nothing was written there and no daemon uses it`,
      );
      assert.ok(lstatSync(predicted()).isSymbolicLink(), "the link is left for its owner to see");
      assert.deepEqual(readdirSync(target), []);
    });

    it("a directory that belongs to another user (nobody), even mode 0700: UNSAFE_FILES naming the owner; its mode and owner are left alone", function () {
      if (!IS_ROOT) this.skip();
      mkdirSync(predicted(), { mode: 0o700 });
      chownSync(predicted(), NOBODY, NOBODY);
      const err = refusal(() => ensureDefaultDirectory(predicted()));
      assert.equal(err.code, "UNSAFE_FILES");
      assert.match(err.message, new RegExp(`^refusing the default directory: ${predicted()} belongs to uid ${NOBODY} \\(nobody\\), not to uid ${UID} \\(\\w+\\) who runs Node-RED: .*anyone can create it first to read or answer the commands; check who made it and remove it \\(rm -r ${predicted()}`));
      assert.equal(lstatSync(predicted()).uid, NOBODY);
      assert.equal(mode(predicted()), "0700");
      assert.deepEqual(readdirSync(predicted()), []);
    });

    it("a directory every user may write (0777), or its group (0770): UNSAFE_FILES saying chmod 700", function () {
      for (const [bits, who] of [[0o777, "every user"], [0o770, "its group"], [0o1777, "every user"]] as const) {
        mkdirSync(predicted());
        chmodSync(predicted(), bits);
        const err = refusal(() => ensureDefaultDirectory(predicted()));
        assert.equal(err.code, "UNSAFE_FILES");
        assert.match(err.message, new RegExp(`${predicted()} is writable by ${who} \\(mode ${bits.toString(8).padStart(4, "0")}\\): others could replace the commands file; run chmod 700 ${predicted()}`));
        assert.equal(mode(predicted()), bits.toString(8).padStart(4, "0"), "not repaired");
        assert.deepEqual(readdirSync(predicted()), []);
        rmdirSync(predicted());
      }
    });

    it("a file in its place: UNSAFE_FILES", function () {
      writeFileSync(predicted(), "");
      const err = refusal(() => ensureDefaultDirectory(predicted()));
      assert.equal(err.code, "UNSAFE_FILES");
      assert.match(err.message, new RegExp(`${predicted()} is not a directory; check who made it`));
    });

    it("a parent that others may write without the sticky bit: UNSAFE_FILES (ours could be renamed away and replaced)", function () {
      const parent = tmp.file("open");
      mkdirSync(parent);
      chmodSync(parent, 0o777);
      const dir = path.join(parent, "file-daemon");
      const err = refusal(() => ensureDefaultDirectory(dir));
      assert.equal(err.code, "UNSAFE_FILES");
      assert.match(err.message, new RegExp(`^refusing the default directory ${dir}: ${parent} is writable by others without the sticky bit \\(mode 0777\\)`));
      assert.equal(existsSync(dir), false);
    });
  });
});
