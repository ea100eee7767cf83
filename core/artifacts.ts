/**
 * Artifacts as content-addressed blobs: the key is the hash of the serialized bytes, so an
 * identical value is stored once per datastore, an unchanged artifact passes downstream as a
 * reference (its hash), and every read can prove it got the bytes that were written.
 *
 * The hash is BLAKE3 for values of 1 MiB or more where the host has a native one
 * (`ref.alg: "blake3"`), SHA-256 otherwise and in every datastore written before: a reference
 * names its algorithm, so blobs of both kinds sit side by side under `blobs/` and each is
 * verified by its own.
 *
 * A tiny value (at most {@link INLINE_MAX} serialized bytes, no binary in it) has no blob: its
 * reference carries it (`ref.inline`, in the task's done.json), hash and all, so the reference is
 * compared, cached and resumed by as before and a read still proves the bytes (see `inlined`).
 */
import { blake3 } from "./_blake3.ts";
import { getCapped } from "./_datastore.ts";
import { BLOBS_PREFIX, blobKey } from "./_layout.ts";
import { TsflowError } from "./errors.ts";
import { deserialize, encodeForHash, SerializeError, serialize } from "./serialize.ts";
import type { ArtifactRef, Bytes, Datastore, Hasher, Host, StagedWrite } from "./types.ts";

/** Hashes bytes given as several chunks, without joining them (SHA-256). */
export function hashChunks(host: Host, chunks: readonly Bytes[]): string {
  return hashWith(host, "sha256", chunks);
}

/** How an artifact's blob is addressed. */
export type HashAlg = "sha256" | "blake3";

/** The algorithm of a reference: SHA-256 unless it says otherwise. */
export const algOf = (ref: ArtifactRef): HashAlg => ref.alg ?? "sha256";

/**
 * Parameters are always addressed by SHA-256, whoever stores them (a local run, a Step Functions
 * deployment or its start task): `@cached` keys and run-to-run comparisons hash them, and they
 * must not change with the host that stored them.
 */
export const PARAMETER_ALG: HashAlg = "sha256";

const native = new WeakMap<Host, boolean>();

/**
 * Values from this size on are addressed by BLAKE3 where the host has it natively. Below, SHA-256
 * costs under a millisecond, and a run of small artifacts (hello) never loads the native module.
 */
const BLAKE3_FROM = 1024 * 1024;

/** The algorithm a new blob of `size` serialized bytes gets on this host. */
export function preferredAlg(host: Host, size: number): HashAlg {
  if (size < BLAKE3_FROM) return "sha256";
  let has = native.get(host);
  if (has === undefined) native.set(host, (has = host.blake3?.() !== undefined));
  return has ? "blake3" : "sha256";
}

function hasher(host: Host, alg: HashAlg): Hasher {
  return alg === "blake3" ? (host.blake3?.() ?? blake3()) : host.sha256();
}

function hashWith(host: Host, alg: HashAlg, chunks: readonly Bytes[]): string {
  const h = hasher(host, alg);
  for (const c of chunks) h.update(c);
  return h.digest();
}

const withAlg = (alg: HashAlg) => (alg === "blake3" ? { alg } : {});

/** Serializes `value`, stores its blob (unless the store already has it) and returns its reference. */
export async function storeArtifact(store: Datastore, host: Host, name: string, value: unknown, alg?: HashAlg): Promise<ArtifactRef> {
  const { ref, chunks } = refOf(host, name, value, alg);
  return storeEncoded(store, host, chunks, ref);
}

/** Stores already serialized bytes whose reference (content hash) is known. */
export async function storeEncoded(store: Datastore, host: Host, chunks: readonly Bytes[], ref: ArtifactRef): Promise<ArtifactRef> {
  const small = inlined(chunks, ref);
  if (small) return small;
  const packed = maybeCompress(store, host, chunks, ref.size);
  if (packed) {
    const hash = hashWith(host, algOf(ref), packed);
    await store.put(blobKey(hash), packed, { immutable: true });
    return { hash, ...withAlg(algOf(ref)), size: ref.size, type: ref.type, gzipped: packed.reduce((n, c) => n + c.byteLength, 0), content: ref.hash };
  }
  await store.put(blobKey(ref.hash), chunks, { immutable: true });
  return ref;
}

/**
 * Values of at most this many serialized bytes are kept in their reference, not in a blob. A blob
 * costs a file of its own whatever its size (an inode, a 4 KiB block and a rename on a local
 * disk; a HEAD and a PUT on S3), and a task of a number or a short string paid more for its
 * blob than for its step. The inline copy rides in every read of the task's record (its
 * children, a join's inputs, the run index, listings), so it stays about the size of the
 * reference itself (~110 bytes of JSON): 256 takes numbers, dates, short strings and small
 * records of metrics, and adds at most ~25 MB to a join of 100,000 inputs.
 */
