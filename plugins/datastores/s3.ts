/**
 * The `s3` datastore: keys under `s3://bucket/prefix` on AWS S3 or any S3-compatible store.
 * S3 makes a PUT (and a completed multipart upload) visible all at once, so writes are atomic
 * without temporary keys. The AWS SDK is loaded on first use: runs on other datastores never
 * pay for it.
 */
import { Buffer } from "node:buffer";
import { Readable } from "node:stream";
import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3";
import { checkKey, keyExists, tooLarge } from "../../core/_datastore.ts";
import { TsflowError } from "../../core/errors.ts";
import type { Bytes, Datastore, Hasher, PutOptions } from "../../core/types.ts";

export const NAME = "s3";

export interface S3Options {
  /** Where the data lives: `s3://bucket` or `s3://bucket/prefix`. */
  url: string;
  /** Store compressible artifacts gzipped (default true: network bytes cost more than CPU). */
  compress?: boolean;
  /**
   * An S3-compatible endpoint such as `http://127.0.0.1:9000`. Defaults to the env variable
   * `TSFLOW_S3_ENDPOINT`, else AWS S3 itself.
   */
  endpoint?: string;
  /** Address buckets as `endpoint/bucket/key`. Defaults to `true` when an endpoint is set. */
  forcePathStyle?: boolean;
  /** Defaults to env `AWS_REGION`, then `AWS_DEFAULT_REGION`, else `us-east-1`. */
  region?: string;
  /** Static credentials or a provider. Defaults to the standard AWS credential chain. */
  credentials?: S3ClientConfig["credentials"];
  /** Values of at least this many bytes go up as multipart uploads. Default 16 MiB. */
  multipartThreshold?: number;
  /** Part size of multipart uploads and of the ranges a big read fetches; S3 wants at least 5 MiB. Default 8 MiB. */
  partSize?: number;
  /** Parts of one value uploaded, or ranges of one value downloaded, at once. Default 8. */
  concurrency?: number;
  /** Attempts per request, with backoff, on throttling, 5xx and dropped connections. Default 5. */
  maxAttempts?: number;
  /**
   * How long a refused connection (a store restarting) is retried before the operation fails,
   * in seconds. Defaults to env `TSFLOW_S3_OUTAGE_SECONDS`, else 8; 0 fails at once. Streamed uploads are not retried (their source is gone).
   */
  outageSeconds?: number;
}

type Sdk = { s3: typeof import("@aws-sdk/client-s3"); Upload: typeof import("@aws-sdk/lib-storage").Upload; client: S3Client };
type SdkError = Error & { code?: string; bodyRead?: boolean; $metadata?: { httpStatusCode?: number }; errors?: unknown[]; cause?: unknown };

const MiB = 1024 * 1024;
const UNREACHABLE = ["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT", "TimeoutError"];
const DROPPED = ["ECONNRESET", "EPIPE", "ECONNABORTED", "ERR_STREAM_PREMATURE_CLOSE"];

/** Waits before the next try of a request the SDK does not retry itself: 100 ms, 200, 400… jittered. */
const backoff = (attempt: number) => new Promise((resolve) => setTimeout(resolve, (50 + Math.random() * 100) * 2 ** (attempt - 1)));

