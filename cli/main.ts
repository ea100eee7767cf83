#!/usr/bin/env node
/**
 * The tsflow command line. A thin face over the library: each command is a citty
 * `defineCommand` object, loaded only when used. This is the only file that calls
 * `process.exit`.
 */
import { type CommandDef, defineCommand, renderUsage, runCommand } from "citty";
import { isTsflowError } from "../core/errors.ts";
import { VERSION } from "../core/version.ts";
import { restoreExtraCaCerts } from "../plugins/host/extra-ca.mjs";
import { trace } from "../runner/_trace.ts";
import { printable } from "./_terminal.ts";

// The CLI bundle is also the library: a flow's `import "tsflow"` resolves to this file, so
// the flow and the runtime running it share one copy (see runner/load.ts).
export * from "../mod.ts";

// The AWS SDK warns on every Node 20 process that it will want Node 22 from 2027; in a run's
// output that line would repeat once per worker. README states the Node support instead.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const commands: Record<string, () => Promise<CommandDef<any>>> = {
  run: () => import("./commands/run.ts").then((m) => m.default),
  show: () => import("./commands/show.ts").then((m) => m.default),
  check: () => import("./commands/check.ts").then((m) => m.default),
  view: () => import("./commands/view.ts").then((m) => m.default),
  resume: () => import("./commands/resume.ts").then((m) => m.default),
  runs: () => import("./commands/runs.ts").then((m) => m.default),
  logs: () => import("./commands/logs.ts").then((m) => m.default),
  dump: () => import("./commands/dump.ts").then((m) => m.default),
  tag: () => import("./commands/tag.ts").then((m) => m.default),
  delete: () => import("./commands/delete.ts").then((m) => m.default),
  gc: () => import("./commands/gc.ts").then((m) => m.default),
  card: () => import("./commands/card.ts").then((m) => m.default),
  spin: () => import("./commands/spin.ts").then((m) => m.default),
  "exit-hooks": () => import("./commands/exit-hooks.ts").then((m) => m.default),
  "step-functions": () => import("./commands/step-functions.ts").then((m) => m.default),
};

const mainCommand = defineCommand({
  meta: {
    name: "tsflow",
    version: VERSION,
    description: "Metaflow for TypeScript: run typed, persisted, resumable flows locally, in Docker or on AWS Batch",
  },
  subCommands: commands,
});

/** Runs the CLI with `argv` (without the node and script paths); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  // A worker started with the reduced copy of NODE_EXTRA_CA_CERTS gives steps (and what they
  // start) the user's own path back before anything else runs (plugins/host/extra-ca.mjs).
  const reducedCa = argv[0] === "__worker" ? restoreExtraCaCerts() : undefined;
  trace("cli loaded", argv[0] === "__worker" ? "worker" : "cli");
  if (reducedCa) trace(`NODE_EXTRA_CA_CERTS was the reduced copy ${reducedCa}`);
  if (argv[0] === "__worker") {
    const { workerMain } = await import("../runner/worker.ts");
    return workerMain((code) => process.exit(code));
  }
  const [name, ...rest] = argv;
  try {
    if (!name || name === "--help" || name === "-h") {
      process.stdout.write(`${usageText(await renderUsage(mainCommand))}\n`);
      return name ? 0 : 1;
    }
    if (name === "--version" || name === "-v") {
      process.stdout.write(`${VERSION}\n`);
      return 0;
    }
    const load = commands[name];
    if (!load) {
      process.stderr.write(`✖ unknown command '${name}'. Commands: ${Object.keys(commands).join(", ")} (tsflow --help)\n`);
      return 2;
    }
    const cmd = await load();
    if (INSPECTING.has(name)) {
      neutraliseControls();
      quietOnEpipe();
    } else muteOnEpipe();
    if ((rest.includes("--help") || rest.includes("-h")) && name !== "run" && name !== "resume" && name !== "step-functions") {
      process.stdout.write(`${usageText(await renderUsage(cmd, mainCommand))}\n`);
      return 0;
    }
    if ((rest.includes("--help") || rest.includes("-h")) && (name === "run" || name === "resume")) {
      process.stdout.write(`${usageText(await renderUsage(cmd, mainCommand))}\n`);
    }
    const { result } = await runCommand(cmd, { rawArgs: rest });
    return typeof result === "number" ? result : 0;
  } catch (e) {
    return reportError(e);
  }
}

/**
 * citty colours its usage whatever the output is; escape codes belong only on a terminal, and
 * never when NO_COLOR is set (no-color.org).
 */
function usageText(text: string): string {
  const plain = !process.stdout.isTTY || Boolean(process.env.NO_COLOR);
  return plain ? text.replace(/\x1b\[[0-9;]*m/g, "") : text;
}

/** Commands that print what runs stored: logs, tags, artifact names and values. */
const INSPECTING = new Set(["logs", "runs", "tag", "dump", "delete", "gc"]);

/**
 * Stored text is untrusted on a terminal: a log line or tag holding `ESC ]…` can retitle the
 * window, rewrite the screen or (on some terminals) answer back as typed input. When a stream
 * is a terminal, control characters other than newline and tab are shown escaped (`\x1b`);
 * piped output stays byte-exact.
 */
function neutraliseControls() {
  for (const stream of [process.stdout, process.stderr]) {
    if (!stream.isTTY) continue;
    const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    const decoder = new TextDecoder();
    stream.write = ((chunk: unknown, ...rest: unknown[]) => write(typeof chunk === "string" ? printable(chunk) : chunk instanceof Uint8Array ? printable(decoder.decode(chunk, { stream: true })) : chunk, ...rest)) as typeof stream.write;
  }
}

/** `tsflow logs … | head`: the reader left; that is the end of the output, not an error. */
function quietOnEpipe() {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") process.exit(0);
      throw e;
    });
  }
}

/**
 * `tsflow run … | head`: the reader left, but the run goes on (ending it there would leave its
 * tasks half done); what it would have printed is dropped, and its exit code still tells.
 */
function muteOnEpipe() {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
      stream.write = ((_chunk: unknown, ...rest: unknown[]) => {
        const done = rest.find((r) => typeof r === "function") as (() => void) | undefined;
        done?.();
        return true;
      }) as typeof stream.write;
    });
  }
}

function reportError(e: unknown): number {
  if (isTsflowError(e)) {
    process.stderr.write(`✖ ${e.message}\n${e.details.map((d) => `  ${d}\n`).join("")}`);
    return e.code === "BadOption" ? 2 : 1;
  }
  const err = e as Error;
  if (err?.name === "CLIError") {
    process.stderr.write(`✖ ${err.message} (tsflow --help)\n`);
    return 2;
  }
  process.stderr.write(`✖ unexpected error (a bug in tsflow; please report it): ${err?.stack ?? String(e)}\n`);
  return 1;
}

const isEntry = (() => {
  const g = globalThis as Record<symbol, unknown>;
  if (g[Symbol.for("tsflow.noAutoMain")]) return false;
  const argv1 = process.argv[1] ?? "";
  return /(main\.ts|tsflow\.mjs|tsflow)$/.test(argv1) || g[Symbol.for("tsflow.compiled")] === true;
})();

if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => {
      trace("exit");
      // Let pending stdout writes drain before leaving.
      if (process.stdout.writableLength === 0) process.exit(code);
      else process.stdout.once("drain", () => process.exit(code));
    },
    (e) => {
      process.stderr.write(`${(e as Error)?.stack ?? e}\n`);
      process.exit(1);
    },
  );
}
