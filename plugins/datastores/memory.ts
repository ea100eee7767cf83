/**
 * The `memory` datastore: bytes in a `Map`, gone when the process exits. For unit tests and
 * for trying plugins out; it is unstorage's memory driver behind the unstorage adapter.
 */
import memoryDriver from "unstorage/drivers/memory";
import type { Datastore } from "../../core/types.ts";
import unstorageDatastore from "./unstorage.ts";

export const NAME = "memory";

export interface MemoryOptions {
  /** Shown in messages; tells several memory datastores apart. Defaults to `memory://<n>`. */
  url?: string;
}

let count = 0;

export default function memoryDatastore(options: MemoryOptions = {}): Datastore {
  return unstorageDatastore({ driver: memoryDriver(), name: NAME, url: options.url ?? `memory://${++count}` });
}