export default function s3Datastore(options: S3Options): Datastore {
  const url = options.url.replace(/\/+$/, "");
  const match = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (!match) throw new TsflowError("Datastore", `[s3] invalid datastore URL '${options.url}': expected s3://bucket/prefix`);
  const bucket = match[1]!;
  const base = match[2] ? `${checkKey(match[2])}/` : "";
  const env = typeof process === "undefined" ? {} : process.env;
  const endpoint = options.endpoint ?? (env.TSFLOW_S3_ENDPOINT || undefined);
  const region = options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1";
  const threshold = options.multipartThreshold ?? 16 * MiB;
  const partSize = options.partSize ?? 8 * MiB;
  const concurrency = Math.max(1, options.concurrency ?? 8);
  const maxAttempts = options.maxAttempts ?? 5;
  const outageEnv = env.TSFLOW_S3_OUTAGE_SECONDS;
  if (outageEnv !== undefined && outageEnv !== "" && !(Number(outageEnv) >= 0))
    throw new TsflowError("Datastore", `[s3] TSFLOW_S3_OUTAGE_SECONDS must be a number of seconds ≥ 0, not '${outageEnv}'`);
  const outageMs = (options.outageSeconds ?? (outageEnv ? Number(outageEnv) : 8)) * 1000;
  const where = endpoint ?? `AWS S3 (${region})`;

  let sdk: Promise<Sdk> | undefined;
  let bucketSeen = false;

  const load = (): Promise<Sdk> =>
    (sdk ??= (async () => {
      const [s3, storage] = await Promise.all([import("@aws-sdk/client-s3"), import("@aws-sdk/lib-storage")]);
      const client = new s3.S3Client({
        region,
        endpoint,
        forcePathStyle: options.forcePathStyle ?? endpoint !== undefined,
        credentials: options.credentials,
        maxAttempts,
        retryMode: "standard",
        // S3-compatible stores often reject the newer flexible checksums (aws-chunked trailers).
        ...(endpoint ? { requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" } : {}),
        requestHandler: { connectionTimeout: 10_000, socketTimeout: 120_000 },
      });
      return { s3, Upload: storage.Upload, client };
    })().catch((e) => {
      sdk = undefined;
      throw new TsflowError("Datastore", `[s3] cannot load the AWS SDK for ${url} (${(e as Error).message}); install @aws-sdk/client-s3 and @aws-sdk/lib-storage`);
    }));

  /** Turns an SDK or network error into one plain sentence. */
  const explain = (e: SdkError): string => {
    const nested = [e, e.cause, ...(e.errors ?? [])] as SdkError[];
    const code = nested.map((x) => x?.code ?? (x?.name === "TimeoutError" ? x.name : undefined)).find(Boolean);
    const status = e.$metadata?.httpStatusCode;
    const check = endpoint ? "is it running, and is the endpoint (TSFLOW_S3_ENDPOINT) right?" : "check the network";
    if (code && UNREACHABLE.includes(code)) return `cannot reach the S3 endpoint ${where} (${code}); ${check}`;
    if ((code && DROPPED.includes(code)) || /socket hang up/i.test(e.message))
      return `the connection to ${where} was dropped before the request completed (${code ?? e.message}), after ${maxAttempts} attempts`;
    const known: Record<string, string> = {
      NoSuchBucket: `the bucket '${bucket}' does not exist at ${where}; create it or fix the datastore URL`,
      InvalidAccessKeyId: "the server does not know the AWS access key id; check the AWS credentials",
      SignatureDoesNotMatch: "the request signature does not match, so the AWS secret access key is wrong; check the AWS credentials",
      CredentialsProviderError: "no AWS credentials were found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
    };
    if (known[e.name]) return known[e.name]!;
    if (status === 403) return `access denied (${e.name}); check the AWS credentials and the bucket's permissions`;
    if (status === 503 || e.name === "SlowDown") return `S3 kept throttling the requests (${e.name}) after ${maxAttempts} attempts`;
    if (status && status >= 500) return `the S3 server failed with HTTP ${status} (${e.name}) after ${maxAttempts} attempts`;
    return `${e.name}: ${e.message}`;
  };

  const fail = (action: string, key: string, e: unknown): never => {
    if (e instanceof TsflowError) throw e;
    throw new TsflowError("Datastore", `[s3] cannot ${action} '${key}' in ${url}: ${explain(e as SdkError)}`);
  };

  /** ECONNREFUSED anywhere in an SDK error: nothing listens (yet) on the endpoint. */
  const refused = (e: unknown) => [e, (e as SdkError)?.cause, ...((e as SdkError)?.errors ?? [])].some((x) => (x as SdkError)?.code === "ECONNREFUSED");

  /**
   * Runs one datastore operation. A refused connection is retried for `outageSeconds` (a store
   * restarting on its port comes back within seconds; the SDK's own retries span about one).
   */
  async function call<T>(action: string, key: string, fn: (sdk: Sdk) => Promise<T>, replayable = true): Promise<T> {
    const loaded = await load();
    const until = Date.now() + outageMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(loaded);
      } catch (e) {
        if (!(replayable && refused(e) && Date.now() < until)) return fail(action, key, e);
        await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * 2 ** attempt)));
      }
    }
  }

  const objectKey = (key: string) => base + checkKey(key);
  const dirKey = (prefix: string) => {
    const p = checkKey(prefix, true).replace(/\/$/, "");
    return base + (p === "" ? "" : `${p}/`);
  };
  const status = (e: unknown) => (e as SdkError).$metadata?.httpStatusCode;
  const isMissing = (e: unknown) => (e as Error).name === "NoSuchKey" || (status(e) === 404 && (e as Error).name !== "NoSuchBucket");

  /** HEAD answers 404 without a body for a missing bucket too: tell the two apart once. */
  async function checkBucket({ s3, client }: Sdk) {
    if (bucketSeen) return;
    try {
      await client.send(new s3.HeadBucketCommand({ Bucket: bucket }));
    } catch (e) {
      if (status(e) === 404) throw Object.assign(new Error("no such bucket"), { name: "NoSuchBucket" });
    }
    bucketSeen = true;
  }

  /** Size of an object, `null` when missing (HeadObject). */
  const head = (sdk: Sdk, key: string): Promise<number | null> =>
    sdk.client.send(new sdk.s3.HeadObjectCommand({ Bucket: bucket, Key: key })).then(
      (res) => res.ContentLength ?? 0,
      async (e) => {
        if (!isMissing(e)) throw e;
        await checkBucket(sdk);
        return null;
      },
    );

  const getObject = (sdk: Sdk, key: string, range?: string, ifMatch?: string) =>
    sdk.client.send(new sdk.s3.GetObjectCommand({ Bucket: bucket, Key: key, Range: range, IfMatch: ifMatch })).catch((e) => {
      if (isMissing(e)) return null;
      throw e;
    });

  /**
   * Streams a response body into `out` from `at`: exactly `length` bytes, or an error marked
   * `bodyRead` (the request worked, the connection failed), which the caller may retry.
   */
  async function fill(body: unknown, out: Uint8Array, at: number, length: number) {
    let pos = at;
    try {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        if (pos + chunk.byteLength > at + length) throw new Error(`object is longer than its Content-Length ${length}`);
        out.set(chunk, pos);
        pos += chunk.byteLength;
      }
      if (pos !== at + length) throw Object.assign(new Error(`connection ended after ${pos - at} of ${length} bytes`), { code: "ERR_STREAM_PREMATURE_CLOSE" });
    } catch (e) {
      (body as { destroy?: () => void }).destroy?.();
      throw Object.assign(e as Error, { bodyRead: true });
    }
  }

  /**
   * One read. The first request asks for the first part's range: a small value comes whole in
   * it, a big one says its size (Content-Range) with its headers, and the other parts come in parallel
   * ranged GETs (pinned to the first answer's ETag) straight into one buffer of that size.
   * Each range whose body is cut is fetched again on its own. `hasher` is fed every byte in
   * order as the parts arrive, so verifying a blob overlaps its download.
   */
  async function readObject(sdk: Sdk, key: string, maxBytes: number | undefined, hasher?: Hasher): Promise<Uint8Array | null> {
    const k = objectKey(key);
    let res: Awaited<ReturnType<typeof getObject>>;
    try {
      res = await getObject(sdk, k, `bytes=0-${partSize - 1}`);
    } catch (e) {
      // An empty object has no byte 0: S3 answers 416 to any range.
      if (status(e) !== 416) throw e;
      res = await getObject(sdk, k);
    }
    if (!res?.Body) return null;
    const total = /\/(\d+)$/.exec(res.ContentRange ?? "")?.[1];
    const size = total !== undefined ? Number(total) : res.ContentLength;
    // Refused before the body is read: the announced length is enough to know.
    if (maxBytes !== undefined && size !== undefined && size > maxBytes) {
      (res.Body as { destroy?: () => void }).destroy?.();
      throw tooLarge(`[s3] '${key}'`, size, maxBytes);
    }
    // s3rver answers a range of an empty object with "bytes 0-0/0", a length of 1 and no body.
    if (size === 0) {
      (res.Body as { destroy?: () => void }).destroy?.();
      return new Uint8Array(0);
    }
    if (size === undefined || res.ContentLength === undefined) {
      try {
        return await res.Body.transformToByteArray();
      } catch (e) {
        throw Object.assign(e as Error, { bodyRead: true });
      }
    }
    // One buffer of the final size: a 1 GB artifact costs 1 GB, not the 2 GB of collecting
    // chunks and concatenating them.
    const out = new Uint8Array(size);
    const first = res.ContentLength;
    if (first === size) {
      await fill(res.Body, out, 0, first);
      hasher?.update(out);
      return out;
    }
    const etag = res.ETag;
    // Part 0 is the first answer's body, still streaming while the other ranges start.
    const count = 1 + Math.ceil((size - first) / partSize);
    const bounds = (i: number) => {
      const start = i === 0 ? 0 : first + (i - 1) * partSize;
      return [start, i === 0 ? first : Math.min(start + partSize, size)] as const;
    };
    const done = new Array<boolean>(count).fill(false);
    let hashed = 0;
    let next = 1;
    let failed = false;
    const finished = (i: number) => {
      done[i] = true;
      // Hash the longest finished prefix: the parts finish out of order, the hash is sequential.
      for (; !failed && hashed < count && done[hashed]; hashed++) {
        const [start, end] = bounds(hashed);
        hasher?.update(out.subarray(start, end));
      }
    };
    const part = async (i: number) => {
      const [start, end] = bounds(i);
      for (let attempt = 1; ; attempt++) {
        try {
          const r = await getObject(sdk, k, `bytes=${start}-${end - 1}`, etag);
          if (!r?.Body) throw Object.assign(new Error("the object disappeared while it was read"), { bodyRead: true });
          if (r.ContentLength !== end - start) throw Object.assign(new Error(`range ${start}-${end - 1} came back with ${r.ContentLength} bytes`), { bodyRead: true });
          await fill(r.Body, out, start, end - start);
          break;
        } catch (e) {
          // 412: the object changed since the first range; the caller reads it again whole.
          if (status(e) === 412) throw Object.assign(e as Error, { bodyRead: true });
          if (failed || !(e as SdkError).bodyRead || attempt >= maxAttempts) throw e;
          await backoff(attempt);
        }
      }
      finished(i);
    };
    const lane = async () => {
      while (!failed && next < count) await part(next++);
    };
    // A cut first body is fetched again as a range, like any other part.
    const head0 = fill(res.Body, out, 0, first).then(
      () => finished(0),
      (e) => {
        if (failed || !(e as SdkError).bodyRead) throw e;
        return part(0);
      },
    );
    await Promise.all([head0, ...Array.from({ length: Math.min(concurrency - 1, count - 1) || 1 }, lane)]).catch((e) => {
      failed = true;
      throw e;
    });
    return out;
  }

  /**
   * Multipart upload of bytes already in memory: each part is a view of the caller's buffers
   * (a copy only for a part that spans two of them), `concurrency` parts in flight, each part
   * retried on its own by the SDK. No object appears unless every part landed.
   */
  async function multipart(sdk: Sdk, k: string, chunks: readonly Bytes[], length: number) {
    const { s3, client } = sdk;
    const created = await client.send(new s3.CreateMultipartUploadCommand({ Bucket: bucket, Key: k }));
    const UploadId = created.UploadId!;
    // S3 takes at most 10,000 parts: past 80 GB (at 8 MiB) the parts grow.
    const size = Math.max(partSize, Math.ceil(length / 10_000));
    const count = Math.ceil(length / size);
    const etags = new Array<string>(count);
    let next = 0;
    let failed = false;
    const lane = async () => {
      while (!failed && next < count) {
        const i = next++;
        const body = slice(chunks, i * size, Math.min((i + 1) * size, length));
        const input = { Bucket: bucket, Key: k, UploadId, PartNumber: i + 1, Body: body, ContentLength: body.byteLength };
        etags[i] = (await client.send(new s3.UploadPartCommand(input))).ETag!;
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane)).catch((e) => {
        failed = true;
        throw e;
      });
      const Parts = etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 }));
      try {
        await client.send(new s3.CompleteMultipartUploadCommand({ Bucket: bucket, Key: k, UploadId, MultipartUpload: { Parts } }));
      } catch (e) {
        // A retried Complete whose first try landed (its answer lost) finds the upload gone.
        if ((e as Error).name !== "NoSuchUpload" || (await head(sdk, k)) !== length) throw e;
      }
    } catch (e) {
      await client.send(new s3.AbortMultipartUploadCommand({ Bucket: bucket, Key: k, UploadId })).catch(() => {});
      throw e;
    }
  }

  /** Multipart upload of a stream: lib-storage cuts it into parts, `concurrency` in flight. */
  async function upload(key: string, source: AsyncIterable<Bytes>, options?: PutOptions) {
    return call(
      "write",
      key,
      async (sdk) => {
      const k = objectKey(key);
      if (options?.immutable && (await head(sdk, k)) !== null) return;
      // Big values are never create-only markers; a check first is all a multipart upload gets.
      if (options?.ifAbsent && (await head(sdk, k)) !== null) throw keyExists(key, url);
      // Hand lib-storage part-sized views: given one 1 GB chunk it would concatenate (copy) it
      // whole before cutting parts, doubling the memory of a big artifact.
      const body = Readable.from(inPieces(source, partSize));
      const params = { Bucket: bucket, Key: k, Body: body };
      // We abort a failed upload ourselves (so no object appears): lib-storage would throw the
      // abort's own error instead of the real one when the abort fails too.
      const up = new sdk.Upload({ client: sdk.client, params, partSize, queueSize: concurrency, leavePartsOnError: true });
      try {
        await up.done();
      } catch (e) {
        const abort = new sdk.s3.AbortMultipartUploadCommand({ Bucket: bucket, Key: k, UploadId: up.uploadId });
        if (up.uploadId) await sdk.client.send(abort).catch(() => {});
        throw e;
      } finally {
        body.destroy();
      }
    },
      // A stream was consumed by the failed try.
      false,
    );
  }

  /** ListObjectsV2 page by page (1,000 keys each): full S3 keys, then common prefixes. */
  async function listPages({ s3, client }: Sdk, prefix: string, delimiter: boolean, each: (keys: string[]) => unknown) {
    let token: string | undefined;
    do {
      const input = { Bucket: bucket, Prefix: prefix, Delimiter: delimiter ? "/" : undefined, ContinuationToken: token };
      const page = await client.send(new s3.ListObjectsV2Command(input));
      const keys = (page.Contents ?? []).map((o) => o.Key ?? "").filter((k) => k.length > prefix.length);
      await each([...keys, ...(page.CommonPrefixes ?? []).map((p) => p.Prefix ?? "").filter(Boolean)]);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Keys below a directory prefix: relative to it (`list`), or to the datastore (`listAll`). */
  async function collect(prefix: string, delimiter: boolean) {
    const dir = dirKey(prefix);
    const out: string[] = [];
    return call("list", prefix, async (sdk) => {
      await listPages(sdk, dir, delimiter, (keys) => out.push(...keys.map((k) => k.slice(delimiter ? dir.length : base.length))));
      return out.sort();
    });
  }

  // Keys are checked inside `call`, so a bad key rejects the promise instead of throwing.
  return {
    name: NAME,
    url,
    location: url,
    compress: options.compress ?? true,
    atomicIfAbsent: true,
    // S3 stores an object durably before it answers the PUT.
    durableWrites: true,

    get: (key, options) =>
      call("read", key, async (sdk) => {
        // The SDK retries a request until its response headers arrive; a body cut short after
        // them (a reset, a connection closed early) is retried here, the whole GET again.
        for (let attempt = 1; ; attempt++) {
          try {
            return await readObject(sdk, key, options?.maxBytes, attempt === 1 ? options?.hasher : undefined);
          } catch (e) {
            if ((e as Error).name === "TooLarge" || e instanceof TsflowError || !(e as SdkError).bodyRead || attempt >= maxAttempts) throw e;
            await backoff(attempt);
          }
        }
      }),

    async getStream(key) {
      const res = await call("read", key, (sdk) => getObject(sdk, objectKey(key)));
      if (!res?.Body) return null;
      const body = res.Body as AsyncIterable<Bytes>;
      return (async function* () {
        try {
          yield* body;
        } catch (e) {
          fail("read", key, e);
        }
      })();
    },

    async put(key, data, options) {
      const chunks = data instanceof Uint8Array ? [data] : data;
      const length = chunks.reduce((n, c) => n + c.byteLength, 0);
      return call("write", key, async (sdk) => {
        const k = objectKey(key);
        // A content-addressed object is skipped only when it has the value's length: a writer
        // killed mid-PUT can leave a short object behind on some S3 servers (s3rver keeps the
        // bytes it got), and skipping it would hand every later reader a corrupt blob.
        if (options?.immutable && (await head(sdk, k)) === length) return;
        if (length >= threshold) {
          // Big values are never create-only markers; a check first is all a multipart upload gets.
          if (options?.ifAbsent && (await head(sdk, k)) !== null) throw keyExists(key, url);
          return multipart(sdk, k, chunks, length);
        }
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length);
        if (!options?.ifAbsent) {
          await sdk.client.send(new sdk.s3.PutObjectCommand({ Bucket: bucket, Key: k, Body: body, ContentLength: length }));
          return;
        }
        // Create-only: S3 refuses with 412 when the key exists (If-None-Match, S3 since 2024).
        // Stores that ignore the header (s3rver, older S3-compatibles) would overwrite, so a HEAD
        // first narrows that window to the time between the two requests.
        if ((await head(sdk, k)) !== null) throw keyExists(key, url);
        try {
          await sdk.client.send(new sdk.s3.PutObjectCommand({ Bucket: bucket, Key: k, Body: body, ContentLength: length, IfNoneMatch: "*" }));
        } catch (e) {
          // 412 after a retry may be our own first attempt, which landed before its answer was
          // lost: the key then holds exactly our bytes. 409: another create of it is in flight.
          if (status(e) !== 412 && status(e) !== 409) throw e;
          const now = await readObject(sdk, key, length + 1).catch(() => null);
          if (status(e) === 412 && now && Buffer.from(now).equals(Buffer.from(body))) return;
          throw keyExists(key, url);
        }
      });
    },

    putStream: (key, data, options) => upload(key, data, options),
    has: async (key) => (await call("check", key, (sdk) => head(sdk, objectKey(key)))) !== null,
    size: (key) => call("check", key, (sdk) => head(sdk, objectKey(key))),
    list: (prefix) => collect(prefix, true),
    listAll: (prefix) => collect(prefix, false),

    delete: (key) =>
      call("delete", key, async ({ s3, client }) => {
        await client.send(new s3.DeleteObjectCommand({ Bucket: bucket, Key: objectKey(key) }));
      }),

    deletePrefix: (prefix) =>
      call("delete", prefix, async (sdk) => {
        // A listing page holds at most 1,000 keys, exactly what one DeleteObjects accepts.
        await listPages(sdk, dirKey(prefix), false, async (keys) => {
          if (keys.length === 0) return;
          const Delete = { Objects: keys.map((Key) => ({ Key })), Quiet: true };
          const res = await sdk.client.send(new sdk.s3.DeleteObjectsCommand({ Bucket: bucket, Delete }));
          const err = res.Errors?.[0];
          if (err) throw Object.assign(new Error(`${err.Key}: ${err.Message}`), { name: err.Code ?? "DeleteFailed" });
        });
      }),

    async close() {
      if (sdk) (await sdk.catch(() => undefined))?.client.destroy();
      sdk = undefined;
    },
  };
}

/** Bytes `start`–`end` of chunks laid end to end: a view when one chunk holds them all. */
function slice(chunks: readonly Bytes[], start: number, end: number): Bytes {
  const parts: Bytes[] = [];
  let at = 0;
  for (const c of chunks) {
    const from = Math.max(start, at);
    const to = Math.min(end, at + c.byteLength);
    if (from < to) parts.push(c.subarray(from - at, to - at));
    at += c.byteLength;
    if (at >= end) break;
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, end - start);
}

async function* inPieces(source: Iterable<Bytes> | AsyncIterable<Bytes>, size: number): AsyncGenerator<Bytes> {
  for await (const chunk of source) {
    for (let at = 0; at < chunk.byteLength; at += size) yield chunk.subarray(at, Math.min(at + size, chunk.byteLength));
  }
}
