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
} from "@slipway/proto";
import { InvalidRequestError, SlipwayError, jobsConsumer, jobsSubject, JOBS_STREAM, type Logger } from "@slipway/core";
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

export interface AgentGrpcDeps {
  hosts: HostService;
  reports: JobReportService;
  bus: JobBus;
  log: Logger;
  natsPublicUrl: () => string;
  heartbeatIntervalMs: number;
  /** Opens the sealed variables of a job spec; only GetJobSpec ever sees them in plain text. */
  unseal: (sealed: string) => Record<string, string>;
  /** Resolves a data job's spec with its credentials. */
  dataSpec: (spec: DataJobSpec) => Promise<DataSpec>;
  /** Stores pushed metrics samples; absent = samples are accepted and dropped. */
  metrics?: { ingest(hostId: string, samples: MetricsSample[]): Promise<void> };
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
      return { ...base, kind: "facts", commit: ev.value.commit, image: ev.value.image };
    case "progress":
      return { ...base, kind: "progress", phase: ev.value.phase, bytes: ev.value.bytes, objects: ev.value.objects };
    case "backup":
      return { ...base, kind: "backup", backupId: ev.value.backupId, database: ev.value.database, databaseBytes: ev.value.databaseBytes, media: ev.value.media, mediaBytes: ev.value.mediaBytes, mediaObjects: ev.value.mediaObjects };
    case "result": {
      const st = ev.value.state;
      if (st !== "succeeded" && st !== "failed" && st !== "cancelled") return undefined;
      const f = ev.value.failure;
      return { ...base, kind: "result", state: st, commit: ev.value.commit, image: ev.value.image, ...(f ? { failure: { type: f.type, message: f.message, retryable: f.retryable, ...(f.details ? { details: f.details } : {}) } } : {}) };
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

    heartbeat(call) {
      let hostId: string | undefined;
      let chain = Promise.resolve();
      call.on("data", (req: HeartbeatRequest) => {
        chain = chain.then(async () => {
          try {
            if (!hostId) {
              const h = await hosts.authenticateAgent(bearer(call.metadata));
              hostId = h.id;
              log.info({ hostId, name: h.name }, "agent heartbeat stream opened");
            }
            const answer = await hosts.heartbeat(hostId, {
              version: req.version,
              capacity: { cpus: req.capacity?.cpus ?? 0, memoryBytes: req.capacity?.memoryBytes ?? 0, diskBytes: req.capacity?.diskBytes ?? 0 },
              load: { cpu: req.cpuLoad, memoryUsedBytes: req.memoryUsedBytes, diskUsedBytes: req.diskUsedBytes, containers: req.containers.length },
              environments: req.environments.map((e) => ({ environmentId: e.environmentId, state: e.state })),
              ...(req.ingressAddress ? { ingressAddress: req.ingressAddress } : {}),
            });
            call.write({ serverTime: new Date(), cancelRequested: answer.cancelRequested });
          } catch (err) {
            call.emit("error", toGrpcError(err));
            call.end();
          }
        });
      });
      call.on("end", () => {
        void chain.then(() => call.end());
      });
      call.on("error", () => undefined);
    },

    reportJobEvents(call, callback) {
      const events: JobEventInput[] = [];
      let bad = false;
      call.on("data", (e: JobEvent) => {
        const d = decodeEvent(e);
        if (d) events.push(d);
        else bad = true;
      });
      call.on("error", () => undefined);
      call.on("end", () => {
        (async () => {
          const host = await hosts.authenticateAgent(bearer(call.metadata));
          if (bad) log.warn({ hostId: host.id }, "ignored malformed job events");
          return reports.apply(host.id, events);
        })().then(
          (r) => callback(null, { acked: r.acked, cancelRequested: r.cancelRequested }),
          (err) => callback(toGrpcError(err)),
        );
      });
    },

    pushMetrics(call, callback) {
      const batches: MetricsBatch[] = [];
      call.on("data", (b: MetricsBatch) => batches.push(b));
      call.on("error", () => undefined);
      call.on("end", () => {
        (async () => {
          const host = await hosts.authenticateAgent(bearer(call.metadata));
          const samples = batches.flatMap((b) => b.samples);
          await deps.metrics?.ingest(host.id, samples);
          return { accepted: samples.length };
        })().then((r) => callback(null, r), (err) => callback(toGrpcError(err)));
      });
    },

    getJobSpec(call, callback) {
      (async (): Promise<GetJobSpecResponse> => {
        const host = await hosts.authenticateAgent(bearer(call.metadata));
        const spec = await reports.getSpec(host.id, call.request.jobId);
        const res: GetJobSpecResponse = { jobId: spec.jobId, kind: spec.kind, state: spec.state, lastSeq: spec.lastSeq };
        const d = spec.deploy;
        if (d) {
          res.spec = {
            $case: "deploy",
            value: {
              deploymentId: d.deploymentId,
              app: d.app,
              environment: d.environment,
              repository: d.repository,
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
              variables: deps.unseal(d.variablesSealed),
              hostnames: d.hostnames,
              environmentId: d.environmentId,
              sleepAfterSeconds: d.sleepAfterSeconds,
              ...(d.basicAuth ? { basicAuth: d.basicAuth } : {}),
              ...(d.content ? { content: await deps.dataSpec(d.content) } : {}),
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
  const server = new Server({ "grpc.keepalive_time_ms": 20_000, "grpc.keepalive_permit_without_calls": 1 });
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