export const INLINE_MAX = 256;

/**
 * The serialized form of an inline value: "TSF1", the header's byte length (u32 LE) and the
 * header `{"v":<inline>,"s":[]}`, nothing else (core/serialize.ts: a value with no binary
 * segment). `ref.inline` is the JSON text of the value tree, so done.json stays readable and the
 * bytes come back exactly (a value with binary data keeps its blob).
 */
const INLINE_HEAD = '{"v":';
const INLINE_TAIL = ',"s":[]}';
const utf8 = new TextEncoder();
const utf8dec = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The serialized bytes an inline reference stands for. */
export function inlineBytes(text: string): Bytes {
  const head = utf8.encode(`${INLINE_HEAD}${text}${INLINE_TAIL}`);
  const out = new Uint8Array(8 + head.byteLength);
  out.set([0x54, 0x53, 0x46, 0x31]);
  new DataView(out.buffer).setUint32(4, head.byteLength, true);
  out.set(head, 8);
  return out;
}

/**
 * `ref` with the value inline, when its bytes are small and are exactly {@link inlineBytes} of a
 * text (checked byte for byte, so the hash holds for both); else `undefined` (a blob).
 */
export function inlined(chunks: readonly Bytes[], ref: ArtifactRef): ArtifactRef | undefined {
  if (ref.size > INLINE_MAX || ref.gzipped !== undefined) return undefined;
  const bytes = chunks.length === 1 ? chunks[0]! : concat(chunks, ref.size);
  if (bytes.byteLength !== ref.size || bytes.byteLength < 8 + INLINE_HEAD.length + INLINE_TAIL.length) return undefined;
  let header: string;
  try {
    header = utf8dec.decode(bytes.subarray(8));
  } catch {
    return undefined;
  }
  if (!header.startsWith(INLINE_HEAD) || !header.endsWith(INLINE_TAIL)) return undefined;
  const text = header.slice(INLINE_HEAD.length, -INLINE_TAIL.length);
  const again = inlineBytes(text);
  if (again.byteLength !== bytes.byteLength || again.some((b, i) => b !== bytes[i])) return undefined;
  return { ...ref, inline: text };
}

function concat(chunks: readonly Bytes[], size: number): Bytes {
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    if (at + c.byteLength > size) return new Uint8Array(0);
    out.set(c, at);
    at += c.byteLength;
  }
  return at === size ? out : new Uint8Array(0);
}

/** The hash of an artifact's serialized bytes, whether or not its blob is compressed. */
export const contentHash = (ref: ArtifactRef) => ref.content ?? ref.hash;

const COMPRESS_FROM = 256 * 1024;
const SAMPLE = 64 * 1024;

/**
 * Compression only where it pays: on stores that ask for it, for values big enough to matter,
 * and only when a sample shrinks well — random or already-compressed binary (images, model
 * weights) is stored as it is.
 */
function maybeCompress(store: Datastore, host: Host, chunks: readonly Bytes[], size: number): Bytes[] | undefined {
  if (!store.compress || !host.gzip || size < COMPRESS_FROM) return undefined;
  const sample: Bytes[] = [];
  let taken = 0;
  for (const c of chunks) {
    if (taken >= SAMPLE) break;
    const part = c.subarray(0, SAMPLE - taken);
    sample.push(part);
    taken += part.byteLength;
  }
  const stored = (parts: Bytes[]) => parts.reduce((n, c) => n + c.byteLength, 0);
  if (stored(host.gzip(sample)) > taken * 0.7) return undefined;
  const packed = host.gzip(chunks);
  return stored(packed) < size * 0.8 ? packed : undefined;
}

/**
 * The reference `value` would get, without storing it (to tell whether a loaded artifact
 * changed: pass the loaded reference's algorithm, so an unchanged value keeps its reference).
 */
export function refOf(host: Host, name: string, value: unknown, given?: HashAlg): { ref: ArtifactRef; chunks: Bytes[] } {
  return refOfEncoded(host, encode(name, value), given);
}

/** A value's serialized bytes, not yet hashed; a value that cannot be stored is an error naming `name`. */
export function encode(name: string, value: unknown): ReturnType<typeof serialize> {
  return serializing(() => serialize(value, name));
}

/** `encoding()`, with a value that cannot be stored as a TsflowError (its message names it). */
function serializing<T>(encoding: () => T): T {
  try {
    return encoding();
  } catch (e) {
    if (e instanceof SerializeError) throw new TsflowError("Serialize", e.message);
    throw e;
  }
}

/** {@link refOf} of bytes {@link encode} gave. */
export function refOfEncoded(host: Host, encoded: ReturnType<typeof serialize>, given?: HashAlg): { ref: ArtifactRef; chunks: Bytes[] } {
  const alg = given ?? preferredAlg(host, encoded.size);
  return { ref: { hash: hashWith(host, alg, encoded.chunks), ...withAlg(alg), size: encoded.size, type: encoded.type }, chunks: encoded.chunks };
}

