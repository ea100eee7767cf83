/**
 * `env:NAME` secrets: a variable of the environment tsflow was started with, for local work
 * (a token exported in the shell). The task sees it as `NAME`, or as `envVarName`.
 */
import type { SecretsProvider } from "../../core/types.ts";

export const NAME = "env";

export default function envSecrets(): SecretsProvider {
  return {
    name: NAME,
    async get(id, { envVarName }) {
      const value = process.env[id];
      if (value === undefined) throw new Error(`environment variable ${id} is not set`);
      return { [envVarName ?? id]: value };
    },
  };
}
