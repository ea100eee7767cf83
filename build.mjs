// Builds what the package publishes:
//   dist/tsflow.mjs   the single-file CLI, which is also the library (a flow's `import "tsflow"`
//                     is pointed at it, so the flow and the runtime share one copy)
//   dist/index.mjs    the library entry (package.json `exports`)
//   dist/types/       declarations for the library (package.json `exports` "types")
// Dependencies stay external (but for a few small ones): npm installs them, tsx must load its
// own hook files, and the heavy ones (AWS SDK, docker client, viewer) are imported lazily.
// `node build.mjs --no-types` skips the declarations (a few seconds) for a quick rebuild;
// `node build.mjs --deno` builds only dist/deno/, the input of `deno compile`.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parse } from "acorn";
import { build } from "esbuild";

const t0 = Date.now();
// Small pure-ESM packages on every start's path are inlined: resolving each bare import costs a
// start some milliseconds. Every other package stays external.
const INLINE = ["acorn", "citty", "consola"];
const pkg = JSON.parse(readFileSync("package.json", "utf8"));
/**
 * Node builtins a worker may never call (hashing is BLAKE3's, spawning and gzip are rare), which
 * Node has not loaded at start: each name imported from them and only ever called is loaded on
 * its first call instead of at every process's start (~5 ms of a worker's CPU).
 */
const LAZY_BUILTINS = new Set(["node:crypto", "node:child_process", "node:zlib"]);
const external = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies, ...pkg.optionalDependencies, ...pkg.peerDependencies })
  .filter((name) => !INLINE.includes(name))
  .flatMap((name) => [name, `${name}/*`]);
const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external,
  sourcemap: "linked",
  logLevel: "warning",
  outExtension: { ".js": ".mjs" },
};
// One file has no chunks, so esbuild hoists the static imports of every module it inlines, even
// of those the CLI imports lazily (`tsflow view` → hono). A heavy package imported statically
// by a lazily loaded module would then load on every start; this plugin turns those imports
// into awaited dynamic imports that run when (and only if) the module itself is first used.
const HEAVY = /^(hono(\/[^"']+)?|@hono\/[^"']+|@aws-sdk\/[^"']+|dockerode)$/;
const lazyHeavy = {
  name: "lazy-heavy-imports",
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (args.path.includes("node_modules")) return undefined;
      const src = await readFile(args.path, "utf8");
      const out = src.replace(/^import\s+(?!type\s)([^;]+?)\s+from\s+["']([^"']+)["'];?/gm, (all, clause, spec) => {
        if (!HEAVY.test(spec)) return all;
        const named = /\{([^}]*)\}/.exec(clause)?.[1];
        const star = /\*\s+as\s+(\w+)/.exec(clause)?.[1];
        const def = /^\s*(\w+)/.exec(clause.replace(/\{[^}]*\}|\*\s+as\s+\w+/, ""))?.[1];
        const parts = (named ?? "")
          .split(",")
          .map((p) => p.trim())
          .filter((p) => p && !p.startsWith("type "))
          .map((p) => p.replace(/\s+as\s+/, ": "));
        if (def) parts.unshift(`default: ${def}`);
        const lines = [];
        if (star) lines.push(`const ${star} = await import(${JSON.stringify(spec)});`);
        if (parts.length) lines.push(`const { ${parts.join(", ")} } = await import(${JSON.stringify(spec)});`);
        return lines.join(" ");
      });
      return { contents: out, loader: "ts" };
    });
  },
};
const denoOnly = process.argv.includes("--deno");
if (!denoOnly) {
  await Promise.all([
    buildCli(),
    build({ ...common, plugins: [lazyHeavy], entryPoints: { index: "mod.ts" }, outdir: "dist" }),
    build({ ...common, plugins: [lazyHeavy], entryPoints: { testing: "testing.ts" }, outdir: "dist" }),
  ]);
  // dist/job.mjs: a Batch job's entry (cli/job.ts), started once per task of a foreach. The
  // packages a task needs (the S3 client, secrets, cards) are inlined: resolving and lexing the
  // AWS SDK's CommonJS files from node_modules cost each job ~100 ms of CPU. What a task
  // never loads (the CLI's other clients, esbuild, the viewer's server) stays external.
  const JOB_EXTERNAL = ["esbuild", "tsx", "citty", "consola", "hono", "@hono/node-server", "vega", "vega-lite", "vega-embed", "@aws-sdk/client-batch", "@aws-sdk/client-sfn", "@aws-sdk/client-scheduler", "@aws-sdk/client-eventbridge", ...Object.keys(pkg.devDependencies ?? {})];
  await build({
    ...common,
    external: JOB_EXTERNAL.flatMap((name) => [name, `${name}/*`]),
    plugins: [lazyHeavy],
    entryPoints: { job: "cli/job.ts" },
    outdir: "dist",
    banner: { js: 'import { createRequire as __tsflowRequire } from "node:module"; const require = __tsflowRequire(import.meta.url);' },
  });
  // The executor suite's workers import its fixture flows from a file beside the bundle.
  mkdirSync("dist/fixtures", { recursive: true });
  copyFileSync("testing/fixtures/suite.ts", "dist/fixtures/suite.ts");
}

