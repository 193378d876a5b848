// @cachecar/client: the TypeScript client for the cachecar sidecar. Every call is async
// and has a deadline; errors are CachecarError with the sidecar's reason and every field
// violation; waitReady() waits for a warm cache; watch() is an async iterator that resumes
// by itself after a disconnect or a sidecar restart.
import * as fs from "fs";
import * as path from "path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import * as protobuf from "protobufjs";

import type { ProtoGrpcType } from "./gen/cache";
import type { CacheServiceClient } from "./gen/cachecar/v1/CacheService";
import type { Entry__Output } from "./gen/cachecar/v1/Entry";
import type { WatchRequest } from "./gen/cachecar/v1/WatchRequest";
import type { WatchResponse__Output } from "./gen/cachecar/v1/WatchResponse";

const PROTO = path.join(__dirname, "..", "proto", "cachecar", "v1", "cache.proto");

export type Bytes = Buffer | string;
const b = (v: Bytes): Buffer => (typeof v === "string" ? Buffer.from(v) : v);

export interface Violation {
  field: string;       // "key", "value/email"
  description: string; // for people
  reason: string;      // for schema violations the JSON Schema keyword ("format")
}

// An RPC failed. code: gRPC status code name; reason: the sidecar's ErrorInfo reason
// (TOPIC_NOT_FOUND, SCHEMA_VIOLATION, CACHE_NOT_READY...); violations: every bad field.
export class CachecarError extends Error {
  constructor(public code: string, message: string, public reason = "",
              public violations: Violation[] = [], public metadata: Record<string, string> = {}) {
    super(`${code}: ${message}${reason ? ` (${reason})` : ""}`);
  }
}

// google.rpc.Status and the two details cachecar sends, for decoding error details.
const rpcTypes = protobuf.Root.fromJSON({
  nested: { google: { nested: {
    protobuf: { nested: { Any: { fields: { type_url: { type: "string", id: 1 }, value: { type: "bytes", id: 2 } } } } },
    rpc: { nested: {
      Status: { fields: { code: { type: "int32", id: 1 }, message: { type: "string", id: 2 },
                          details: { rule: "repeated", type: "google.protobuf.Any", id: 3 } } },
      ErrorInfo: { fields: { reason: { type: "string", id: 1 }, domain: { type: "string", id: 2 },
                             metadata: { keyType: "string", type: "string", id: 3 } } },
      BadRequest: { fields: { field_violations: { rule: "repeated", type: "FieldViolation", id: 1 } },
                    nested: { FieldViolation: { fields: { field: { type: "string", id: 1 },
                      description: { type: "string", id: 2 }, reason: { type: "string", id: 3 } } } } },
    } },
  } } },
} as any);
const StatusType = rpcTypes.lookupType("google.rpc.Status");
const ErrorInfoType = rpcTypes.lookupType("google.rpc.ErrorInfo");
const BadRequestType = rpcTypes.lookupType("google.rpc.BadRequest");

export function fromServiceError(e: grpc.ServiceError): CachecarError {
  let reason = "";
  let violations: Violation[] = [];
  let metadata: Record<string, string> = {};
  for (const raw of e.metadata?.get("grpc-status-details-bin") ?? []) {
    const st = StatusType.toObject(StatusType.decode(raw as Buffer), { defaults: true }) as any;
    for (const any of st.details ?? []) {
      if (any.type_url.endsWith("google.rpc.ErrorInfo")) {
        const info = ErrorInfoType.toObject(ErrorInfoType.decode(any.value), { defaults: true }) as any;
        reason = info.reason;
        metadata = info.metadata ?? {};
      } else if (any.type_url.endsWith("google.rpc.BadRequest")) {
        const bad = BadRequestType.toObject(BadRequestType.decode(any.value), { defaults: true }) as any;
        violations = (bad.field_violations ?? []).map((v: any) => ({
          field: v.field, description: v.description, reason: v.reason ?? "" }));
      }
    }
  }
  return new CachecarError(grpc.status[e.code] ?? String(e.code), e.details, reason, violations, metadata);
}

// One item of a watch. PUT/DELETE: a change (snapshot: an entry of a snapshot). RESET:
// what the watch delivered before no longer applies (the sidecar's history does not reach
// back to it, or its store was rebuilt): drop your state; a new snapshot follows.
export interface WatchEvent {
  type: "PUT" | "DELETE" | "RESET";
  key?: Buffer;
  value?: Buffer;
  revision?: bigint;
  snapshot?: boolean;
  prevValue?: Buffer;
}

