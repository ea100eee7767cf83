/**
 * The docker executor: `@docker({ image })` on a step, or `tsflow run --executor docker`.
 *
 * It drives the `docker` CLI rather than the Engine API: `docker run -i` is a byte pipe, so a
 * container is exactly a process worker (`tsflow __worker` speaking `_protocol.ts`) and this file
 * reuses the process executor's pool; the CLI also honours `DOCKER_HOST`, contexts and TLS
 * settings users already have, with no client library to load. Warm containers (one per worker,
 * running task after task) are the default; `fresh: true` starts one container per task.
 *
 * The container runs this tsflow's own bundle (`dist/tsflow.mjs` and its `node_modules`,
 * mounted read-only at the same paths), so the image needs only Node, and the flow arrives as a
 * code package from the datastore (`_package.ts`). A local datastore is bind-mounted at its own
 * path; S3 is reached over the host network with the caller's `TSFLOW_S3_ENDPOINT` and AWS
 * variables. Resource hints become `--memory`, `--cpus` and `--gpus`.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { TsflowError } from "../../core/errors.ts";
import type { Executor, ExecutorFactory, RunContext, TaskExit, TaskSpec } from "../../core/types.ts";
import { runtimeFiles, uploadPackage } from "./_package.ts";
import processExecutor from "./process.ts";

export const NAME = "docker";

export interface DockerOptions {
  /** Image of steps whose `@docker` names none. Default `$TSFLOW_DOCKER_IMAGE`, else `node:20-slim`. */
  image?: string;
  /** The docker CLI. Default `docker` on PATH (it reads `DOCKER_HOST`). */
  dockerBin?: string;
  /** `docker run --network`. Default `host`, so containers reach 127.0.0.1 services (S3 endpoints). */
  network?: string;
  /** One container per task instead of warm containers that run task after task. */
  fresh?: boolean;
  /** Extra `docker run` arguments, e.g. `["--shm-size", "1g"]`. */
  runArgs?: string[];
  /** Host environment variables passed into containers (names). The AWS and S3 ones always are. */
  passEnv?: string[];
  /** Seconds between SIGTERM and SIGKILL when stopping a task. Default 3. */
  killGraceSeconds?: number;
}

const PASS_ENV = ["TSFLOW_S3_ENDPOINT", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"];

const dockerExecutor: ExecutorFactory<DockerOptions> = (options = {}) => {
  const bin = options.dockerBin ?? "docker";
  const id = randomBytes(4).toString("hex");
  const pools = new Map<string, Executor>();
  const packages = new Map<string, Promise<string>>();
  let run: RunContext | undefined;
  let mounts: string[] = [];

  const docker = (args: string[]) =>
    new Promise<string>((resolve, reject) => execFile(bin, args, (err, stdout, stderr) => (err ? reject(new Error(stderr.trim() || err.message)) : resolve(stdout))));

  /** Containers whose `docker run` process is gone (killed on timeout) would run on: remove them. */
  const reap = async (all = false) => {
    const names = await docker(["ps", "-a", "--filter", `name=tsflow-${id}-`, "--format", "{{.Names}}"]).catch(() => "");
    const dead = names.split("\n").filter((n) => {
      const pid = Number(n.split("-").pop());
      if (!pid || all) return Boolean(n);
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    });
    if (dead.length) await docker(["rm", "-f", ...dead]).catch(() => {});
  };

  const poolFor = (spec: TaskSpec) => {
    const opts = (spec.decorators.docker ?? {}) as { image?: string };
    const image = opts.image ?? options.image ?? process.env.TSFLOW_DOCKER_IMAGE ?? "node:20-slim";
    const { cpu, memory, gpu } = spec.resources;
    const key = JSON.stringify([image, cpu, memory, gpu]);
    let pool = pools.get(key);
    if (!pool) {
      const { script, mounts: runtime } = runtimeFiles();
      const args = ["-i", "--rm", "--init", "--network", options.network ?? "host", "--label", `org.tsflow.executor=${id}`];
      if (process.getuid) args.push("--user", `${process.getuid()}:${process.getgid!()}`, "-e", "HOME=/tmp");
      // A container starts from a fresh file system: the bundle's code cache (cli/_script-loader.ts)
      // would be missed every time and written for nothing as each worker ends.
      args.push("-e", "TSFLOW_CODE_CACHE=0");
      for (const m of runtime) args.push("-v", `${m}:${m}:ro`);
      for (const m of mounts) args.push("-v", `${m}:${m}`);
      for (const name of ["TSFLOW_WORKER_NONCE", ...PASS_ENV, ...(options.passEnv ?? [])]) if (process.env[name] !== undefined || name === "TSFLOW_WORKER_NONCE") args.push("-e", name);
      if (memory) args.push("--memory", `${Math.ceil(memory)}m`);
      if (cpu) args.push("--cpus", String(cpu));
      if (gpu) args.push("--gpus", String(gpu));
      args.push(...(options.runArgs ?? []), image, "node", script);
      // `exec` keeps the pid, so the container's name tells which `docker run` owns it (see reap).
      const command = ["sh", "-c", `exec "$0" run --name "tsflow-${id}-$$" "$@"`, bin, ...args];
      pool = processExecutor({ command, fresh: options.fresh ?? run?.freshWorkers, killGraceSeconds: options.killGraceSeconds });
      pools.set(key, pool);
    }
    return pool;
  };

  const packageOf = (flowFile: string) => {
    let p = packages.get(flowFile);
    if (!p) {
      if (!run) throw new TsflowError("Executor", "[docker] prepare() must be called before run()");
      const started = Date.now();
      p = uploadPackage(run.datastore, flowFile).then((pkg) => {
        run?.logger.debug?.(`[docker] code package ${pkg.hash.slice(0, 12)} ${pkg.uploaded ? "uploaded" : "reused"} in ${Date.now() - started} ms`);
        return pkg.flowFile;
      });
      packages.set(flowFile, p);
    }
    return p;
  };

  return {
    name: NAME,
    remote: true,

    async prepare(context) {
      run = context;
      const store = context.datastore;
      if (store.root) mounts = [store.root];
      else if (!store.url.startsWith("s3://")) {
        throw new TsflowError("BadOption", `[docker] containers cannot reach datastore '${store.url}' (${store.name}): use a local directory or s3://bucket/prefix`);
      }
      const daemon = docker(["version", "--format", "{{.Server.Version}}"]).catch((e: Error) => {
        throw new TsflowError("Executor", `[docker] no docker daemon answers (DOCKER_HOST=${process.env.DOCKER_HOST ?? "default"}): ${e.message.split("\n")[0]}`);
      });
      await Promise.all([daemon, context.flowFile.startsWith("package:") ? undefined : packageOf(context.flowFile)]);
    },

    async run(spec, ctx): Promise<TaskExit> {
      const flowFile = spec.flowFile.startsWith("package:") ? spec.flowFile : await packageOf(spec.flowFile);
      const exit = await poolFor(spec).run({ ...spec, flowFile, module: undefined }, ctx);
      if (!exit.completed) await reap();
      return exit;
    },

    async close() {
      await Promise.all([...pools.values()].map((p) => p.close?.()));
      pools.clear();
      await reap(true);
    },
  };
};

export default dockerExecutor;
