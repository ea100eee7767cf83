/**
 * A local stand-in for the AWS Secrets Manager API, so `@secrets` is tested with the real
 * `@aws-sdk/client-secrets-manager` and without AWS.
 *
 * Wire format (AWS JSON 1.1, what the SDK speaks): `POST /` with `X-Amz-Target:
 * secretsmanager.<Operation>` and `Content-Type: application/x-amz-json-1.1`, the API's member
 * names in the JSON body; errors are HTTP 400 with `{ "__type": "<Exception>", "message" }`.
 * Operations: GetSecretValue, CreateSecret, PutSecretValue, DeleteSecret (immediate), ListSecrets.
 * Every request is kept in `requests` (operation, secret id, whether it was signed) so tests can
 * check who asked for what and when.
 *
 * CLI: `node --import tsx test/secrets-server/server.ts --port 4584 [--secret NAME=VALUE …]`
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

export interface SecretsServerOptions {
  /** Port on 127.0.0.1; 0 (the default) picks a free one. */
  port?: number;
  /** Secrets that exist from the start: name → SecretString. */
  secrets?: Record<string, string>;
  region?: string;
  accountId?: string;
}

export interface SecretsServer {
  /** `http://127.0.0.1:PORT`: the SDK's `endpoint`, or `AWS_ENDPOINT_URL_SECRETS_MANAGER`. */
  url: string;
  /** Every request answered, oldest first. */
  requests: { operation: string; secretId?: string; signed: boolean; at: number }[];
  /** Adds or replaces a secret. */
  put(name: string, value: string): void;
  close(): Promise<void>;
}

interface Secret {
  name: string;
  arn: string;
  value: string;
  versionId: string;
  createdDate: number;
}

export async function startSecretsServer(options: SecretsServerOptions = {}): Promise<SecretsServer> {
  const region = options.region ?? "us-east-1";
  const account = options.accountId ?? "123456789012";
  const secrets = new Map<string, Secret>();
  const requests: SecretsServer["requests"] = [];
  const put = (name: string, value: string) => {
    const old = secrets.get(name);
    secrets.set(name, {
      name,
      arn: old?.arn ?? `arn:aws:secretsmanager:${region}:${account}:secret:${name}-${randomUUID().slice(0, 6)}`,
      value,
      versionId: randomUUID(),
      createdDate: old?.createdDate ?? Date.now() / 1000,
    });
  };
  for (const [k, v] of Object.entries(options.secrets ?? {})) put(k, v);

  // A secret is found by its name or its full ARN, as AWS does.
  const find = (id: unknown) => (typeof id === "string" ? (secrets.get(id) ?? [...secrets.values()].find((s) => s.arn === id)) : undefined);

  const fail = (res: ServerResponse, status: number, type: string, message: string) => {
    res.writeHead(status, { "content-type": "application/x-amz-json-1.1", "x-amzn-errortype": type });
    res.end(JSON.stringify({ __type: type, message }));
  };
  const ok = (res: ServerResponse, body: unknown) => {
    res.writeHead(200, { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": randomUUID() });
    res.end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const target = String(req.headers["x-amz-target"] ?? "");
    if (req.method !== "POST" || !target.startsWith("secretsmanager.")) return fail(res, 400, "UnknownOperationException", `expected POST / with X-Amz-Target: secretsmanager.<Operation>, got ${req.method} ${req.url} ${target}`);
    const operation = target.slice("secretsmanager.".length);
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
    } catch {
      return fail(res, 400, "SerializationException", "the request body is not JSON");
    }
    const id = (body.SecretId ?? body.Name) as string | undefined;
    requests.push({ operation, secretId: id, signed: String(req.headers.authorization ?? "").startsWith("AWS4-HMAC-SHA256"), at: Date.now() });
    const notFound = () => fail(res, 400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.");
    switch (operation) {
      case "GetSecretValue": {
        const s = find(id);
        if (!s) return notFound();
        return ok(res, { ARN: s.arn, Name: s.name, VersionId: s.versionId, SecretString: s.value, VersionStages: ["AWSCURRENT"], CreatedDate: s.createdDate });
      }
      case "CreateSecret": {
        if (typeof id !== "string" || id === "") return fail(res, 400, "InvalidParameterException", "Name is required");
        if (secrets.has(id)) return fail(res, 400, "ResourceExistsException", `The operation failed because the secret ${id} already exists.`);
        put(id, String(body.SecretString ?? ""));
        const s = secrets.get(id)!;
        return ok(res, { ARN: s.arn, Name: s.name, VersionId: s.versionId });
      }
      case "PutSecretValue": {
        const s = find(id);
        if (!s) return notFound();
        put(s.name, String(body.SecretString ?? ""));
        const n = secrets.get(s.name)!;
        return ok(res, { ARN: n.arn, Name: n.name, VersionId: n.versionId, VersionStages: ["AWSCURRENT"] });
      }
      case "DeleteSecret": {
        const s = find(id);
        if (!s) return notFound();
        secrets.delete(s.name);
        return ok(res, { ARN: s.arn, Name: s.name, DeletionDate: Date.now() / 1000 });
      }
      case "ListSecrets":
        return ok(res, { SecretList: [...secrets.values()].map((s) => ({ ARN: s.arn, Name: s.name, CreatedDate: s.createdDate })) });
      default:
        return fail(res, 400, "UnknownOperationException", `operation ${operation} is not implemented by the local Secrets Manager`);
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e) => fail(res, 500, "InternalServiceError", (e as Error).message));
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    put,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({ options: { port: { type: "string", default: "4584" }, secret: { type: "string", multiple: true } } });
  const initial = Object.fromEntries((values.secret ?? []).map((s) => [s.slice(0, s.indexOf("=")), s.slice(s.indexOf("=") + 1)]));
  const srv = await startSecretsServer({ port: Number(values.port), secrets: initial });
  process.stdout.write(`local Secrets Manager on ${srv.url}\n`);
}
