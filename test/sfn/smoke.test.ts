import { afterAll, beforeAll, expect, it } from "vitest";
import { loadFlowInfo } from "../../core/graph.ts";
import { openDatastore } from "../../cli/datastores.ts";
import nodeHost from "../../plugins/host/node.ts";
import { createDeployment, trigger } from "../../plugins/step-functions/deploy.ts";
import { type LocalAws, startLocalAws } from "./_local-aws.ts";

let aws: LocalAws;
beforeAll(async () => {
  aws = await startLocalAws();
});
afterAll(() => aws?.close());

it("pets", async () => {
  const flowClass = (await import("../../examples/pets.ts")).default;
  const file = new URL("../../examples/pets.ts", import.meta.url).pathname;
  const info = loadFlowInfo(flowClass);
  const store = await openDatastore(aws.datastore);
  const host = nodeHost();
  await createDeployment({ info, flowClass, flowFile: file, store, host }, {});
  const { executionArn } = await trigger({ info, flowClass, host }, {});
  const rec = await aws.sfn.executions.wait(executionArn);
  for (const j of rec.jobs) console.log(aws.batch.jobs.logs(j).slice(-2000));
  console.log(rec.status, rec.error, rec.cause?.slice(0, 1500), rec.states);
  expect(rec.status).toBe("SUCCEEDED");
}, 120_000);
