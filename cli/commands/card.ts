/**
 * `tsflow card get|list|view FLOW/RUN/STEP[/TASK] [--id ID]`: a task's cards, read from the
 * datastore (nothing runs). `get` prints a self-contained HTML document (it renders offline),
 * `view` writes it to a file and opens the system's browser where there is one.
 */
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineCommand } from "citty";
import { type Card, parsePathspec, type Step, type Task } from "../../core/client.ts";
import { TsflowError } from "../../core/errors.ts";
import { cliClient, datastoreArg, table } from "./_client.ts";

const args = {
  pathspec: { type: "positional", description: "Flow/run/step[/task] (the task may be left out when the step has one)", required: true },
  id: { type: "string", description: "The card's id, when the task has several" },
  ...datastoreArg,
} as const;

/** The task a pathspec names (a step with a single task counts as that task). */
async function taskOf(pathspec: string, datastore: string | undefined): Promise<Task> {
  parsePathspec(pathspec, 3, 4);
  const { client } = await cliClient(datastore);
  const target = await client.get(pathspec);
  if (!("onlyTask" in target)) return target as Task;
  const tasks = await (target as Step).tasks();
  if (tasks.length === 1) return tasks[0]!;
  if (tasks.length === 0) throw new TsflowError("NotFound", `step ${pathspec} has no tasks`);
  throw new TsflowError("BadOption", `step ${pathspec} has ${tasks.length} tasks: name one, e.g. ${pathspec}/${tasks[0]!.id}`);
}

async function cardOf(pathspec: string, id: string | undefined, datastore: string | undefined): Promise<Card> {
  const task = await taskOf(pathspec, datastore);
  const cards = await task.cards();
  if (cards.length === 0) throw new TsflowError("NotFound", `task ${task.pathspec} has no cards (add @card() to its step, or run with --with card)`);
  if (id === undefined) {
    if (cards.length > 1) throw new TsflowError("BadOption", `task ${task.pathspec} has ${cards.length} cards: choose one with --id (${cards.map((c) => c.id).join(", ")})`);
    return cards[0]!;
  }
  const found = cards.find((c) => c.id === id);
  if (!found) throw new TsflowError("NotFound", `task ${task.pathspec} has no card '${id}' (it has ${cards.map((c) => c.id).join(", ")})`);
  return found;
}

const get = defineCommand({
  meta: { name: "get", description: "Print a card as one self-contained HTML file: tsflow card get Flow/run/step[/task] [--id ID] > card.html" },
  args,
  async run({ args }) {
    const card = await cardOf(String(args.pathspec), args.id, args.datastore);
    const html = await card.html();
    await new Promise<void>((ok, fail) => process.stdout.write(html, (e) => (e ? fail(e) : ok())));
    return 0;
  },
});

const list = defineCommand({
  meta: { name: "list", description: "List a task's cards: tsflow card list Flow/run/step[/task]" },
  args,
  async run({ args }) {
    const task = await taskOf(String(args.pathspec), args.datastore);
    const cards = await task.cards();
    if (cards.length === 0) {
      process.stdout.write(`task ${task.pathspec} has no cards\n`);
      return 0;
    }
    process.stdout.write(table(["ID", "TYPE", "STATE"], cards.map((c) => [c.id, c.type, c.error ? `render failed: ${c.error}` : c.final ? "final" : "live"])));
    return 0;
  },
});

const view = defineCommand({
  meta: { name: "view", description: "Open a card in the system's browser (or print the file it wrote): tsflow card view Flow/run/step[/task] [--id ID]" },
  args,
  async run({ args }) {
    const card = await cardOf(String(args.pathspec), args.id, args.datastore);
    const dir = join(tmpdir(), "tsflow-cards");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${card.task.replace(/\//g, "_")}_${card.id}.html`);
    writeFileSync(file, await card.html());
    process.stdout.write(`${file}\n`);
    const opener = process.platform === "darwin" ? "open" : process.platform === "win32" ? "explorer" : "xdg-open";
    if (process.env.TSFLOW_NO_BROWSER || (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY && process.platform === "linux")) {
      process.stderr.write("no browser to open here: open the file above\n");
      return 0;
    }
    await new Promise<void>((done) => {
      const child = spawn(opener, [file], { stdio: "ignore", detached: true });
      child.once("error", () => {
        process.stderr.write(`could not start ${opener}: open the file above\n`);
        done();
      });
      child.once("spawn", () => {
        child.unref();
        done();
      });
    });
    return 0;
  },
});

export default defineCommand({
  meta: { name: "card", description: "Read the cards of a task: get (HTML to stdout), view (open in a browser), list" },
  subCommands: { get, view, list },
});
