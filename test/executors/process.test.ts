import processExecutor from "../../plugins/executors/process.ts";
import { executorSuite } from "./_suite.ts";

executorSuite("process", async () => ({ executor: processExecutor() }));
executorSuite("process (fresh workers)", async () => ({ executor: processExecutor({ fresh: true }) }));
