import { stat } from "node:fs/promises";
import { join } from "node:path";
import { defineCommand } from "citty";
import { TsflowError } from "../../core/errors.ts";
import { collectGarbage } from "../../core/gc.ts";
import { cliClient, datastoreArg, formatBytes, plural } from "./_client.ts";

export default defineCommand({
  meta: { name: "gc", description: "Delete blobs no run references: tsflow gc [--dry-run] [--grace 1h]" },
  args: {
    "dry-run": { type: "boolean", description: "Only report what would be deleted" },
    grace: { type: "string", description: "Keep unreferenced blobs younger than this: 90s, 30m, 1h, 0 (default 1h)" },
    ...datastoreArg,
  },
  async run({ args }) {
    const graceMs = parseDuration(args.grace === undefined ? "1h" : String(args.grace));
    const { store } = await cliClient(args.datastore);
    const root = store.root;
    // A blob's age comes from its file time on a local store; elsewhere every blob counts as young.
    const modifiedAt = root
      ? async (key: string) => {
          try {
            return (await stat(join(root, key))).mtimeMs;
          } catch {
            return null;
          }
        }
      : undefined;
    const dryRun = Boolean(args["dry-run"]);
    const r = await collectGarbage(store, { dryRun, graceMs, modifiedAt });
    const verb = dryRun ? "would delete" : "deleted";
    process.stdout.write(
      `${plural(r.runs, "run")} (${r.live} running), ${plural(r.blobs, "blob")}: ${r.referenced} referenced, ${r.young} unreferenced but younger than the grace period; ${verb} ${r.deleted.length} (${formatBytes(r.deletedBytes)})${r.staleCacheEntries ? `; ${dryRun ? "would remove" : "removed"} ${r.staleCacheEntries} stale @cached entries` : ""}\n`,
    );
    if (dryRun) for (const k of [...r.deleted, ...r.staleCacheKeys]) process.stdout.write(`  ${k}\n`);
    for (const run of r.damaged) process.stderr.write(`! ${run}: run.json is damaged; its blobs were kept (tsflow delete ${run} removes it)\n`);
    return 0;
  },
});

function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(s.trim());
  if (!m) throw new TsflowError("BadOption", `option --grace must be a duration like 90s, 30m or 1h, got '${s}'`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? "s") as "ms"];
  return Number(m[1]) * unit;
}
