/**
 * The default datastore: a directory on the local disk (`./.tsflow`, found like git finds
 * `.git`). Writes go to a temporary file that is renamed into place, so a crash never leaves
 * a half-written key behind.
 */
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  fdatasync,
  fstatSync,
  fsync as fsyncFd,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  unlink,
  utimesSync,
  writev,
  writevSync,
} from "node:fs";
import { spawn } from "node:child_process";
import * as fsp from "node:fs/promises";
import { availableParallelism, release } from "node:os";
import { dirname, join, resolve, sep } from "node:path";
import { checkKey, keyExists, mapLimit, tooLarge } from "../../core/_datastore.ts";
import { TsflowError } from "../../core/errors.ts";
import type { Bytes, Datastore, PutOptions, StagedWrite } from "../../core/types.ts";

export const NAME = "fs";

export interface FsOptions {
  /** Directory holding the data; created on first write. */
  root: string;
  /**
   * What is synced to disk: `"markers"` (default) the records that define success (`durable`
   * puts: a task's done.json, with its directory); `"none"` nothing (the page cache decides).
   * Default `$TSFLOW_FSYNC`, else `"markers"`. See docs/reliability.md, "Power loss".
   */
  fsync?: "markers" | "none";
  /**
   * When {@link Datastore.stage} writes a big blob while the caller hashes it: `"auto"` (default)
   * when a CPU is idle at that moment (the write's copy into the page cache then runs beside
   * the hash; on a busy machine it would only take CPU from it, and from nothing at all when the
   * blob turns out to exist), `"always"`, or `"never"`.
   */
  stage?: "auto" | "always" | "never";
}

const TMP = ".tmp-";
let counter = 0;

/**
 * Writes and reads up to this size use synchronous calls. An asynchronous call is a round trip
 * through libuv's thread pool (a queued job, a thread woken, an event back to the loop), which
 * for a small record costs several times the system call itself: a 1,000-task foreach made
 * ~50 such trips per task, most of its CPU (futex and epoll, not I/O). A small write to a local
 * disk returns in microseconds, so the event loop is not held up; syncs (fsync) can take
 * milliseconds and stay asynchronous, as do big values.
 */
const SYNC_MAX = 256 * 1024;

/**
 * One turn of the event loop. An operation done with synchronous calls still lets the loop
 * run first: a caller polling `get` until a concurrent `put` lands must not starve that put.
 * A turn costs no thread-pool round trip.
 */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

// Each task's marker has its own directory; concurrent syncs of many markers are joined into
// one journal commit by the filesystem (group commit), which is what batches them.
async function syncDir(dir: string) {
  // Opening and closing are quick; only the sync itself waits for the disk (see SYNC_MAX).
  const fd = openSync(dir, "r");
  try {
    await new Promise<void>((resolve, reject) => fsyncFd(fd, (e) => (e ? reject(e) : resolve())));
  } finally {
    closeSync(fd);
  }
}

/**
 * From this many keys on, {@link Datastore.syncMany} flushes the whole filesystem once (syncfs)
 * instead of syncing each file and its directory. One syncfs here took 35-50 ms for 1,000 tasks'
 * files (it also writes whatever else is dirty on the filesystem); per-file syncs ~0.2 ms each.
 */
const SYNCFS_MIN = 64;
/** Per-file syncs in flight at once: two descriptors each, and libuv has four threads anyway. */
const SYNC_PARALLEL = 32;

/**
 * syncfs(2) is reached through GNU coreutils' `sync -f` (Node has no binding): Linux only, and
 * only from 5.8 on, where it reports writeback errors (before, it returned success regardless).
 */
const syncfsPossible = (() => {
  if (process.platform !== "linux") return false;
  const [major = 0, minor = 0] = release().split(".").map((n) => Number.parseInt(n, 10));
  return major > 5 || (major === 5 && minor >= 8);
})();

/** `sync -f dir`: resolves whether it ran and succeeded. */
function syncfs(dir: string): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      const child = spawn("sync", ["-f", dir], { stdio: "ignore" });
      child.on("error", () => resolve(false));
      child.on("close", (code) => resolve(code === 0));
    } catch {
      resolve(false);
    }
  });
}