/**
 * The content hash {@link refOf} would give `value`, without building its serialized bytes where
 * they can be streamed (long arrays of numbers): to tell whether a value changed, which a step
 * does for every big value it reads, twice.
 */
export function hashOf(host: Host, name: string, value: unknown, given?: HashAlg): string {
  const encoded = serializing(() => encodeForHash(value, name));
  const h = hasher(host, given ?? preferredAlg(host, encoded.size));
  if (!encoded.feed((bytes) => h.update(bytes))) return refOf(host, name, value, given).ref.hash;
  return h.digest();
}

/**
 * From this many serialized bytes on, a new value is written while it is hashed where the store
 * can ({@link Datastore.stage}): hashing 100 MB takes ~30 ms of the main thread, time the
 * store's write (in the thread pool) would otherwise wait for. Below, a wasted write (the blob
 * existed) and the pieces' bookkeeping cost more than the overlap saves.
 */
export const STAGE_FROM = 8 * 1024 * 1024;

/** Whether {@link storeStaged} overlaps anything for `size` bytes on `store` (else: refOf, then put). */
export const stages = (store: Datastore, size: number): boolean => store.stage !== undefined && !store.compress && size >= STAGE_FROM;

/**
 * How much is hashed between two looks at the event loop (see storeStaged): ~1 ms of BLAKE3,
 * so the store's next piece (8 MiB on fs, ~4-5 ms to write) waits at most about that long.
 */
const HASH_SLICE = 4 * 1024 * 1024;

/**
 * Stores bytes {@link encode} gave (at least {@link STAGE_FROM} of them, on a store with
 * `stage`) and returns their reference: the store starts writing them aside, they are hashed
 * meanwhile, and the write is committed under the hash. When the blob exists already (a re-run
 * on the same data), the store stops writing and keeps it, as `put` of an immutable key does.
 * The hashing gives the event loop a turn every {@link HASH_SLICE} bytes, so the store can
 * issue its next piece when one completes. A store that declines, or cannot stage (it fails to
 * start), gets a hash, then a put, which names the blob in its error. `beforeKey` is awaited
 * before the blob's key is written or refreshed (the caller's gc watch, which must have begun
 * by then: the bytes set aside are no blob a gc could sweep or keep).
 */
export async function storeStaged(store: Datastore, host: Host, encoded: ReturnType<typeof serialize>, beforeKey?: Promise<unknown>): Promise<ArtifactRef> {
  const alg = preferredAlg(host, encoded.size);
  const ref = (hash: string): ArtifactRef => ({ hash, ...withAlg(alg), size: encoded.size, type: encoded.type });
  let staged: StagedWrite | undefined;
  try {
    staged = await store.stage!(BLOBS_PREFIX, encoded.chunks);
  } catch {
    staged = undefined;
  }
  if (!staged) {
    // Declined or failed: hash, then store as any value (a put whose error names the blob).
    const { ref: known } = refOfEncoded(host, encoded, alg);
    await beforeKey;
    return storeEncoded(store, host, encoded.chunks, known);
  }
  let hash: string;
  try {
    const h = hasher(host, alg);
    let since = 0;
    for (const chunk of encoded.chunks) {
      for (let at = 0; at < chunk.byteLength; at += HASH_SLICE) {
        const part = chunk.byteLength <= HASH_SLICE ? chunk : chunk.subarray(at, at + HASH_SLICE);
        h.update(part);
        since += part.byteLength;
        if (since >= HASH_SLICE) {
          since = 0;
          await nextTurn();
        }
      }
    }
    hash = h.digest();
    await beforeKey;
  } catch (e) {
    await staged.abort();
    throw e;
  }
  // On failure the store leaves neither the key nor the bytes aside (StagedWrite.commit).
  await staged.commit(blobKey(hash), { immutable: true });
  return ref(hash);
}

/**
 * One turn of the event loop (a macrotask: I/O callbacks run, unlike after a resolved promise).
 * `setImmediate` where the runtime has it (Node, Bun, Deno's Node globals); `setTimeout` else.
 */
function nextTurn(): Promise<void> {
  const immediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
  return new Promise((resolve) => (immediate ? immediate(resolve) : setTimeout(resolve, 0)));
}

/** How much one load may cost the process that displays a value (viewer, dump). */
export interface LoadLimits {
  /** Most bytes read from the store, and most bytes after decompression. */
  maxBytes?: number;
}

