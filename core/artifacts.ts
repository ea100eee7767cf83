/**
 * Artifacts as content-addressed blobs: the key is the SHA-256 of the serialized bytes, so an
 * identical value is stored once per datastore, an unchanged artifact passes downstream as a
 * reference (its hash), and every read can prove it got the bytes that were written.
 */
import { getCapped } from "./_datastore.ts";
import { blobKey } from "./_layout.ts";
import { TsflowError } from "./errors.ts";
import { deserialize, SerializeError, serialize } from "./serialize.ts";
import type { ArtifactRef, Bytes, Datastore, Hasher, Host } from "./types.ts";

/** Hashes bytes given as several chunks, without joining them. */
export function hashChunks(host: Host, chunks: readonly Bytes[]): string {
  const h = host.sha256();
  for (const c of chunks) h.update(c);
  return h.digest();
}

/** Serializes `value`, stores its blob (unless the store already has it) and returns its reference. */
export async function storeArtifact(store: Datastore, host: Host, name: string, value: unknown): Promise<ArtifactRef> {
  const { ref, chunks } = refOf(host, name, value);
  return storeEncoded(store, host, chunks, ref);
}

/** Stores already serialized bytes whose reference (content hash) is known. */
export async function storeEncoded(store: Datastore, host: Host, chunks: readonly Bytes[], ref: ArtifactRef): Promise<ArtifactRef> {
  const packed = maybeCompress(store, host, chunks, ref.size);
  if (packed) {
    const hash = hashChunks(host, packed);
    await store.put(blobKey(hash), packed, { immutable: true });
    return { hash, size: ref.size, type: ref.type, gzipped: packed.reduce((n, c) => n + c.byteLength, 0), content: ref.hash };
  }
  await store.put(blobKey(ref.hash), chunks, { immutable: true });
  return ref;
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

/** The reference `value` would get, without storing it (to tell whether a loaded artifact changed). */
export function refOf(host: Host, name: string, value: unknown): { ref: ArtifactRef; chunks: Bytes[] } {
  let encoded: ReturnType<typeof serialize>;
  try {
    encoded = serialize(value, name);
  } catch (e) {
    if (e instanceof SerializeError) throw new TsflowError("Serialize", e.message);
    throw e;
  }
  return { ref: { hash: hashChunks(host, encoded.chunks), size: encoded.size, type: encoded.type }, chunks: encoded.chunks };
}

/** How much one load may cost the process that displays a value (viewer, dump). */
export interface LoadLimits {
  /** Most bytes read from the store, and most bytes after decompression. */
  maxBytes?: number;
}

function decode(store: Datastore, host: Host, ref: ArtifactRef, name: string, where: string, stored: Bytes | null, limits: LoadLimits = {}, fed?: Fed): unknown {
  let bytes = stored;
  const label = `artifact '${name}'${where ? ` of ${where}` : ""}`;
  if (bytes === null) {
    throw new TsflowError("CorruptArtifact", `${label} is missing: blob ${ref.hash} is not in ${store.url} (was it deleted by gc or by hand?)`);
  }
  // The store may have hashed the bytes as they arrived (see ReadOptions.hasher).
  const actual = fed && fed.bytes === bytes.byteLength ? fed.hasher.digest() : hashChunks(host, [bytes]);
  if (actual !== ref.hash) {
    throw new TsflowError("CorruptArtifact", `${label} is corrupt: blob ${blobKey(ref.hash)} in ${store.url} does not match its hash (got ${actual.slice(0, 12)}…)`);
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
  const key = blobKey(ref.hash);
  const fed = feeding(host);
  const stored =
    limits.maxBytes === undefined ? await store.get(key, { hasher: fed.hasher }) : await getCapped(store, key, limits.maxBytes, `artifact '${name}'${where ? ` of ${where}` : ""}`);
  return decode(store, host, ref, name, where, stored, limits, fed);
}

/** A hasher handed to a store's read, counting what the store fed it. */
interface Fed {
  hasher: Hasher;
  bytes: number;
}

function feeding(host: Host): Fed {
  const h = host.sha256();
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
  if (!store.getSync) throw new TsflowError("Datastore", `datastore ${store.url} cannot read synchronously`);
  return decode(store, host, ref, name, where, store.getSync(blobKey(ref.hash)));
}
