/** What checks a datastore's blobs needs, free of vitest (child processes import it too). */
import { createHash } from "node:crypto";
import { blake3 } from "../core/_blake3.ts";
import nodeHost from "../plugins/host/node.ts";

const host = nodeHost();

/**
 * Whether a blob's bytes hash to its name: SHA-256 (datastores written before BLAKE3, hosts
 * without a native one) or BLAKE3 (references with `alg: "blake3"`).
 */
export function matchesBlobName(bytes: Uint8Array, name: string): boolean {
  if (createHash("sha256").update(bytes).digest("hex") === name) return true;
  const h = host.blake3?.() ?? blake3();
  h.update(bytes);
  return h.digest() === name;
}
