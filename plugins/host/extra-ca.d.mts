/** Types of extra-ca.mjs (plain JS: bin/tsflow.mjs imports it before the bundle). */
export const ORIGINAL_VAR: "TSFLOW_ORIGINAL_EXTRA_CA_CERTS";
export function workerCaEnv(env?: NodeJS.ProcessEnv): Record<string, string>;
export function reduceExtraCaCerts(env?: NodeJS.ProcessEnv): Promise<string | undefined>;
export function withoutBundled(text: string): Promise<string[] | undefined>;
export function restoreExtraCaCerts(env?: NodeJS.ProcessEnv): string | undefined;