export default function fsDatastore(options: FsOptions): Datastore {
  const root = resolve(options.root);
  const fsync = options.fsync ?? (process.env.TSFLOW_FSYNC === "none" ? "none" : "markers");
  const staging = options.stage ?? "auto";
  if (process.env.TSFLOW_FSYNC && !["none", "markers"].includes(process.env.TSFLOW_FSYNC)) {
    throw new TsflowError("BadOption", `TSFLOW_FSYNC='${process.env.TSFLOW_FSYNC}' is not a policy: use 'markers' (the default) or 'none'`);
  }
  const path = (key: string) => join(root, checkKey(key));
  const fail = (action: string, key: string, e: unknown): never => {
    if (e instanceof TsflowError) throw e;
    const err = e as NodeJS.ErrnoException;
    // Node's recursive mkdir reports ENOENT instead of EROFS/EACCES: ask the nearest existing directory.
    if (err.code === "ENOENT" && action === "write") err.code = unwritable(root) ?? err.code;
    const why = err.code === "ENOSPC" ? "the disk is full" : err.code === "EROFS" || err.code === "EACCES" ? "the datastore is not writable" : err.message;
    throw new TsflowError("Datastore", `[fs] cannot ${action} '${key}' in ${root}: ${why}`);
  };

  /**
   * Only regular files inside the root are keys (#19.10): a symlink planted in the store
   * (`stdout -> ~/.ssh/id_rsa`, or a directory pointing elsewhere) would make `logs`, the viewer
   * and `--export` show files outside it, and a FIFO would hang every reader. The last
   * component is opened with O_NOFOLLOW and O_NONBLOCK and checked with fstat; the directory
   * it is in must resolve inside the root (checked once per directory).
   */
  const READ = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
  let realRoot: string | undefined;
  const checkedDirs = new Set<string>();
  const refuse = (key: string, what: string) => new TsflowError("Datastore", `[fs] refusing to read '${key}' in ${root}: ${what}; only regular files inside the datastore are read`);
  const insideRoot = (key: string, file: string) => checkDir(key, dirname(file));
  const checkDir = (key: string, dir: string): void => {
    if (checkedDirs.has(dir)) return;
    if (dir.startsWith(root + sep)) {
      // A real directory (not a link) in a checked one is inside too: one lstat per new
      // directory instead of resolving every component again (a join reads one new task
      // directory per input).
      checkDir(key, dirname(dir));
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(dir);
      } catch {
        return; // missing: the open says so
      }
      if (st.isDirectory()) {
        remember(dir);
        return;
      }
      if (!st.isSymbolicLink()) return; // not a directory: the open says so
    }
    // The root itself, or a link: where does it really lead?
    let real: string;
    try {
      realRoot ??= realpathSync.native(root);
      real = realpathSync.native(dir);
    } catch {
      return; // missing: the open says so
    }
    if (real !== realRoot && !real.startsWith(realRoot + sep)) throw refuse(key, `its directory leads outside the datastore (to ${real}) through a symbolic link`);
    remember(dir);
  };
  const remember = (dir: string) => {
    if (checkedDirs.size > 50_000) checkedDirs.clear();
    checkedDirs.add(dir);
  };
  const kind = (st: { isSymbolicLink(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }) =>
    st.isSymbolicLink() ? "a symbolic link" : st.isFIFO() ? "a FIFO" : st.isSocket() ? "a socket" : st.isCharacterDevice() || st.isBlockDevice() ? "a device" : "not a regular file";
  /** An open handle on the regular file holding `key`, `null` when missing or a directory. */
  async function openKey(key: string, maxBytes?: number): Promise<fsp.FileHandle | null> {
    const file = path(key);
    insideRoot(key, file);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(file, READ);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return null;
      if (code === "ELOOP") throw refuse(key, "it is a symbolic link");
      throw e;
    }
    const st = await fh.stat();
    if (st.isFile() && maxBytes !== undefined && st.size > maxBytes) {
      await fh.close();
      throw tooLarge(`[fs] '${key}'`, st.size, maxBytes);
    }
    if (st.isFile()) return fh;
    await fh.close();
    if (st.isDirectory()) return null; // a prefix, not a key: missing, like S3
    throw refuse(key, `it is ${kind(st)}`);
  }
  function readKeySync(key: string, maxBytes?: number, syncMax = Number.POSITIVE_INFINITY): Bytes | null | undefined {
    const file = path(key);
    insideRoot(key, file);
    let fd: number;
    try {
      fd = openSync(file, READ);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return null;
      if (code === "ELOOP") throw refuse(key, "it is a symbolic link");
      throw e;
    }
    try {
      const st = fstatSync(fd);
      if (st.isDirectory()) return null;
      if (!st.isFile()) throw refuse(key, `it is ${kind(st)}`);
      if (maxBytes !== undefined && st.size > maxBytes) throw tooLarge(`[fs] '${key}'`, st.size, maxBytes);
      if (st.size > syncMax) return undefined;
      return readFileSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * A small key's bytes read with synchronous calls (see SYNC_MAX); `undefined` when the file
   * is bigger, for the asynchronous path. Same checks as {@link openKey}.
   */
  function readSmallSync(key: string, maxBytes?: number): Bytes | null | undefined {
    return readKeySync(key, maxBytes, SYNC_MAX);
  }

  const tmpName = (file: string) => `${dirname(file)}/${TMP}${process.pid}-${++counter}-${file.slice(file.lastIndexOf("/") + 1)}`;

  /** Directories this process created or found: no mkdir before each write into them. */
  const knownDirs = new Set<string>();

  /** {@link writeAtomic} with synchronous calls, for small values (see SYNC_MAX). */
  async function writeSmall(key: string, chunks: readonly Bytes[], options?: PutOptions) {
    const file = path(key);
    const tmp = tmpName(file);
    const sync = options?.durable && fsync === "markers";
    let fd: number | undefined;
    await turn();
    try {
      if (options?.immutable && refreshSync(file)) return;
      const dir = dirname(file);
      if (!knownDirs.has(dir)) makeDir(dir);
      try {
        fd = openSync(tmp, "w");
      } catch (e) {
        // A directory this process made may have been deleted since (a run deleted by hand).
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
        mkdirSync(dir, { recursive: true });
        fd = openSync(tmp, "w");
      }
      if (knownDirs.size > 10_000) knownDirs.clear();
      knownDirs.add(dir);
      writeAllSync(fd, chunks);
      if (sync) await datasync(fd);
      closeSync(fd);
      fd = undefined;
      if (options?.ifAbsent) {
        // link() refuses an existing name (EEXIST): of two writers exactly one creates the key.
        try {
          linkSync(tmp, file);
        } finally {
          rmSync(tmp, { force: true });
        }
      } else renameSync(tmp, file);
      if (sync) await syncDir(dir);
    } catch (e) {
      if (fd !== undefined) closeSync(fd);
      rmSync(tmp, { force: true });
      if ((e as NodeJS.ErrnoException).code === "EEXIST" && options?.ifAbsent) throw keyExists(key, root);
      fail("write", key, e);
    }
  }

  async function writeAtomic(key: string, write: (fh: fsp.FileHandle) => Promise<void>, options?: PutOptions) {
    const file = path(key);
    // An existing content-addressed key holds these bytes already; refreshing its time tells
    // gc it is in use again (a blob a deleted run left behind, found by a new run).
    if (options?.immutable && (await refresh(file))) return;
    const tmp = tmpName(file);
    try {
      await fsp.mkdir(dirname(file), { recursive: true });
      const fh = await fsp.open(tmp, "w");
      const sync = options?.durable && fsync === "markers";
      try {
        await write(fh);
        if (sync) await datasync(fh.fd);
      } finally {
        await fh.close();
      }
      if (options?.ifAbsent) {
        // link() refuses an existing name (EEXIST): of two writers exactly one creates the key.
        try {
          await fsp.link(tmp, file);
        } finally {
          await fsp.rm(tmp, { force: true });
        }
      } else await fsp.rename(tmp, file);
      // The rename is durable once its directory is synced (the blobs the marker names are not
      // synced: docs/reliability.md, "Power loss").
      if (sync) await syncDir(dirname(file));
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => {});
      if ((e as NodeJS.ErrnoException).code === "EEXIST" && options?.ifAbsent) throw keyExists(key, root);
      fail("write", key, e);
    }
  }

  /**
   * {@link Datastore.stage}: the bytes go to a temporary file in the prefix's directory (named
   * and skipped by listings like writeAtomic's: a crash leaves a `.tmp-` file, never a key),
   * piece by piece (see PIECE), while the caller hashes them; commit renames it to the key.
   */
  async function stage(prefix: string, data: readonly Bytes[]): Promise<StagedWrite | undefined> {
    if (staging === "never" || (staging === "auto" && !idleCpu())) return undefined;
    const dir = prefix === "" ? root : path(prefix.replace(/\/$/, ""));
    const tmp = `${dir}/${TMP}${process.pid}-${++counter}-staged`;
    let fd: number;
    try {
      if (!knownDirs.has(dir)) makeDir(dir);
      fd = openSync(tmp, "w");
    } catch (e) {
      return fail("write", prefix, e);
    }
    knownDirs.add(dir);
    const pieces = piecesOf(data, PIECE);
    let next = 0;
    let inFlight = 0;
    let stopped = false;
    let error: unknown;
    let settle!: () => void;
    /** Resolves when no piece is in flight and none will be issued. */
    const idle = new Promise<void>((resolve) => (settle = resolve));
    // Pieces are issued from completions, on the event loop: between two slices of the
    // caller's hashing while it hashes, at once after.
    const pump = () => {
      while (!stopped && error === undefined && inFlight < PIECES_IN_FLIGHT && next < pieces.length) {
        const piece = pieces[next++]!;
        inFlight++;
        writePiece(fd, piece.bufs, piece.at, (e) => {
          inFlight--;
          if (e) error ??= e;
          pump();
        });
      }
      if (inFlight === 0 && (stopped || error !== undefined || next === pieces.length)) settle();
    };
    pump();
    let ended = false;
    /**
     * Throws the bytes away: no piece is issued any more, the name goes, and the file is closed
     * once the piece in flight is written (its pages are freed then).
     */
    const discard = () => {
      stopped = true;
      void idle.then(() => closeSync(fd)).catch(() => {});
      discardLater(tmp);
    };
    return {
      async commit(key, options) {
        if (ended) throw new TsflowError("Datastore", `[fs] a staged write cannot end twice ('${key}' in ${root})`);
        ended = true;
        const file = path(key);
        const sync = options?.durable && fsync === "markers";
        let closed = false;
        try {
          // As writeAtomic: an existing content-addressed key holds these bytes already.
          if (options?.immutable && refreshSync(file)) {
            discard();
            return;
          }
          await idle;
          if (error !== undefined) throw error;
          if (sync) await datasync(fd);
          closed = true;
          closeSync(fd);
          const target = dirname(file);
          if (!knownDirs.has(target)) makeDir(target);
          const place = () => {
            if (options?.ifAbsent) linkSync(tmp, file);
            else renameSync(tmp, file);
          };
          try {
            place();
          } catch (e) {
            // A directory this process made may have been deleted since (see writeSmall).
            if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
            mkdirSync(target, { recursive: true });
            place();
          }
          knownDirs.add(target);
          if (options?.ifAbsent) rmSync(tmp, { force: true });
          if (sync) await syncDir(target);
        } catch (e) {
          if (closed) rmSync(tmp, { force: true });
          else discard();
          if ((e as NodeJS.ErrnoException).code === "EEXIST" && options?.ifAbsent) throw keyExists(key, root);
          fail("write", key, e);
        }
      },
      async abort() {
        if (ended) return;
        ended = true;
        discard();
      },
    };
  }

  /** A key to sync is a file that exists (ENOENT otherwise, named by `fail`): its stat. */
  function syncTarget(key: string) {
    const st = lstatSync(path(key));
    if (!st.isFile()) throw Object.assign(new Error(`'${key}' is not a file`), { code: "ENOENT" });
    return st;
  }

  /** Makes one key written earlier durable: the file's bytes and its name in its directory. */
  async function syncOne(key: string) {
    const file = path(key);
    let fd: number | undefined;
    try {
      if (fsync === "none") {
        // Nothing to flush, but the contract holds: a missing key is an error.
        syncTarget(key);
        return;
      }
      fd = openSync(file, "r");
      // The file's bytes and its name in the directory, flushed side by side: one wait, not two.
      await Promise.all([datasync(fd), syncDir(dirname(file))]);
    } catch (e) {
      fail("sync", key, e);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  let syncfsWorks = syncfsPossible;
  let rootDev: number | undefined;

  return {
    name: NAME,
    url: root,
    location: root,
    root,
    atomicIfAbsent: true,

    // Nothing is held open between calls; what may still run is the removal of discarded staged
    // files in the thread pool.
    close: discardsSettled,

    async get(key, options) {
      await turn();
      try {
        const small = readSmallSync(key, options?.maxBytes);
        if (small !== undefined) return small;
        const fh = await openKey(key, options?.maxBytes);
        if (!fh) return null;
        try {
          return await fh.readFile();
        } finally {
          await fh.close();
        }
      } catch (e) {
        return fail("read", key, e);
      }
    },

    getSync(key, options) {
      try {
        return readKeySync(key, options?.maxBytes) ?? null; // no syncMax: never undefined
      } catch (e) {
        return fail("read", key, e);
      }
    },

    put(key, data, options) {
      const chunks = data instanceof Uint8Array ? [data] : data;
      let size = 0;
      for (const c of chunks) size += c.byteLength;
      if (size <= SYNC_MAX) return writeSmall(key, chunks, options);
      return writeAtomic(
        key,
        async (fh) => {
          // writev keeps large segments where they are: no concatenation, no copy.
          let pending = chunks.filter((c) => c.byteLength > 0);
          while (pending.length > 0) {
            const { bytesWritten } = await fh.writev(pending.slice(0, 512));
            pending = afterWrite(pending, bytesWritten);
          }
        },
        options,
      );
    },

    async putStream(key, data, options) {
      await writeAtomic(
        key,
        async (fh) => {
          for await (const chunk of data) await fh.write(chunk);
        },
        options,
      );
    },

    stage,

    sync: syncOne,

    async syncMany(keys) {
      if (fsync === "none" || (keys.length >= SYNCFS_MIN && syncfsWorks)) {
        // Nothing flushed per key, but the contract holds: a missing key is an error. One
        // filesystem covers them all unless a directory in the store is another mount.
        rootDev ??= statSync(root).dev;
        let oneFs = true;
        for (const key of keys) {
          let dev: number;
          try {
            dev = syncTarget(key).dev;
          } catch (e) {
            return fail("sync", key, e);
          }
          if (dev !== rootDev) oneFs = false;
        }
        if (fsync === "none") return;
        // One flush of the filesystem writes these markers, their directories and everything
        // else dirty on it (the tasks' blobs and task.json too). If `sync` is missing or fails,
        // the per-file syncs below do the work, and name the key whose sync fails.
        if (oneFs && (await syncfs(root))) {
          // On ext4 without a journal, syncfs flushes the disk's write cache before it writes
          // the last metadata blocks (Linux fs/sync.c: sync_fs(sb, 1), then sync_blockdev), so
          // those may still sit in the cache when it returns. An fsync there always flushes the
          // cache again, now that every block is written (ext4_fsync_nojournal). One more
          // sync per batch; with a journal it commits nothing new.
          try {
            await syncDir(root);
          } catch (e) {
            return fail("sync", keys[0]!, e);
          }
          return;
        }
        if (oneFs) syncfsWorks = false;
      }
      await mapLimit(keys, SYNC_PARALLEL, syncOne);
    },

    async has(key) {
      const file = path(key);
      await turn();
      try {
        // lstat: a symbolic link is not a key, even to a file.
        return lstatSync(file).isFile();
      } catch {
        return false;
      }
    },

    async size(key) {
      try {
        const fh = await openKey(key);
        if (!fh) return null;
        try {
          return (await fh.stat()).size;
        } finally {
          await fh.close();
        }
      } catch (e) {
        return fail("stat", key, e);
      }
    },

    async getStream(key) {
      let fh: fsp.FileHandle | null;
      try {
        fh = await openKey(key);
      } catch (e) {
        return fail("read", key, e);
      }
      // The stream reads the very file that was checked (its handle), and closes it.
      return fh ? (fh.createReadStream({ highWaterMark: 4 << 20 }) as AsyncIterable<Bytes>) : null;
    },

    async list(prefix) {
      const dir = prefix === "" ? root : path(prefix.replace(/\/$/, ""));
      await turn();
      try {
        // A missing or one-block directory (gc markers, which every task lists) is read with
        // synchronous calls (see SYNC_MAX); a big one in the thread pool.
        const small = statSync(dir, { throwIfNoEntry: false });
        if (!small) return [];
        const entries = small.size <= 4096 ? readdirSync(dir, { withFileTypes: true }) : await fsp.readdir(dir, { withFileTypes: true });
        // Symbolic links, FIFOs, sockets and devices are not keys (see openKey).
        return entries
          .filter((e) => !e.name.startsWith(TMP) && (e.isFile() || e.isDirectory()))
          .map((e) => (e.isDirectory() ? `${e.name}/` : e.name))
          .sort();
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "ENOTDIR") return [];
        return fail("list", prefix, e);
      }
    },

    async listAll(prefix) {
      const base = prefix.replace(/\/$/, "");
      const dir = base === "" ? root : path(base);
      try {
        const entries = await fsp.readdir(dir, { recursive: true, withFileTypes: true });
        return entries
          .filter((e) => e.isFile() && !e.name.startsWith(TMP))
          .map((e) => {
            const rel = join(e.parentPath, e.name).slice(root.length + 1);
            return rel;
          })
          .sort();
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "ENOTDIR") return [];
        return fail("list", prefix, e);
      }
    },

    async delete(key) {
      try {
        await fsp.rm(path(key), { force: true });
      } catch (e) {
        fail("delete", key, e);
      }
    },

    async deletePrefix(prefix) {
      const base = prefix.replace(/\/$/, "");
      try {
        await fsp.rm(base === "" ? root : path(base), { recursive: true, force: true });
      } catch (e) {
        fail("delete", prefix, e);
      }
    },
  };
}

