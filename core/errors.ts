/**
 * Every error tsflow reports on purpose is a `TsflowError` with a code. The CLI prints its
 * message alone (no stack): the message names the thing at fault — file, step, option,
 * artifact, key — in one sentence, no trailing period (denoland/std's style).
 */
export const ERROR_CODES = [
  "BadKey",
  "BadFlow",
  "BadGraph",
  "BadParameter",
  "BadConfig",
  "BadOption",
  "BadTransition",
  "CorruptArtifact",
  "CorruptMetadata",
  "Datastore",
  "Executor",
  "NotFound",
  "RunFailed",
  "Serialize",
  "Secrets",
  "Timeout",
  "WorkerCrashed",
  "Cancelled",
  "UnmergedArtifact",
  "TooLarge",
  "KeyExists",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class TsflowError extends Error {
  override name = "TsflowError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** More lines for the user: hints, or one line per broken rule. */
    readonly details: string[] = [],
  ) {
    super(message);
  }
}

export function isTsflowError(e: unknown): e is TsflowError {
  return e instanceof Error && (e as TsflowError).name === "TsflowError" && typeof (e as TsflowError).code === "string";
}
