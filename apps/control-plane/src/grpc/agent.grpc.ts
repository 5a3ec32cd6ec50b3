import type { Readable } from "node:stream";
import { Server, ServerCredentials, status as grpcStatus, type Metadata, type ServerErrorResponse } from "@grpc/grpc-js";
import {
  AgentServiceService,
  type AgentServiceServer,
  type GetJobSpecResponse,
  type HeartbeatRequest,
  type DataSpec,
  type MetricsBatch,
  type MetricsSample,
  type JobEvent,
  type TlsCertificate,
} from "@slipway/proto";
import { InvalidRequestError, SlipwayError, hostInboxPrefix, jobsConsumer, jobsSubject, JOBS_STREAM, type GitAuth, type Logger } from "@slipway/core";
import { isNatsUserKey } from "../bus/nats-users.js";
import type { HostService } from "../services/host.service.js";
import type { JobEventInput, JobReportService } from "../services/job-report.service.js";
import type { JobBus } from "../bus/job-bus.js";
import type { DataJobSpec } from "../data/data.service.js";

const codeMap: Record<string, grpcStatus> = {
  invalid_request: grpcStatus.INVALID_ARGUMENT,
  unauthenticated: grpcStatus.UNAUTHENTICATED,
  forbidden: grpcStatus.PERMISSION_DENIED,
  not_found: grpcStatus.NOT_FOUND,
  conflict: grpcStatus.FAILED_PRECONDITION,
  precondition_failed: grpcStatus.FAILED_PRECONDITION,
  illegal_state: grpcStatus.FAILED_PRECONDITION,
  unavailable: grpcStatus.UNAVAILABLE,
};

/** The one mapping from domain errors to gRPC statuses. */
export function toGrpcError(err: unknown): ServerErrorResponse {
  const e = new Error(err instanceof Error ? err.message : String(err)) as ServerErrorResponse;
  e.code = err instanceof SlipwayError ? (codeMap[err.code] ?? grpcStatus.INTERNAL) : grpcStatus.INTERNAL;
  return e;
}

function bearer(md: Metadata): string | undefined {
  const v = md.get("authorization")[0];
  return typeof v === "string" ? v : undefined;
}

/**
 * Bytes one message may have: grpc-js' default, stated. The largest an agent sends is a
 * MetricsBatch (60 samples; a host with hundreds of containers stays near 1 MB); a job event
 * carries at most one 8,000-character log line.
 */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/**
 * Messages one stream may carry; one more ends it with RESOURCE_EXHAUSTED. The agent sends a
 * report of at most 1,000 events and one metrics batch per stream; a heartbeat stream lasts
 * about six days at the default interval, then the agent reopens it.
 */
export const STREAM_MESSAGE_LIMITS = { reportJobEvents: 10_000, pushMetrics: 100, heartbeat: 100_000 } as const;
/** Events of a report applied per round while the stream arrives. */
const REPORT_CHUNK = 500;

function resourceExhausted(message: string): ServerErrorResponse {
  const e = new Error(message) as ServerErrorResponse;
  e.code = grpcStatus.RESOURCE_EXHAUSTED;
  return e;
}

type AgentHost = Awaited<ReturnType<HostService["authenticateAgent"]>>;

/**
 * Authenticates a stream from its metadata before a single message is read: handlers attach no
 * "data" listener until this resolves, and grpc-js reads from the HTTP/2 stream only when asked,
 * so what an unauthenticated client streams stays in its own flow-control window. On failure
 * `fail` ends the call (UNAUTHENTICATED) and this resolves undefined.
 */
async function authenticateStream(hosts: HostService, call: { metadata: Metadata }, fail: (err: ServerErrorResponse) => void): Promise<AgentHost | undefined> {
  try {
    return await hosts.authenticateAgent(bearer(call.metadata));
  } catch (err) {
    fail(toGrpcError(err));
    return undefined;
  }
}

