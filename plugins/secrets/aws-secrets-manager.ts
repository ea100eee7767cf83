/**
 * `aws-secrets-manager:NAME` secrets, read with `GetSecretValue` through
 * `@aws-sdk/client-secrets-manager` (loaded only when a task has such a source).
 *
 * A secret whose value is a JSON object gives one variable per key (as Metaflow does); any
 * other value gives one variable, `envVarName` or the secret's name in upper case with
 * non-alphanumerics as `_` (`prod/db-password` → `PROD_DB_PASSWORD`). Region and credentials come
 * from the standard AWS chain; `AWS_ENDPOINT_URL_SECRETS_MANAGER` points it at another endpoint.
 */
import type { SecretsProvider } from "../../core/types.ts";

export const NAME = "aws-secrets-manager";

export interface AwsSecretsManagerOptions {
  /** Default: `$AWS_REGION`, else `$AWS_DEFAULT_REGION`, else `us-east-1`. */
  region?: string;
  /** Default: the SDK's (`$AWS_ENDPOINT_URL_SECRETS_MANAGER`, else AWS). */
  endpoint?: string;
}

/** The variable name of a secret that is not a JSON object. */
export const variableName = (id: string) => id.replace(/[^A-Za-z0-9]+/g, "_").replace(/^_|_$/g, "").toUpperCase();

export default function awsSecretsManager(options: AwsSecretsManagerOptions = {}): SecretsProvider {
  let client: Promise<{ send(id: string): Promise<{ SecretString?: string; SecretBinary?: Uint8Array }> }> | undefined;
  const connect = async () => {
    const { SecretsManagerClient, GetSecretValueCommand } = await import("@aws-sdk/client-secrets-manager");
    const sm = new SecretsManagerClient({
      region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1",
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    });
    return { send: (id: string) => sm.send(new GetSecretValueCommand({ SecretId: id })) };
  };
  return {
    name: NAME,
    async get(id, { envVarName }) {
      client ??= connect();
      let out: { SecretString?: string; SecretBinary?: Uint8Array };
      try {
        out = await (await client).send(id);
      } catch (e) {
        // The SDK's message names the secret, never its value.
        throw new Error(`${(e as Error).name}: ${(e as Error).message}`);
      }
      const text = out.SecretString ?? (out.SecretBinary ? new TextDecoder().decode(out.SecretBinary) : "");
      if (envVarName) return { [envVarName]: text };
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
        return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
      }
      return { [variableName(id)]: text };
    },
  };
}