export interface ClientOptions {
  address?: string;   // default $CACHECAR_ADDRESS or 127.0.0.1:50051; "unix:/path" works
  token?: string;     // sent as "authorization: Bearer <token>"
  tokenFile?: string; // default $CACHECAR_TOKEN_FILE
  timeoutMs?: number; // deadline of every call; default 5000
}

export interface ReadOptions {
  allowColdCache?: boolean;
  originalValue?: boolean;
  timeoutMs?: number;
}

export interface WatchOptions {
  key?: Bytes;
  prefix?: Bytes;
  snapshot?: boolean;
  prevEntry?: boolean;
  // Values exactly as they were in Kafka (a registry topic's wire-format bytes) rather than
  // as stored (their decoded JSON); see GetRequest.original_value.
  originalValue?: boolean;
  // Deliver the changes after this revision (e.g. a store_revision read earlier). Unset:
  // after the store's revision when the stream opens (the first next()).
  fromRevision?: bigint;
  signal?: AbortSignal; // ends the watch
}

const RETRYABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED,
  grpc.status.CANCELLED, grpc.status.INTERNAL, grpc.status.RESOURCE_EXHAUSTED]);

export class Client {
  readonly address: string;
  private stub: CacheServiceClient;
  private metadata = new grpc.Metadata();
  private timeoutMs: number;

