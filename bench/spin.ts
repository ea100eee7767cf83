/**
 * spin: re-running one task of a 1,000-way foreach (examples/foreach.ts --n 1000) — the whole
 * `tsflow spin Flow/run/step/task` command (process start included, nothing stored), the
 * in-process `spinStep`, and how many datastore keys one spin reads.
 *
 *   npx tsx bench/spin.ts
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { measure, type Row } from "./_measure.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const cli = join(root, "bin", "tsflow.mjs");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchSpin(): Promise<Row[]> {
  const ds = mkdtempSync(join(tmpdir(), "tsflow-bench-spin-"));
  try {
    // measure() throws when a command fails.
    await measure(process.execPath, [cli, "run", "examples/foreach.ts", "--n", "1000", "--datastore", ds]);
    const runId = readdirSync(join(ds, "flows", "ForeachFlow", "runs"))[0]!;
    const dir = join(ds, "flows", "ForeachFlow", "runs", runId, "tasks", "square_it");
    const task = readdirSync(dir).find((id) => JSON.parse(readFileSync(join(dir, id, "task.json"), "utf8")).foreach.at(-1).index === 500)!;
    const pathspec = `ForeachFlow/${runId}/square_it/${task}`;

    const walls: number[] = [];
    for (let i = 0; i < 5; i++) {
      walls.push((await measure(process.execPath, [cli, "spin", pathspec, "--datastore", ds, "--no-persist"])).seconds);
    }

    const { spinStep } = await import("../mod.ts");
    const { default: ForeachFlow } = await import("../examples/foreach.ts");
    const { default: fsDatastore } = await import("../plugins/datastores/fs.ts");
    const base = fsDatastore({ root: ds });
    let reads = 0;
    const counted = new Proxy(base, {
      get(target, key) {
        const v = Reflect.get(target, key);
        if (typeof v !== "function") return v;
        if (!["get", "getSync", "getStream", "has", "list", "listAll", "size"].includes(String(key))) return v.bind(target);
        return (...args: unknown[]) => {
          reads++;
          return v.apply(target, args);
        };
      },
    });
    const inProcess: number[] = [];
    const keys: number[] = [];
    for (let i = 0; i < 7; i++) {
      reads = 0;
      const t0 = performance.now();
      const r = await spinStep(ForeachFlow, pathspec, { datastore: counted, persist: false });
      inProcess.push(performance.now() - t0);
      if (!r.ok) throw new Error(`spinStep failed: ${r.error?.message}`);
      keys.push(reads);
    }
    return [
      { name: "spin one task of a 1,000-way foreach: tsflow spin … --no-persist, wall (median of 5)", value: median(walls), unit: "s", target: "< 1 s" },
      // The first spin in a process reads everything; later ones find run.json and the foreach list cached.
      { name: "spin one task of a 1,000-way foreach: spinStep in-process, first (flow loaded)", value: inProcess[0]!, unit: "ms" },
      { name: "spin one task of a 1,000-way foreach: spinStep in-process, median of 6 more", value: median(inProcess.slice(1)), unit: "ms" },
      { name: "spin one task of a 1,000-way foreach: datastore reads, first spin", value: keys[0]!, unit: "" },
    ];
  } finally {
    rmSync(ds, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchSpin()) console.log(`${r.name.padEnd(90)} ${r.value.toFixed(2).padStart(9)} ${r.unit}${r.target ? `  (target ${r.target})` : ""}`);
}