interface StreamConsumer<T, R> {
  /** Handles one message; while a returned promise runs the stream is paused, so one message at a time is in hand. */
  onMessage(message: T): Promise<void> | undefined;
  /** Runs after the client's last message, once every message was handled. */
  finish(): Promise<R>;
  /** Called once: with finish()'s answer, or with the first error (a failed message, the message limit). */
  settle(err: ServerErrorResponse | null, res?: R): void;
}

/** Reads an authenticated stream incrementally, at most `limit` messages; nothing is buffered beyond the message in hand. */
function consumeStream<T, R>(call: Readable, limit: number, c: StreamConsumer<T, R>): void {
  let settled = false;
  let count = 0;
  let busy: Promise<void> = Promise.resolve();
  const settle = (err: ServerErrorResponse | null, res?: R) => {
    if (settled) return;
    settled = true;
    // Nothing more is read: the status ends the call and grpc-js discards what still arrives.
    call.pause();
    c.settle(err, res);
  };
  call.on("cancelled", () => {
    settled = true;
  });
  call.on("data", (m: T) => {
    if (settled) return;
    if (++count > limit) return settle(resourceExhausted(`more than ${limit} messages on one stream`));
    let pending: Promise<void> | undefined;
    try {
      pending = c.onMessage(m);
    } catch (err) {
      return settle(toGrpcError(err));
    }
    if (!pending) return;
    call.pause();
    busy = pending.then(
      () => {
        if (!settled) call.resume();
      },
      (err: unknown) => settle(toGrpcError(err)),
    );
  });
  call.on("end", () => {
    void busy.then(() => {
      if (settled) return;
      c.finish().then(
        (res) => settle(null, res),
        (err: unknown) => settle(toGrpcError(err)),
      );
    });
  });
}

export interface AgentGrpcDeps {
  hosts: HostService;
  reports: JobReportService;
  bus: JobBus;
  log: Logger;
  natsPublicUrl: () => string;
  /** The NATS server's users, one per host; absent = an external NATS the control plane does not configure. */
  natsUsers?: { sync(): Promise<void> };
  heartbeatIntervalMs: number;
  /** Opens the sealed variables of a job spec; only GetJobSpec ever sees them in plain text. */
  unseal: (sealed: string) => Record<string, string>;
  /**
   * How a deploy job's agent reads the app's repository: the URL with its token opened, or the deploy
   * key and the git host's pinned keys (never published on NATS).
   */
  repositoryAccess: (app: string, repository: string, credentialSealed: string | undefined) => Promise<{ url: string; auth?: GitAuth; warning?: string }>;
  /** Resolves a data job's spec with its credentials. */
  dataSpec: (spec: DataJobSpec) => Promise<DataSpec>;
  /** Stores pushed metrics samples; absent = samples are accepted and dropped. */
  metrics?: { ingest(hostId: string, samples: MetricsSample[]): Promise<void> };
  /**
   * HTTPS (issue 15): the certificates the control plane holds for these host names (key opened)
   * and the ACME account's thumbprint, read when the agent asks for a job's spec, so a routes or
   * deploy job always carries the newest ones; absent = none.
   */
  tls?: (hostnames: readonly string[]) => Promise<{ certificates: TlsCertificate[]; acmeThumbprint: string }>;
}