if (!denoOnly && !process.argv.includes("--no-types")) {
  // TypeScript 7 has no JS API (so no dts bundler); its compiler emits one .d.ts per module.
  // Files named on the command line make tsc ignore tsconfig.json, so the options are here.
  rmSync("dist/types", { recursive: true, force: true });
  const tsc = join("node_modules", ".bin", process.platform === "win32" ? "tsc.cmd" : "tsc");
  const options = "--declaration --emitDeclarationOnly --rootDir . --outDir dist/types --target ES2022 --module nodenext --moduleResolution nodenext --types node --strict --allowImportingTsExtensions --verbatimModuleSyntax --skipLibCheck --lib ES2023,DOM,DOM.Iterable";
  execFileSync(tsc, ["mod.ts", "testing.ts", "--ignoreConfig", ...options.split(" ")], { stdio: "inherit" });
  // Declarations keep the sources' `.ts` specifiers; a user's tsc resolves `./x.js` to
  // `./x.d.ts` under every moduleResolution, so point them there.
  for (const file of walk("dist/types")) {
    const src = readFileSync(file, "utf8");
    const out = src.replace(/(from\s+|import\()(["'])(\.{1,2}\/[^"']+)\.ts\2/g, "$1$2$3.js$2");
    if (out !== src) writeFileSync(file, out);
  }
  // Plain JS modules (plugins/host/*.mjs: bin/tsflow.mjs runs them before the bundle) have
  // hand-written declarations, which tsc does not emit: declarations importing them need them.
  for (const name of readdirSync("plugins/host").filter((n) => n.endsWith(".d.mts"))) {
    copyFileSync(join("plugins/host", name), join("dist/types/plugins/host", name));
  }
}
if (denoOnly) {
  // `deno compile` embeds every file of a node_modules directory it can see (500 MB here), so
  // the Deno binary is compiled from one self-contained bundle in dist/deno/ with its own
  // deno.json, whose import map points a flow's `import "tsflow"` at the binary's own copy.
  // esbuild itself stays out: a compiled binary imports TypeScript flows natively.
  rmSync("dist/deno", { recursive: true, force: true });
  await build({
    ...common,
    external: ["esbuild", "tsx"],
    entryPoints: { tsflow: "cli/compile.ts" },
    outdir: "dist/deno",
    sourcemap: false,
    banner: { js: 'import { createRequire as __tsflowRequire } from "node:module"; const require = __tsflowRequire(import.meta.url);' },
  });
  writeFileSync("dist/deno/deno.json", `${JSON.stringify({ imports: { tsflow: "./tsflow.mjs" } }, null, 2)}\n`);
}
console.log(`built dist/ in ${Date.now() - t0} ms`);

/**
 * dist/tsflow.mjs and dist/tsflow.script.js: the CLI bundle as a classic script, which V8 can keep
 * compiled between runs on every Node (cli/_script-loader.ts says why), and a small ES module that
 * loads it and exports what the bundle exports, so a flow's `import "tsflow"` still gets the one
 * copy of the library the CLI runs.
 */
async function buildCli() {
  const out = await build({ ...common, plugins: [lazyHeavy], entryPoints: { tsflow: "cli/main.ts" }, outdir: "dist", write: false, sourcemap: "external" });
  const code = out.outputFiles.find((f) => f.path.endsWith(".mjs")).text;
  const map = out.outputFiles.find((f) => f.path.endsWith(".map")).text;
  const { script, names } = moduleToScript(code);
  writeFileSync("dist/tsflow.script.js", `${script}//# sourceMappingURL=tsflow.script.js.map\n`);
  writeFileSync("dist/tsflow.script.js.map", map);
  rmSync("dist/tsflow.mjs.map", { force: true });
  const buildId = createHash("sha256").update(script).digest("hex").slice(0, 16);
  await build({
    ...common,
    sourcemap: false,
    stdin: {
      contents: [
        `import { loadScript } from "./cli/_script-loader.ts";`,
        `const lib = loadScript(import.meta, (specifier) => import(specifier), "./tsflow.script.js", ${JSON.stringify(buildId)});`,
        `export const { ${names.join(", ")} } = lib;`,
      ].join("\n"),
      resolveDir: ".",
      sourcefile: "tsflow-entry.js",
      loader: "js",
    },
    outfile: "dist/tsflow.mjs",
  });
}

/**
 * Turns esbuild's ES module output into `(function ($tsReq, $tsImp, $tsflowMeta) { …; return
 * exports })`: static imports (only Node builtins: the build keeps packages lazy) become
 * `$tsReq` calls hoisted to the top (as ES imports are), `import(…)` becomes `$tsImp(…)`,
 * `import.meta` becomes `$tsflowMeta`, the final `export { … }` a `return`. Each replacement keeps
 * the lines (and `import`/`import.meta` their columns), so esbuild's source map still applies.
 */
function moduleToScript(src) {
  for (const name of ["$tsReq", "$tsImp", "$tsflowMeta", "$tsLazy"]) if (src.includes(name)) throw new Error(`build: the bundle already uses the name ${name}`);
  const ast = parse(src, { ecmaVersion: "latest", sourceType: "module", allowHashBang: true });
  const edits = [];
  const hoisted = [];
  let names;
  const blank = (node) => src.slice(node.start, node.end).replace(/[^\n]/g, " ");
  const onlyCalled = onlyCalledNames(ast);
  for (const node of ast.body) {
    if (node.type === "ImportDeclaration") {
      const from = node.source.value;
      if (!from.startsWith("node:")) throw new Error(`build: dist/tsflow.mjs would import "${from}" at start-up; import it lazily`);
      for (const s of node.specifiers) {
        const value = `$tsReq(${JSON.stringify(from)})`;
        const local = s.local.name;
        const imported = JSON.stringify(s.imported?.name ?? s.imported?.value);
        if (s.type === "ImportSpecifier" && LAZY_BUILTINS.has(from) && onlyCalled.has(local)) {
          // Every use of the name is a call: a function that loads the module on first call
          // behaves the same.
          hoisted.push(`${local} = function () { return $tsLazy(${JSON.stringify(from)})[${imported}].apply(this, arguments); }`);
        } else hoisted.push(`${local} = ${s.type === "ImportSpecifier" ? `${value}[${imported}]` : value}`);
      }
      edits.push([node.start, node.end, blank(node)]);
    } else if (node.type === "ExportNamedDeclaration" && !node.declaration && !node.source) {
      names = node.specifiers.map((s) => s.exported.name);
      if (names.some((n) => !/^[A-Za-z_$][\w$]*$/.test(n) || n === "default")) throw new Error("build: the bundle has an export the loader cannot re-export");
      const body = node.specifiers.map((s) => (s.exported.name === s.local.name ? s.local.name : `${s.exported.name}: ${s.local.name}`)).join(", ");
      edits.push([node.start, node.end, `return { ${body} };${"\n".repeat(blank(node).split("\n").length - 1)}`]);
    } else if (/^Export/.test(node.type)) {
      throw new Error(`build: unexpected ${node.type} in the bundle`);
    }
  }
  if (!names) throw new Error("build: the bundle exports nothing");
  (function visit(n) {
    if (n.type === "ImportExpression") edits.push([n.start, n.start + "import".length, "$tsImp"]);
    else if (n.type === "MetaProperty" && n.meta.name === "import") edits.push([n.start, n.end, "$tsflowMeta"]);
    for (const v of Object.values(n)) {
      if (Array.isArray(v)) for (const c of v) c && typeof c.type === "string" && visit(c);
      else if (v && typeof v.type === "string") visit(v);
    }
  })(ast);
  if (src.startsWith("#!")) edits.push([0, 2, "//"]);
  edits.sort((a, b) => a[0] - b[0]);
  let body = "";
  let at = 0;
  for (const [start, end, text] of edits) {
    body += src.slice(at, start) + text;
    at = end;
  }
  body += src.slice(at);
  // On the first line, before the bundle's own first line: the source map's lines stay right.
  const lazy = "const $tsModules = {}, $tsLazy = (id) => ($tsModules[id] ??= $tsReq(id));";
  const imports = hoisted.length ? `const ${hoisted.join(", ")};` : "";
  const script = `(function ($tsReq, $tsImp, $tsflowMeta) { "use strict"; ${lazy}${imports}${body}\n})\n`;
  return { script, names };
}

/**
 * The identifiers of the bundle that appear only as the callee of a call, wherever they appear
 * (conservative: a same-named local used otherwise anywhere disqualifies the name).
 */
function onlyCalledNames(ast) {
  const called = new Set();
  const other = new Set();
  (function visit(n, parent, key) {
    if (n.type === "Identifier") {
      const notReference =
        (parent.type === "MemberExpression" && key === "property" && !parent.computed) ||
        (["Property", "MethodDefinition", "PropertyDefinition"].includes(parent.type) && key === "key" && !parent.computed && !parent.shorthand) ||
        ["LabeledStatement", "BreakStatement", "ContinueStatement", "ImportSpecifier", "ImportDefaultSpecifier", "ImportNamespaceSpecifier"].includes(parent.type);
      if (parent.type === "CallExpression" && key === "callee") called.add(n.name);
      else if (!notReference) other.add(n.name);
      return;
    }
    for (const [k, v] of Object.entries(n)) {
      if (Array.isArray(v)) for (const c of v) c && typeof c.type === "string" && visit(c, n, k);
      else if (v && typeof v.type === "string") visit(v, n, k);
    }
  })(ast, ast, "");
  return new Set([...called].filter((name) => !other.has(name)));
}

function* walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (p.endsWith(".d.ts")) yield p;
  }
}
