/**
 * Any unstorage driver as a tsflow datastore, here its `fs-lite` driver (docs/datastores.md):
 *
 *   tsflow run examples/pets.ts --datastore ./examples/plugins/unstorage-store.ts:base=/tmp/kv
 */
import fsLiteDriver from "unstorage/drivers/fs-lite";
import { unstorageDatastore } from "tsflow";

export default (options: { base: string }) => unstorageDatastore({ driver: fsLiteDriver({ base: options.base }), name: "fs-lite", url: `fs-lite://${options.base}` });
