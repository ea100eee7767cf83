/** The portable core of tsflow: re-exports only (internal files start with `_`). */
export {
  FlowSpec,
  step,
  retry,
  catchError,
  timeout,
  resources,
  environment,
  docker,
  batch,
  cached,
  secrets,
  type SecretSource,
  stepDecorator,
  DECORATORS,
  Parameter,
  IncludeFile,
  current,
  isFlowClass,
  type Inputs,
  type Artifacts,
  type StepNames,
  type CurrentInfo,
  type MergeOptions,
  type ParameterOptions,
  type ParameterSpec,
  type ParameterType,
} from "./flow.ts";
export { Config, config, applyConfig, readConfig, configValues, substituteConfig, type ConfigOptions, type ConfigIssue, type ConfigAccess, type StandardSchemaV1 } from "./config.ts";
export { exitHook, exitHooksOf, runExitHooks, type ExitHookFn, type ExitHookOptions, type ExitHookOutcome } from "./exit-hooks.ts";
export { schedule, triggerOnFinish, project, productionOptions, type ScheduleOptions, type ProductionOptions } from "./production.ts";
export { inspectFlow, loadFlowInfo, formatGraph, type FlowGraph, type FlowInfo, type GraphNode, type GraphIssue } from "./graph.ts";
export { executeRun, resolveParameters, newRunId, type RunOptions, type RunResult, type RunReporter, type ExecutorSelector } from "./runtime.ts";
export { executeTask, type TaskEnvironment, type DoneRecord, type RunRecord } from "./task.ts";
export { storeArtifact, loadArtifact, hashChunks } from "./artifacts.ts";
export { serialize, deserialize, describeType } from "./serialize.ts";
export { TsflowError, isTsflowError, type ErrorCode } from "./errors.ts";
export { VERSION } from "./version.ts";
export type * from "./types.ts";
export { createClient, parsePathspec, Listing, Run, Step, Task, Artifact, Card, type Client, type ClientContext, type RunsOptions, type DataOf, type RunDoc, type TaskDoc } from "./client.ts";
export {
  card,
  CardComponent,
  Markdown,
  Table,
  Image,
  Chart,
  ProgressBar,
  ArtifactValue,
  CardError,
  defineCardType,
  registerCardType,
  installCardRenderer,
  type CardAccess,
  type CardHandle,
  type CardOptions,
  type CardType,
  type CardHelpers,
  type CardData,
  type CardRef,
  type CardRenderer,
  type CardTaskInfo,
  type ComponentData,
  type TableOptions,
} from "./cards.ts";
export { collectGarbage, deleteRun, type GcOptions, type GcReport } from "./gc.ts";
