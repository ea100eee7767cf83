/**
 * Secrets. The convention: values of `@environment({ vars })` (and `--with environment:K=V`)
 * and the AWS credentials (`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ACCESS_KEY_ID`)
 * reach the task's process environment only: they are written to no file of the datastore
 * (run.json, task metadata, logs, artifacts). A step that prints or stores one itself is the
 * user's choice, outside this rule.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { cliRun, tempStore } from "../_helpers.ts";
import { endArtifacts, rfixture, runDirs, walk } from "./_util.ts";

const SECRETS = {
  AWS_SECRET_ACCESS_KEY: "aws-secret-4c1d9a0b7e2f",
  AWS_SESSION_TOKEN: "aws-session-8e7d6c5b4a39",
};
const DECORATOR_SECRET = "pw-9f2c1e7d-env-decorator";
const CLI_SECRET = "cli-token-1a2b3c4d5e6f";

describe("secrets", () => {
  it("environment values and AWS credentials leave no trace anywhere under the datastore root", async () => {
    const root = tempStore();
    const r = await new Promise<Awaited<ReturnType<typeof cliRun>>>((resolve, reject) => {
      const saved = { ...process.env };
      Object.assign(process.env, SECRETS);
      cliRun(rfixture("secrets.ts"), root, "--with", `environment:CLI_TOKEN=${CLI_SECRET}`)
        .then(resolve, reject)
        .finally(() => {
          for (const k of Object.keys(SECRETS)) if (saved[k] === undefined) delete process.env[k];
        });
    });
    expect(r.code, r.stderr).toBe(0);
    // The secrets did reach the step…
    const end = await endArtifacts(root, "SecretsFlow", runDirs(root, "SecretsFlow")[0]!);
    expect(end.lengths).toEqual({ db: DECORATOR_SECRET.length, aws: SECRETS.AWS_SECRET_ACCESS_KEY.length, token: SECRETS.AWS_SESSION_TOKEN.length });
    expect(end.cliLength).toBe(CLI_SECRET.length);
    // …and are in no file of the datastore, nor in the terminal output.
    const files = walk(root);
    expect(files.length).toBeGreaterThan(5);
    for (const secret of [...Object.values(SECRETS), DECORATOR_SECRET, CLI_SECRET]) {
      const leaks = files.filter((f) => readFileSync(f).includes(secret));
      expect(leaks, `secret ${secret}`).toEqual([]);
      expect(r.stdout + r.stderr).not.toContain(secret);
    }
  });
});
