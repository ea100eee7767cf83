/**
 * Opening a datastore from what the user typed: `s3://bucket/prefix` or a path. Without one,
 * `.tsflow` is found by walking up from the working directory, like git finds `.git`, so
 * every command in a project sees the same runs.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { TsflowError } from "../core/errors.ts";
import type { Datastore } from "../core/types.ts";
import fsDatastore from "../plugins/datastores/fs.ts";

const opened = new Map<string, Promise<Datastore>>();

/** The default local datastore root for `cwd`. */
export function findLocalRoot(cwd = process.cwd()): string {
  let dir = resolve(cwd);
  for (;;) {
    const candidate = join(dir, ".tsflow");
    if (existsSync(candidate) && statSync(candidate).isDirectory()) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return join(resolve(cwd), ".tsflow");
    dir = parent;
  }
}

/** Opens (once per location) the datastore named by `location`, `TSFLOW_DATASTORE`, or the default. */
export function openDatastore(location?: string, cwd = process.cwd()): Promise<Datastore> {
  const where = location || process.env.TSFLOW_DATASTORE || findLocalRoot(cwd);
  let p = opened.get(where);
  if (!p) {
    p = open(where, cwd);
    opened.set(where, p);
  }
  return p;
}

async function open(where: string, cwd: string): Promise<Datastore> {
  if (where.startsWith("s3://")) {
    const { default: s3Datastore } = await import("../plugins/datastores/s3.ts");
    return s3Datastore({ url: where });
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(where) && !where.startsWith("file://")) {
    throw new TsflowError("BadOption", `datastore '${where}' is not supported: use a local path or s3://bucket/prefix`);
  }
  const path = where.startsWith("file://") ? new URL(where).pathname : resolve(cwd, where);
  return fsDatastore({ root: path });
}