export function decodeEvent(e: JobEvent): JobEventInput | undefined {
  const base = { jobId: e.jobId, seq: e.seq, at: e.at ?? new Date() };
  const ev = e.event;
  if (!ev) return undefined;
  switch (ev.$case) {
    case "log":
      return { ...base, kind: "log", text: ev.value.text };
    case "step":
      return { ...base, kind: "step", name: ev.value.name, state: ev.value.state };
    case "facts":
      return { ...base, kind: "facts", commit: ev.value.commit, image: ev.value.image, ...(ev.value.imageDigest ? { imageDigest: ev.value.imageDigest } : {}) };
    case "progress":
      return { ...base, kind: "progress", phase: ev.value.phase, bytes: ev.value.bytes, objects: ev.value.objects };
    case "backup":
      return { ...base, kind: "backup", backupId: ev.value.backupId, database: ev.value.database, databaseBytes: ev.value.databaseBytes, databaseSha256: ev.value.databaseSha256, media: ev.value.media, mediaBytes: ev.value.mediaBytes, mediaObjects: ev.value.mediaObjects };
    case "result": {
      const st = ev.value.state;
      if (st !== "succeeded" && st !== "failed" && st !== "cancelled") return undefined;
      const f = ev.value.failure;
      return { ...base, kind: "result", state: st, commit: ev.value.commit, image: ev.value.image, ...(ev.value.imageDigest ? { imageDigest: ev.value.imageDigest } : {}), ...(f ? { failure: { type: f.type, message: f.message, retryable: f.retryable, ...(f.details ? { details: f.details } : {}) } } : {}) };
    }
  }
}

