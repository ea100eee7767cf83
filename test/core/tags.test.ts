/** The client's tag API (issue #12 item 6): run.addTag/removeTag/replaceTag, also on a running run. */
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { expect, it } from "vitest";
import { createClient } from "../../core/client.ts";
import nodeHost from "../../plugins/host/node.ts";
import { startFlow } from "../../runner/run.ts";
import { openDatastore } from "../../runner/stores.ts";
import { fixture, tempStore } from "../_helpers.ts";

it("a tag added while the run goes on is kept when it ends; remove and replace check what they change", async () => {
  const ds = tempStore();
  const file = resolve(fixture("slow-foreach.ts"));
  const { default: SlowForeachFlow } = (await import(file)) as { default: Function };
  // The run holds at its join until the gate opens: the tag is added while it runs, however slow
  // the machine.
  const gate = join(ds, "gate");
  const handle = startFlow(SlowForeachFlow, { file, datastore: ds, maxWorkers: 2, tags: ["first"], params: { gate } });
  const id = await handle.started;
  const client = createClient(await openDatastore(ds), nodeHost());
  const live = await client.Flow.get("SlowForeachFlow").run(id);
  expect(live.status).toBe("running");
  expect(await live.addTag("mid-run", "second")).toEqual(["first", "mid-run", "second"]);
  expect(live.tags).toEqual(["first", "mid-run", "second"]);
  expect((await client.Flow.get("SlowForeachFlow").run(id)).status).toBe("running");
  writeFileSync(gate, "");
  const done = await handle.wait();
  expect(done.successful).toBe(true);
  const after = await client.Flow.get("SlowForeachFlow").run(id);
  expect(after.status).toBe("succeeded");
  expect(after.tags).toEqual(["first", "mid-run", "second"]);
  expect(await after.replaceTag("second", "2nd")).toEqual(["first", "mid-run", "2nd"]);
  expect(await after.removeTag("first")).toEqual(["mid-run", "2nd"]);
  await expect(after.removeTag("nope")).rejects.toThrow(/has no tag 'nope' .*nothing was changed/);
  await expect(after.removeTag(after.systemTags[0]!)).rejects.toThrow(/is a system tag .* cannot be removed/);
  await expect(after.addTag("two\nlines")).rejects.toThrow(/tags are 1 to 256 characters on one line/);
  expect((await client.Flow.get("SlowForeachFlow").run(id)).tags).toEqual(["mid-run", "2nd"]);
  // Namespaces and tag filters see the change.
  client.namespace(null);
  expect((await client.Flow.get("SlowForeachFlow").runs({ tags: ["2nd"] })).map((r) => r.id)).toEqual([id]);
});
