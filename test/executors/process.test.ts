import processExecutor from "../../plugins/executors/process.ts";
import { executorSuite } from "../../testing/executors.ts";

executorSuite("process", async () => ({ executor: processExecutor() }));
executorSuite("process (fresh workers)", async () => ({ executor: processExecutor({ fresh: true }) }));