export function agentServiceImpl(deps: AgentGrpcDeps): AgentServiceServer {
  const { hosts, reports, bus, log } = deps;
  return {
    register(call, callback) {
      const r = call.request;
      (async () => {
        if (!r.hostname || r.hostname.length > 253) throw new InvalidRequestError("hostname is required (at most 253 characters)");
        const { hostId, credential } = await hosts.register({
          joinToken: r.joinToken,
          hostname: r.hostname,
          labels: r.labels,
          capacity: { cpus: r.capacity?.cpus ?? 0, memoryBytes: r.capacity?.memoryBytes ?? 0, diskBytes: r.capacity?.diskBytes ?? 0 },
          version: r.version,
          ...(r.ingressAddress ? { ingressAddress: r.ingressAddress } : {}),
        });
        // The consumer must exist before the first job is published; NATS may be down now, the publisher retries.
        await bus.ensureConsumer(hostId).catch((err: unknown) => log.warn({ hostId, err: (err as Error).message }, "could not create the host's consumer yet"));
        return {
          hostId,
          credential,
          natsUrl: deps.natsPublicUrl(),
          jobsStream: JOBS_STREAM,
          jobsConsumer: jobsConsumer(hostId),
          jobsSubject: jobsSubject(hostId),
          heartbeatIntervalMs: deps.heartbeatIntervalMs,
        };
      })().then((res) => callback(null, res), (err) => callback(toGrpcError(err)));
    },

    configureNats(call, callback) {
      (async () => {
        const host = await hosts.authenticateAgent(bearer(call.metadata));
        const key = call.request.publicKey;
        if (!isNatsUserKey(key)) throw new InvalidRequestError("public_key must be an nkey user public key ('U' and 55 base32 characters)");
        await hosts.setNatsKey(host, key);
        // Answered once the server enforces the key: the agent connects right after.
        await deps.natsUsers?.sync();
        return { natsUrl: deps.natsPublicUrl(), inboxPrefix: hostInboxPrefix(host.id), perHostUsers: deps.natsUsers !== undefined };
      })().then((res) => callback(null, res), (err) => callback(toGrpcError(err)));
    },

    heartbeat(call) {
      call.on("error", () => undefined);
      void authenticateStream(hosts, call, (err) => {
        call.emit("error", err);
      }).then((host) => {
        if (!host) return;
        log.info({ hostId: host.id, name: host.name }, "agent heartbeat stream opened");
        const hostId = host.id;
        consumeStream(call, STREAM_MESSAGE_LIMITS.heartbeat, {
          onMessage: async (req: HeartbeatRequest) => {
            const answer = await hosts.heartbeat(hostId, {
              version: req.version,
              capacity: { cpus: req.capacity?.cpus ?? 0, memoryBytes: req.capacity?.memoryBytes ?? 0, diskBytes: req.capacity?.diskBytes ?? 0 },
              load: { cpu: req.cpuLoad, memoryUsedBytes: req.memoryUsedBytes, diskUsedBytes: req.diskUsedBytes, diskFreeBytes: req.diskFreeBytes, containers: req.containers.length },
              environments: req.environments.map((e) => ({ environmentId: e.environmentId, state: e.state })),
              ...(req.ingressAddress ? { ingressAddress: req.ingressAddress } : {}),
            });
            if (req.servedCertificatesReported) await hosts.recordServedCertificates(hostId, req.servedCertificates);
            if (req.incidents.length) {
              await hosts.recordIncidents(hostId, req.incidents.slice(0, 100).map((i) => ({ environmentId: i.environmentId, container: i.container.slice(0, 255), reason: i.reason, at: i.at ?? new Date() })));
            }
            call.write({ serverTime: new Date(), cancelRequested: answer.cancelRequested });
          },
          finish: async () => undefined,
          settle: (err) => {
            // The status follows the last answer: a Duplex ends its writable side after what it queued.
            if (err) call.emit("error", err);
            else call.end();
          },
        });
      });
    },

    reportJobEvents(call, callback) {
      call.on("error", () => undefined);
      void authenticateStream(hosts, call, (err) => callback(err)).then((host) => {
        if (!host) return;
        const pending: JobEventInput[] = [];
        const acked: Record<string, number> = {};
        const cancelRequested = new Set<string>();
        let bad = false;
        // Applied a chunk at a time while the stream arrives (seqs are in order, so chunks apply as the whole would).
        const apply = async () => {
          if (pending.length === 0) return;
          const r = await reports.apply(host.id, pending.splice(0));
          Object.assign(acked, r.acked);
          for (const id of r.cancelRequested) cancelRequested.add(id);
        };
        consumeStream(call, STREAM_MESSAGE_LIMITS.reportJobEvents, {
          onMessage: (e: JobEvent) => {
            const d = decodeEvent(e);
            if (d) pending.push(d);
            else bad = true;
            return pending.length >= REPORT_CHUNK ? apply() : undefined;
          },
          finish: async () => {
            await apply();
            if (bad) log.warn({ hostId: host.id }, "ignored malformed job events");
            return { acked, cancelRequested: [...cancelRequested] };
          },
          settle: (err, res) => (err ? callback(err) : callback(null, res)),
        });
      });
    },

    pushMetrics(call, callback) {
      call.on("error", () => undefined);
      void authenticateStream(hosts, call, (err) => callback(err)).then((host) => {
        if (!host) return;
        let accepted = 0;
        consumeStream(call, STREAM_MESSAGE_LIMITS.pushMetrics, {
          onMessage: async (b: MetricsBatch) => {
            await deps.metrics?.ingest(host.id, b.samples);
            accepted += b.samples.length;
          },
          finish: async () => ({ accepted }),
          settle: (err, res) => (err ? callback(err) : callback(null, res)),
        });
      });
    },

    getJobSpec(call, callback) {
      (async (): Promise<GetJobSpecResponse> => {
        const host = await hosts.authenticateAgent(bearer(call.metadata));
        const spec = await reports.getSpec(host.id, call.request.jobId);
        const res: GetJobSpecResponse = { jobId: spec.jobId, kind: spec.kind, state: spec.state, lastSeq: spec.lastSeq };
        const tlsFor = async (hostnames: readonly string[]) => (deps.tls ? deps.tls(hostnames) : { certificates: [], acmeThumbprint: "" });
        const d = spec.deploy;
        if (d) {
          // A deployment of an image reads no repository.
          const access: { url: string; auth?: GitAuth; warning?: string } = d.buildMode === "image" ? { url: "" } : await deps.repositoryAccess(d.app, d.repository, d.repositoryCredentialSealed);
          res.spec = {
            $case: "deploy",
            value: {
              deploymentId: d.deploymentId,
              app: d.app,
              environment: d.environment,
              repository: access.url,
              gitSshKey: access.auth?.sshPrivateKey ?? "",
              gitKnownHosts: access.auth?.knownHosts ?? "",
              image: d.image ?? "",
              skipRelease: d.skipRelease ?? false,
              preamble: [...(access.warning ? [`warning: ${access.warning}`] : []), ...(d.preamble ?? [])],
              imageDigest: d.imageDigest ?? "",
              branch: d.branch,
              buildMode: d.buildMode,
              currentImage: d.currentImage ?? "",
              webPort: d.settings.webPort ?? 0,
              probe: {
                path: d.settings.startupProbe.path,
                acceptedStatuses: d.settings.startupProbe.acceptedStatuses,
                startupTimeoutMs: d.settings.startupProbe.startupTimeoutSeconds * 1000,
                probeTimeoutMs: d.settings.startupProbe.probeTimeoutSeconds * 1000,
                maxRetries: d.settings.startupProbe.maxRetries,
              },
              releaseCommands: d.settings.releaseCommands,
              releaseCommandTimeoutMs: d.settings.releaseCommandTimeoutSeconds * 1000,
              replicas: d.replicas,
              ...(d.limits ? { limits: { memoryBytes: d.limits.memoryMb * 1048576, nanoCpus: Math.round(d.limits.cpus * 1e9), pids: d.limits.pids } } : {}),
              variables: deps.unseal(d.variablesSealed),
              hostnames: d.hostnames,
              environmentId: d.environmentId,
              sleepAfterSeconds: d.sleepAfterSeconds,
              ...(d.basicAuth ? { basicAuth: d.basicAuth } : {}),
              ...(d.content ? { content: await deps.dataSpec(d.content) } : {}),
              ...(await tlsFor(d.hostnames)),
              httpsRedirect: d.https?.redirect ?? false,
              hstsMaxAgeSeconds: d.https?.hstsMaxAgeSeconds ?? 0,
            },
          };
        } else if (spec.data) {
          res.spec = { $case: "data", value: await deps.dataSpec(spec.data) };
        } else if (spec.environment) {
          const e = spec.environment;
          res.spec = {
            $case: "environment",
            value: {
              action: e.action,
              app: e.app,
              environment: e.environment,
              environmentId: e.environmentId,
              hostnames: e.hostnames,
              sleepAfterSeconds: e.sleepAfterSeconds,
              forwardTo: e.forwardTo ?? "",
              ...(e.basicAuth ? { basicAuth: e.basicAuth } : {}),
              ...(await tlsFor(e.hostnames)),
              httpsRedirect: e.https?.redirect ?? false,
              hstsMaxAgeSeconds: e.https?.hstsMaxAgeSeconds ?? 0,
            },
          };
        }
        return res;
      })().then((r) => callback(null, r), (err) => callback(toGrpcError(err)));
    },
  };
}

/** Starts the gRPC server; resolves with the bound port. TLS when cert and key are given. */
export async function startGrpcServer(impl: AgentServiceServer, opts: { host: string; port: number; tls?: { cert: Buffer; key: Buffer; ca?: Buffer } }): Promise<{ server: Server; port: number }> {
  const server = new Server({
    // Agents ping every 20 s (they find a lost control plane that way) and beat every 5 s; this
    // side's pings only find agents that vanished without closing their connection. At 20 s both
    // ways, a fleet of 10,000 cost 1,000 pings and as many answers a second.
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    // An agent holds a heartbeat, a few reports and a metrics push at a time.
    "grpc.max_concurrent_streams": 100,
  });
  server.addService(AgentServiceService, impl);
  // With a client CA, every agent must present a certificate it signed (mTLS); the bearer credential is still checked.
  const creds = opts.tls
    ? ServerCredentials.createSsl(opts.tls.ca ?? null, [{ cert_chain: opts.tls.cert, private_key: opts.tls.key }], opts.tls.ca !== undefined)
    : ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${opts.host}:${opts.port}`, creds, (err, p) => (err ? reject(err) : resolve(p)));
  });
  return { server, port };
}
