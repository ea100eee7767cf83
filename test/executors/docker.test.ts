import { expect, it } from "vitest";
import dockerExecutor from "../../plugins/executors/docker.ts";
import processExecutor from "../../plugins/executors/process.ts";
import { dockerUnavailable, NODE_IMAGE } from "./_docker.ts";
import { executorSuite, runFixture } from "./_suite.ts";

const skipAll = dockerUnavailable();

executorSuite("docker", async () => ({ executor: dockerExecutor({ image: NODE_IMAGE }) }), {
  skipAll,
  additionalTests: (get) => {
    it("stores the flow's code package once and reuses it while the flow is unchanged", async () => {
      await runFixture(get(), "OkFlow");
      const before = await get().datastore.list("packages/");
      await runFixture(get(), "OkFlow");
      expect(before).toHaveLength(1);
      expect(await get().datastore.list("packages/")).toEqual(before);
    });
  },
});

executorSuite("docker (fresh containers)", async () => ({ executor: dockerExecutor({ image: NODE_IMAGE, fresh: true }) }), { skipAll });
