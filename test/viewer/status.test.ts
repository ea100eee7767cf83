/**
 * One reader of a run's status for the client and the viewer (issue #12 item 4): a run whose
 * orchestrator died on this machine reads as abandoned at once in both, though its heartbeat
 * is fresh; the same run recorded on another machine waits for its heartbeat to age.
 */
import { spawnSync } from "node:child_process";
import { hostname } from "node:os";
import { describe, expect, it } from "vitest";
import { putJson } from "../../core/_datastore.ts";
import { heartbeatKey, runKey } from "../../core/_layout.ts";
import { createClient } from "../../core/client.ts";
import fsDatastore from "../../plugins/datastores/fs.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createViewerApp } from "../../viewer/app.ts";
import { tempStore } from "../_helpers.ts";

/** The pid of a process that has just ended. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout);
}

async function runningRun(machine: string) {
  const store = fsDatastore({ root: tempStore() });
  const run = `${Date.now()}-dead`;
  await putJson(store, runKey("DeadFlow", run), {
    flow: "DeadFlow", runId: run, status: "running", createdAt: Date.now(), tags: [], systemTags: [], parameterValues: {},
    orchestrator: { hostname: machine, pid: deadPid() },
    graph: { order: ["start", "end"], steps: { start: { type: "linear", next: ["end"] }, end: { type: "end", next: [] } } },
  });
  await store.put(heartbeatKey("DeadFlow", run), new TextEncoder().encode(String(Date.now())));
  return { store, run };
}

describe("a run whose orchestrator died", () => {
  it("on this machine is abandoned at once, in the client and in the viewer", async () => {
    const { store, run } = await runningRun(hostname());
    const client = createClient(store, nodeHost());
    const r = await client.Flow.get("DeadFlow").run(run);
    expect(r.abandoned).toBe(true);
    const app = createViewerApp({ store, host: nodeHost() });
    const page = await (await app.request(`http://127.0.0.1/runs/DeadFlow/${run}`, { headers: { Host: "127.0.0.1" } })).text();
    expect(page).toMatch(/st-abandoned/);
    const list = await (await app.request("http://127.0.0.1/runs?status=abandoned", { headers: { Host: "127.0.0.1" } })).text();
    expect(list).toContain(run);
  });

  it("on another machine stays running until its heartbeat ages, in both", async () => {
    const { store, run } = await runningRun("some-other-machine");
    const client = createClient(store, nodeHost());
    expect((await client.Flow.get("DeadFlow").run(run)).status).toBe("running");
    const app = createViewerApp({ store, host: nodeHost() });
    const page = await (await app.request(`http://127.0.0.1/runs/DeadFlow/${run}`, { headers: { Host: "127.0.0.1" } })).text();
    expect(page).not.toMatch(/st-abandoned/);
    expect(page).toMatch(/st-running/);
  });
});
