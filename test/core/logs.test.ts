/**
 * Task logs (issue #12 item 5, #19 item 8): one writer per attempt appends numbered chunks, so a
 * log costs O(output) bytes to store, is readable while the task runs, and a reader of the tail
 * reads only the chunks it needs.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { wrapDatastore } from "../../core/_datastore.ts";
import { LogWriter, readLog, readLogTail } from "../../core/_logs.ts";
import type { Datastore } from "../../core/types.ts";
import memoryDatastore from "../../plugins/datastores/memory.ts";
import { getLog } from "../../viewer/data.ts";
import { CLI, cli, fixture, ROOT, tempStore, waitFor } from "../_helpers.ts";

const at = { flow: "F", run: "1", step: "s", task: "1", attempt: 0 };
const text = (s: string) => new TextEncoder().encode(s);

/** A real memory store that counts what is read and written through it. */
function counted(): { store: Datastore; gets: string[]; putBytes: () => number } {
  const inner = wrapDatastore(memoryDatastore());
  const gets: string[] = [];
  let put = 0;
  const store: Datastore = {
    ...inner,
    get: (key) => {
      gets.push(key);
      return inner.get(key);
    },
    put: (key, data, o) => {
      put += data instanceof Uint8Array ? data.byteLength : data.reduce((a, c) => a + c.byteLength, 0);
      return inner.put(key, data, o);
    },
  };
  return { store, gets, putBytes: () => put };
}

describe("LogWriter and the readers", () => {
  it("appends one chunk per flush, writing each byte once, and reads back the concatenation", async () => {
    const { store, putBytes } = counted();
    const w = new LogWriter(store, at, { flushMs: 60_000 });
    let expected = "";
    for (let i = 0; i < 50; i++) {
      const line = `line ${i} ${"y".repeat(1000)}\n`;
      expected += line;
      w.add("stdout", text(line));
      if (i % 5 === 4) await w.flush();
    }
    w.add("stderr", text("oops\n"));
    await w.close();
    expect(await store.list("flows/F/runs/1/tasks/s/1/0/stdout/")).toHaveLength(10);
    expect(putBytes()).toBe(expected.length + 5);
    expect(new TextDecoder().decode((await readLog(store, at, "stdout"))!)).toBe(expected);
    expect(new TextDecoder().decode((await readLog(store, at, "stderr"))!)).toBe("oops\n");
    expect(await readLog(store, { ...at, attempt: 1 }, "stdout")).toBeNull();
  });

  it("a tail read takes only the last chunks, and says how big the whole log is", async () => {
    const { store, gets } = counted();
    const w = new LogWriter(store, at, { flushMs: 60_000 });
    for (let i = 0; i < 100; i++) {
      w.add("stdout", text(`${String(i).padStart(999, ".")}\n`));
      await w.flush();
    }
    await w.close();
    gets.length = 0;
    const tail = (await readLogTail(store, at, "stdout", 2500))!;
    expect(gets.length).toBe(3);
    expect(tail.truncated).toBe(true);
    expect(tail.size).toBe(100_000);
    expect(new TextDecoder().decode(tail.bytes).endsWith(`${String(99).padStart(999, ".")}\n`)).toBe(true);
    expect(tail.bytes.byteLength).toBe(2500);
    gets.length = 0;
    const page = (await getLog(store, "F", "1", "s", "1", 0, "stdout", 1000))!;
    expect(page.size).toBe(100_000);
    expect(gets.length).toBe(1);
  });

  it("keeps output a failing store refused and writes it, in order, once the store is back", async () => {
    const inner = wrapDatastore(memoryDatastore());
    let down = true;
    const store: Datastore = { ...inner, put: (k, d, o) => (down ? Promise.reject(new Error("unreachable")) : inner.put(k, d, o)) };
    const errors: unknown[] = [];
    const w = new LogWriter(store, at, { flushMs: 60_000, onError: (e) => errors.push(e) });
    w.add("stdout", text("one\n"));
    await w.flush();
    w.add("stdout", text("two\n"));
    down = false;
    await w.close();
    expect(errors).toHaveLength(1);
    expect(new TextDecoder().decode((await readLog(inner, at, "stdout"))!)).toBe("one\ntwo\n");
  });

  it("reads a log stored whole by an older tsflow", async () => {
    const store = wrapDatastore(memoryDatastore());
    await store.put("flows/F/runs/1/tasks/s/1/0/stdout", text("old style\n"));
    expect(new TextDecoder().decode((await readLog(store, at, "stdout"))!)).toBe("old style\n");
    expect((await readLogTail(store, at, "stdout", 3))!).toMatchObject({ size: 10, truncated: true });
  });
});

describe("a task's log through the CLI", () => {
  it("is readable with tsflow logs while the task runs, and whole at the end", async () => {
    const ds = tempStore();
    const gate = join(ds, "gate");
    const child = spawn(process.execPath, [CLI, "run", fixture("log-heavy.ts"), "--mb", "1", "--seconds", "1", "--gate", gate, "--datastore", ds], { cwd: ROOT, stdio: "ignore" });
    const ended = new Promise<number | null>((r) => child.on("exit", r));
    try {
      const runs = join(ds, "flows", "LogHeavyFlow", "runs");
      expect(await waitFor(() => existsSync(runs) && readdirSync(runs).length > 0, 60_000)).toBe(true);
      const runId = readdirSync(runs)[0]!;
      const spec = `LogHeavyFlow/${runId}/talk`;
      let seen = "";
      const waiting = async () => {
        const r = await cli(["logs", spec, "--datastore", ds]);
        seen = r.stdout;
        return seen.includes("waiting for the gate");
      };
      const end = Date.now() + 60_000;
      while (!(await waiting()) && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
      expect(seen).toContain("waiting for the gate");
      expect(seen).not.toContain("through the gate");
      expect(seen.length).toBe(1024 * 1024 + "waiting for the gate\n".length);
      writeFileSync(gate, "");
      expect(await ended).toBe(0);
      const full = await cli(["logs", spec, "--datastore", ds]);
      expect(full.stdout.endsWith("waiting for the gate\nthrough the gate\n")).toBe(true);
      const last = await cli(["logs", spec, "--tail", "3", "--datastore", ds]);
      expect(last.stdout).toBe(`${"x".repeat(1023)}\nwaiting for the gate\nthrough the gate\n`);
      const bad = await cli(["logs", spec, "--tail", "0", "--datastore", ds]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/option --tail must be a whole number of at least 1, got '0'/);
      // Stored as chunks only, each byte once.
      const dir = join(runs, runId, "tasks", "talk", "2", "0");
      expect(existsSync(join(dir, "stdout"))).toBe(true);
      expect(statSync(join(dir, "stdout")).isDirectory()).toBe(true);
      const chunks = readdirSync(join(dir, "stdout"));
      expect(chunks.length).toBeGreaterThan(1);
      expect(chunks.reduce((a, c) => a + statSync(join(dir, "stdout", c)).size, 0)).toBe(full.stdout.length);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
