import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fsDatastore from "../../plugins/datastores/fs.ts";
import { datastoreSuite } from "../../testing/datastores.ts";

datastoreSuite(
  "fs",
  async () => {
    const root = await mkdtemp(join(tmpdir(), "tsflow-fs-"));
    // Staged writes always, so the suite tests them whatever the machine's load.
    return { store: fsDatastore({ root, stage: "always" }), cleanup: () => rm(root, { recursive: true, force: true }) };
  },
);
