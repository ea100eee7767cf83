/**
 * Artifacts as content-addressed blobs: the key is the SHA-256 of the serialized bytes, so an
 * identical value is stored once per datastore, an unchanged artifact passes downstream as a
 * reference (its hash), and every read can prove it got the bytes that were written.
 */
import { blobKey } from "./_layout.ts";
import { TsflowError } from "./errors.ts";
import { deserialize, SerializeError, serialize } from "./serialize.ts";
import type { ArtifactRef, Bytes, Datastore, Host } from "./types.ts";

/** Hashes bytes given as several chunks, without joining them. */
export function hashChunks(host: Host, chunks: readonly Bytes[]): string {
  const h = host.sha256();
  for (const c of chunks) h.update(c);
  return h.digest();
}

/** Serializes `value`, stores its blob (unless the store already has it) and returns its reference. */
export async function storeArtifact(store: Datastore, host: Host, name: string, value: unknown): Promise<ArtifactRef> {
  let encoded: ReturnType<typeof serialize>;
  try {
    encoded = serialize(value, name);
  } catch (e) {
    if (e instanceof SerializeError) throw new TsflowError("Serialize", e.message);
    throw e;
  }
  const hash = hashChunks(host, encoded.chunks);
  await store.put(blobKey(hash), encoded.chunks, { immutable: true });
  return { hash, size: encoded.size, type: encoded.type };
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

function decode(store: Datastore, host: Host, ref: ArtifactRef, name: string, where: string, bytes: Bytes | null): unknown {
  const label = `artifact '${name}'${where ? ` of ${where}` : ""}`;
  if (bytes === null) {
    throw new TsflowError("CorruptArtifact", `${label} is missing: blob ${ref.hash} is not in ${store.url} (was it deleted by gc or by hand?)`);
  }
  const actual = hashChunks(host, [bytes]);
  if (actual !== ref.hash) {
    throw new TsflowError("CorruptArtifact", `${label} is corrupt: blob ${blobKey(ref.hash)} in ${store.url} does not match its hash (got ${actual.slice(0, 12)}…)`);
  }
  try {
    return deserialize(bytes, name);
  } catch (e) {
    throw new TsflowError("CorruptArtifact", `${label} cannot be read: ${(e as Error).message}`);
  }
}

/** Loads and verifies an artifact. A missing or corrupt blob is an error naming the artifact. */
export async function loadArtifact(store: Datastore, host: Host, ref: ArtifactRef, name: string, where = ""): Promise<unknown> {
  return decode(store, host, ref, name, where, await store.get(blobKey(ref.hash)));
}

/** Synchronous {@link loadArtifact}, for stores with `getSync`. */
export function loadArtifactSync(store: Datastore, host: Host, ref: ArtifactRef, name: string, where = ""): unknown {
  if (!store.getSync) throw new TsflowError("Datastore", `datastore ${store.url} cannot read synchronously`);
  return decode(store, host, ref, name, where, store.getSync(blobKey(ref.hash)));
}