  constructor(options: ClientOptions = {}) {
    this.address = options.address ?? process.env.CACHECAR_ADDRESS ?? "127.0.0.1:50051";
    this.timeoutMs = options.timeoutMs ?? 5000;
    let token = options.token;
    const tokenFile = options.tokenFile ?? process.env.CACHECAR_TOKEN_FILE;
    if (token === undefined && tokenFile) token = fs.readFileSync(tokenFile, "utf8").replace(/[\r\n]+$/, "");
    if (token) this.metadata.set("authorization", `Bearer ${token}`);
    const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String,
                                              defaults: true, oneofs: true });
    const proto = grpc.loadPackageDefinition(def) as unknown as ProtoGrpcType;
    this.stub = new proto.cachecar.v1.CacheService(this.address, grpc.credentials.createInsecure());
  }

  close(): void {
    this.stub.close();
  }

  private call<Req, Res>(method: string, req: Req, timeoutMs?: number): Promise<Res> {
    const deadline = new Date(Date.now() + (timeoutMs ?? this.timeoutMs));
    return new Promise((resolve, reject) => {
      (this.stub as any)[method](req, this.metadata, { deadline },
        (err: grpc.ServiceError | null, res: Res) => (err ? reject(fromServiceError(err)) : resolve(res)));
    });
  }

  // A miss is { found: false }, never an error.
  // originalValue: the value exactly as it was in Kafka (a registry topic's wire-format
  // bytes) rather than as stored (their decoded JSON).
  get(topic: string, key: Bytes, opts: ReadOptions & { minRevision?: bigint } = {}) {
    return this.call<object, { found: boolean; entry: Entry__Output | null; store_revision: string }>("Get", {
      topic, key: b(key), min_revision: String(opts.minRevision ?? 0n), allow_cold_cache: !!opts.allowColdCache,
      original_value: !!opts.originalValue,
    }, opts.timeoutMs);
  }

  batchGet(topic: string, keys: Bytes[], opts: ReadOptions = {}) {
    return this.call<object, any>("BatchGet", { topic, keys: keys.map(b), allow_cold_cache: !!opts.allowColdCache,
                                                original_value: !!opts.originalValue }, opts.timeoutMs);
  }

  // Every entry whose key starts with prefix, following pages.
  async *list(topic: string, prefix: Bytes = "", opts: ReadOptions = {}):
      AsyncIterable<Entry__Output> {
    let page_token = "";
    do {
      const page = await this.call<object, any>("List", { topic, prefix: b(prefix), page_size: 1000, page_token,
                                                          allow_cold_cache: !!opts.allowColdCache,
                                                          original_value: !!opts.originalValue }, opts.timeoutMs);
      yield* page.entries as Entry__Output[];
      page_token = page.next_page_token;
    } while (page_token);
  }

  status(timeoutMs?: number) {
    return this.call<object, any>("GetStatus", {}, timeoutMs);
  }

  // Waits until the sidecar is ready, at most timeoutMs ({ ready: false, not_ready_reason }
  // then). A sidecar that is still starting (unreachable) is waited for too.
  async waitReady(timeoutMs = 60000): Promise<{ ready: boolean; not_ready_reason: string }> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const left = end - Date.now();
      try {
        return await this.call<object, any>("WaitReady", {}, Math.max(left, 10));
      } catch (e) {
        if (!(e instanceof CachecarError) || e.code !== "UNAVAILABLE" || left <= 200) throw e;
        await new Promise((r) => setTimeout(r, Math.min(100, left)));
      }
    }
  }

  // Writes go through the topic; by default they resolve once this sidecar applied them.
  put(topic: string, key: Bytes, value: Bytes, opts: { ackOnly?: boolean; timeoutMs?: number } = {}) {
    return this.call<object, { partition: number; offset: string; applied: boolean; store_revision: string }>(
      "Put", { topic, key: b(key), value: b(value), ack_only: !!opts.ackOnly }, opts.timeoutMs);
  }

  delete(topic: string, key: Bytes, opts: { ackOnly?: boolean; timeoutMs?: number } = {}) {
    return this.call<object, { partition: number; offset: string; applied: boolean; store_revision: string }>(
      "Delete", { topic, key: b(key), ack_only: !!opts.ackOnly }, opts.timeoutMs);
  }

  // Changes to one key or every key with a prefix, resumed after disconnects and restarts
  // from the last revision delivered; see WatchEvent for RESET. Abort `signal` to end it.
  async *watch(topic: string, opts: WatchOptions): AsyncIterable<WatchEvent> {
    if ((opts.key === undefined) === (opts.prefix === undefined)) {
      throw new Error("watch needs exactly one of key and prefix");
    }
    let snapshot = !!opts.snapshot, resetOwed = false, storeId = "";
    let started = opts.fromRevision !== undefined && !snapshot;
    let revision = started ? opts.fromRevision! : 0n;
    let backoff = 50;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    while (!opts.signal?.aborted) {
      const call = this.stub.Watch(this.metadata);
      const abort = () => call.cancel();
      opts.signal?.addEventListener("abort", abort);
      const create: WatchRequest = { create: {
        watch_id: 1, topic, key: b(opts.key ?? opts.prefix!), prefix: opts.prefix !== undefined,
        snapshot, prev_entry: !!opts.prevEntry, original_value: !!opts.originalValue,
        ...(started && !snapshot ? { resume_revision: String(revision), store_id: storeId } : {}),
      } };
      call.write(create);
      let end: "backoff" | "reconnect" | CachecarError = "backoff";
      try {
        for await (const resp of call as AsyncIterable<WatchResponse__Output>) {
          if (resp.created) {
            backoff = 50;
            storeId = resp.created.store_id;
            if (!started) revision = BigInt(resp.created.revision);
            if (resetOwed) { resetOwed = false; yield { type: "RESET" }; }
            if (!snapshot) started = true;
          } else if (resp.snapshot) {
            for (const e of resp.snapshot.entries) {
              yield { type: "PUT", key: e.key, value: e.value, revision: BigInt(e.revision), snapshot: true };
            }
          } else if (resp.snapshot_end) {
            revision = BigInt(resp.snapshot_end.revision);
            started = true;
            snapshot = false;
          } else if (resp.events) {
            for (const ev of resp.events.events) {
              revision = BigInt(ev.revision);
              const put = ev.type === "PUT";
              yield { type: put ? "PUT" : "DELETE", key: ev.entry!.key, value: put ? ev.entry!.value : undefined,
                      revision, prevValue: ev.prev_entry?.value };
            }
          } else if (resp.progress) {
            const r = BigInt(resp.progress.revision);
            if (r > revision) revision = r;
          } else if (resp.canceled) {
            const c = resp.canceled;
            const last = BigInt(c.last_revision);
            if (last > revision) revision = last;
            if (c.reason === "HISTORY_COMPACTED" || c.reason === "STORE_CHANGED") {
              snapshot = true; resetOwed = true; started = false; end = "reconnect";
            } else if (["INVALID_REQUEST", "LIMIT_EXCEEDED", "WATCH_ID_IN_USE", "CANCELED_BY_CLIENT"].includes(c.reason)) {
              end = new CachecarError("FAILED_PRECONDITION", c.message, c.reason);
            }
            break;
          }
        }
      } catch (e: any) {
        if (opts.signal?.aborted) return;
        if (!RETRYABLE.has(e.code)) throw fromServiceError(e);
      } finally {
        opts.signal?.removeEventListener("abort", abort);
        call.cancel();
      }
      if (end instanceof CachecarError) throw end;
      if (end === "backoff") {
        await sleep(backoff * (0.5 + Math.random()));
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }
}