/** EROFS or EACCES when the nearest existing ancestor of `dir` cannot be written to. */
function unwritable(dir: string): string | undefined {
  let d = dir;
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  try {
    accessSync(d, constants.W_OK);
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
}

/** Makes sure `dir` exists: usually one system call (its parent exists; or it exists). */
function makeDir(dir: string) {
  try {
    mkdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Something else by that name: the open that follows says so.
    if (code === "EEXIST") return;
    if (code !== "ENOENT") throw e;
    mkdirSync(dir, { recursive: true });
  }
}

/** Writes every chunk at the file's current position. */
function writeAllSync(fd: number, chunks: readonly Bytes[]) {
  let pending = chunks.filter((c) => c.byteLength > 0);
  while (pending.length > 0) {
    pending = afterWrite(pending, writevSync(fd, pending.slice(0, 512)));
  }
}

/** What is left of `bufs` once a (vectored, maybe short) write took its first `written` bytes. */
function afterWrite(bufs: readonly Bytes[], written: number): Bytes[] {
  let i = 0;
  while (i < bufs.length && written >= bufs[i]!.byteLength) written -= bufs[i++]!.byteLength;
  const rest = bufs.slice(i);
  if (written > 0) rest[0] = rest[0]!.subarray(written);
  return rest;
}

/**
 * A staged write ({@link Datastore.stage}) goes out in pieces of this size, each one pwritev in
 * libuv's thread pool. When the caller learns that the key exists already, it stops after the
 * piece in flight instead of writing the whole value for nothing. 8 MiB: ~4-5 ms of copying
 * into the page cache, during which the caller's hashing (artifacts.ts HASH_SLICE) lets the
 * event loop issue the next piece about twice.
 *
 * One piece in flight, not two: two writes to one file queue on its inode lock, and the waiting
 * thread spins on it (the kernel's rwsem spins while the holder runs) — here 20-30 ms more CPU
 * for 100 MB, taken from the hashing on the other core, and a re-run that found the blob waited
 * for two pieces instead of one.
 */
const PIECE = 8 * 1024 * 1024;
const PIECES_IN_FLIGHT = 1;

/** `data` cut into pieces of at most `size` bytes (views, no copy), each with its file offset. */
function piecesOf(data: readonly Bytes[], size: number): { bufs: Bytes[]; at: number }[] {
  const out: { bufs: Bytes[]; at: number }[] = [];
  let piece: Bytes[] = [];
  let room = size;
  let at = 0;
  let start = 0;
  for (const chunk of data) {
    let rest = chunk;
    while (rest.byteLength > 0) {
      const part = rest.byteLength <= room ? rest : rest.subarray(0, room);
      piece.push(part);
      room -= part.byteLength;
      at += part.byteLength;
      rest = rest.subarray(part.byteLength);
      if (room === 0) {
        out.push({ bufs: piece, at: start });
        piece = [];
        room = size;
        start = at;
      }
    }
  }
  if (piece.length > 0) out.push({ bufs: piece, at: start });
  return out;
}

/** Writes every byte of `bufs` at `position` (pwritev, again after a short write), then calls `done`. */
function writePiece(fd: number, bufs: Bytes[], position: number, done: (e: Error | null) => void) {
  writev(fd, bufs, position, (e, written) => {
    if (e) return done(e);
    if (written === 0) return done(Object.assign(new Error("the write made no progress"), { code: "EIO" }));
    const rest = afterWrite(bufs, written);
    if (rest.length === 0) return done(null);
    writePiece(fd, rest, position + written, done);
  });
}

/** Staged files being removed in the thread pool (see discardLater), each with its removal. */
const discarding = new Map<string, Promise<void>>();
let discardAtExit = false;

/**
 * Removes a staged file without waiting: the unlink takes the file's lock, which the piece in
 * flight holds until it is written (8 MiB: 4-25 ms here, depending on how fast the kernel finds
 * pages), and a re-run that found its blob would wait that long for nothing. What the thread
 * pool has not removed when the process exits is removed then, synchronously: only a crash
 * leaves a staged file behind, as it leaves any interrupted write's (listings skip them).
 */
function discardLater(tmp: string) {
  if (!discardAtExit) {
    discardAtExit = true;
    process.once("exit", () => {
      for (const file of discarding.keys()) {
        try {
          rmSync(file, { force: true });
        } catch {
          // A file that cannot be removed stays, skipped by listings.
        }
      }
    });
  }
  discarding.set(
    tmp,
    new Promise((resolve) =>
      unlink(tmp, () => {
        discarding.delete(tmp);
        resolve();
      }),
    ),
  );
}

/**
 * Resolves once every staged file this process set out to remove is gone: a worker that leaves
 * (runner/worker.ts) may be killed as soon as it said so, before its exit hooks run.
 */
async function discardsSettled(): Promise<void> {
  while (discarding.size > 0) await Promise.all(discarding.values());
}

/**
 * Whether a CPU is idle right now. Linux: the runnable threads (the 4th field of /proc/loadavg,
 * this one included) are fewer than the CPUs this process may use. Elsewhere: assumed.
 */
function idleCpu(): boolean {
  if (process.platform !== "linux") return true;
  try {
    const running = Number(readFileSync("/proc/loadavg", "latin1").split(" ")[3]?.split("/")[0]);
    return !(running >= availableParallelism());
  } catch {
    return true;
  }
}

/** fdatasync in the thread pool: it waits for the disk, which may take milliseconds. */
function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (e) => (e ? reject(e) : resolve())));
}

/** {@link refresh} with synchronous calls. */
function refreshSync(file: string): boolean {
  try {
    const now = new Date();
    utimesSync(file, now, now);
    return statSync(file).isFile();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    try {
      return lstatSync(file).isFile();
    } catch {
      return false;
    }
  }
}

/** Sets a file's times to now; false when it does not exist. A file we may not touch (another user's) still counts. */
async function refresh(file: string): Promise<boolean> {
  try {
    const now = new Date();
    await fsp.utimes(file, now, now);
    return (await fsp.stat(file)).isFile();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    return exists(file);
  }
}

/** A key exists when a file holds it; a directory is only a prefix. */
async function exists(file: string): Promise<boolean> {
  try {
    // lstat: a symbolic link is not a key, even to a file.
    return (await fsp.lstat(file)).isFile();
  } catch {
    return false;
  }
}
