import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fsDatastore from "../../plugins/datastores/fs.ts";
import { datastoreSuite } from "../../testing/datastores.ts";

datastoreSuite(
  "fs",
  async () => {
    const root = await mkdtemp(join(tmpdir(), "tsflow-fs-"));
    return { store: fsDatastore({ root }), cleanup: () => rm(root, { recursive: true, force: true }) };
  },
);
