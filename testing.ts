/**
 * `tsflow/testing`: the conformance suites every built-in plugin passes, for authors of a
 * third-party datastore or executor. Run them from a vitest test file:
 *
 *   import { datastoreSuite } from "tsflow/testing";
 *   datastoreSuite("my-store", async () => ({ store: myStore({ ... }) }));
 *
 * It re-exports the library too, so flows run by the suites share this module's runtime.
 */
export * from "./mod.ts";
export { datastoreSuite, TESTS as DATASTORE_TESTS } from "./testing/datastores.ts";
export { executorSuite, TESTS as EXECUTOR_TESTS, FIXTURES as EXECUTOR_FIXTURES } from "./testing/executors.ts";