function decode(store: Datastore, host: Host, ref: ArtifactRef, name: string, where: string, stored: Bytes | null, limits: LoadLimits = {}, fed?: Fed): unknown {
  let bytes = stored;
  const label = `artifact '${name}'${where ? ` of ${where}` : ""}`;
  const inline = ref.inline !== undefined;
  if (bytes === null) {
    throw new TsflowError("CorruptArtifact", `${label} is missing: blob ${ref.hash} is not in ${store.url} (was it deleted by gc or by hand?)`);
  }
  // The store may have hashed the bytes as they arrived (see ReadOptions.hasher).
  const actual = fed && fed.bytes === bytes.byteLength ? fed.hasher.digest() : hashWith(host, algOf(ref), [bytes]);
  if (actual !== ref.hash) {
    const what = inline ? `its inline value (in its task's record) does not match its hash ${ref.hash.slice(0, 12)}…` : `blob ${blobKey(ref.hash)} in ${store.url} does not match its hash`;
    throw new TsflowError("CorruptArtifact", `${label} is corrupt: ${what} (got ${actual.slice(0, 12)}…)`);
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    if (!host.gunzip) throw new TsflowError("CorruptArtifact", `${label} is stored gzipped and this runtime cannot gunzip`);
    // A compressed blob holds exactly the ref's serialized size: never inflate past it (or past
    // the caller's limit), whatever the gzip stream says.
    const max = Math.min(ref.size, limits.maxBytes ?? Number.POSITIVE_INFINITY);
    try {
      bytes = host.gunzip(bytes, max);
    } catch (e) {
      if (max < ref.size) throw new TsflowError("TooLarge", `${label} is too large to load here (more than ${max} bytes once decompressed)`);
      throw new TsflowError("CorruptArtifact", `${label} is corrupt: its gzipped blob ${blobKey(ref.hash)} does not decompress to its ${ref.size} bytes (${(e as Error).message})`);
    }
    if (bytes.byteLength !== ref.size) throw new TsflowError("CorruptArtifact", `${label} is corrupt: its gzipped blob ${blobKey(ref.hash)} decompresses to ${bytes.byteLength} bytes, not ${ref.size}`);
  }
  try {
    return deserialize(bytes, name);
  } catch (e) {
    throw new TsflowError("CorruptArtifact", `${label} cannot be read: ${(e as Error).message}`);
  }
}

/**
 * Loads and verifies an artifact. A missing or corrupt blob is an error naming the artifact.
 * With `limits.maxBytes`, the blob's real size (not the size its reference claims) and its
 * decompressed size are checked first: a `TooLarge` error instead of an out-of-memory crash.
 */
export async function loadArtifact(store: Datastore, host: Host, ref: ArtifactRef, name: string, where = "", limits: LoadLimits = {}): Promise<unknown> {
  if (ref.inline !== undefined) {
    const bytes = inlineOf(ref, name, where);
    if (limits.maxBytes !== undefined && bytes.byteLength > limits.maxBytes) {
      throw new TsflowError("TooLarge", `artifact '${name}'${where ? ` of ${where}` : ""} is too large to load here (${bytes.byteLength} bytes, more than ${limits.maxBytes})`);
    }
    return decode(store, host, ref, name, where, bytes, limits);
  }
  const key = blobKey(ref.hash);
  const fed = feeding(hasher(host, algOf(ref)));
  const stored =
    limits.maxBytes === undefined ? await store.get(key, { hasher: fed.hasher }) : await getCapped(store, key, limits.maxBytes, `artifact '${name}'${where ? ` of ${where}` : ""}`);
  return decode(store, host, ref, name, where, stored, limits, fed);
}

/** A hasher handed to a store's read, counting what the store fed it. */
interface Fed {
  hasher: Hasher;
  bytes: number;
}

function feeding(h: Hasher): Fed {
  const fed: Fed = {
    bytes: 0,
    hasher: {
      update(data) {
        fed.bytes += data.byteLength;
        h.update(data);
      },
      digest: () => h.digest(),
    },
  };
  return fed;
}

/** Synchronous {@link loadArtifact}, for stores with `getSync`. */
export function loadArtifactSync(store: Datastore, host: Host, ref: ArtifactRef, name: string, where = ""): unknown {
  if (ref.inline !== undefined) return decode(store, host, ref, name, where, inlineOf(ref, name, where));
  if (!store.getSync) throw new TsflowError("Datastore", `datastore ${store.url} cannot read synchronously`);
  return decode(store, host, ref, name, where, store.getSync(blobKey(ref.hash)));
}

/** The bytes of an inline reference; a record whose `inline` is not text is corrupt. */
function inlineOf(ref: ArtifactRef, name: string, where: string): Bytes {
  if (typeof ref.inline !== "string") throw new TsflowError("CorruptArtifact", `artifact '${name}'${where ? ` of ${where}` : ""} is corrupt: its inline value in its task's record is not text`);
  return inlineBytes(ref.inline);
}
