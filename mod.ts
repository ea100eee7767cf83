/**
 * The `tsflow` package: the flow API, the Runner API (`runFlow`, `startFlow`, `resumeFlow`:
 * runner/run.ts, the same path `tsflow run` takes), the client over the default datastore, and
 * the plugin interfaces. `executeRun` from the core takes everything explicitly.
 */
import { defaultCardRenderer } from "./cards/index.ts";
import { installCardRenderer } from "./core/cards.ts";
import { createClient, type Flow as ClientFlow, installNotebookRenderer } from "./core/client.ts";
import { runningTask } from "./core/flow.ts";
import type { Datastore } from "./core/types.ts";
import { notebookRenderer } from "./notebook/display.ts";
import nodeHost from "./plugins/host/node.ts";
import { openDatastore } from "./runner/stores.ts";

export * from "./core/index.ts";
export { cardHtml, vegaLiteHtml } from "./cards/index.ts";
export { artifactBundle, htmlFrame } from "./notebook/display.ts";

// Tasks render their cards, and readers build card documents, with tsflow's renderer.
installCardRenderer(defaultCardRenderer);
// Client objects show as tables, images and the run's DAG in notebooks (core/client.ts asks it).
installNotebookRenderer(notebookRenderer);
export {
  type FinishedRun,
  type FlowRef,
  type ResumeFlowOptions,
  type RunEvent,
  type RunFlowOptions,
  type RunHandle,
  type RunProgress,
  resumeFlow,
  runFlow,
  startFlow,
} from "./runner/run.ts";
export type { ResumePlan } from "./runner/resume.ts";
/** Any unstorage driver as a datastore (a plugin file is three lines: docs/datastores.md). */
export { default as unstorageDatastore, type UnstorageOptions } from "./plugins/datastores/unstorage.ts";
export { loadOverrides, type SpinStepOptions, spinStep } from "./runner/spin.ts";
export type { ArtifactChange, SpinResult } from "./core/spin.ts";

// The client API wired to the defaults: inside a running task, the datastore of the task's own
// run (its --datastore, in a worker, a container or a Batch job alike); elsewhere the one
// `runFlow` would use (`TSFLOW_DATASTORE` or `.tsflow` found upwards), opened on first use.
let defaultStore: Promise<Datastore> | undefined;
const defaultClient = createClient(() => {
  const inTask = runningTask()?.store;
  return inTask ? Promise.resolve(inTask) : (defaultStore ??= openDatastore());
}, nodeHost());
/** `Flow.get(name)` / `Flow.list()` over the default datastore (see core/client.ts). */
export const Flow = defaultClient.Flow;
export type Flow<F = unknown> = ClientFlow<F>;
/** Sets the namespace of client reads (`null`: every run) and returns the previous one. */
export const namespace = defaultClient.namespace;
/** The namespace client reads use: `user:<current user>` unless {@link namespace} changed it. */
export const getNamespace = defaultClient.getNamespace;
/** Whatever a pathspec (`Flow[/run[/step[/task]]]`) names, from the default datastore. */
export const getPathspec = defaultClient.get;
