import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Server, ServerCredentials, status, type ServerErrorResponse } from "@grpc/grpc-js";
import { AgentServiceService, type AgentServiceServer, type JobEvent } from "@slipway/proto";
import { ControlPlaneClient, REPORT_EVENTS_PER_STREAM } from "./control-plane.client.js";

// The control plane ends a report stream of more than 10,000 events (RESOURCE_EXHAUSTED, issue 11):
// a long batch (a build log buffered while the control plane was away) must still get through.
describe("ControlPlaneClient.reportJobEvents", () => {
  let server: Server;
  let client: ControlPlaneClient;
  const streams: number[] = [];
  const unimplemented = (_call: unknown, cb: (err: ServerErrorResponse) => void) => cb(Object.assign(new Error("not here"), { code: status.UNIMPLEMENTED }));

  beforeAll(async () => {
    server = new Server();
    const impl: AgentServiceServer = {
      register: unimplemented,
      getJobSpec: unimplemented,
      pushMetrics: unimplemented,
      heartbeat: (call) => call.end(),
      // A stand-in for the control plane's limit: it stores what comes and refuses an over-long stream.
      reportJobEvents: (call, cb) => {
        const events: JobEvent[] = [];
        call.on("data", (e: JobEvent) => events.push(e));
        call.on("end", () => {
          streams.push(events.length);
          if (events.length > REPORT_EVENTS_PER_STREAM) return cb(Object.assign(new Error("too many"), { code: status.RESOURCE_EXHAUSTED }));
          const last = events.at(-1);
          cb(null, { acked: last ? { [last.jobId]: last.seq } : {}, cancelRequested: events.some((e) => e.seq === 1500) ? ["job-1"] : [] });
        });
      },
    };
    server.addService(AgentServiceService, impl);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    client = new ControlPlaneClient(`127.0.0.1:${port}`);
    client.setCredential("slwagent_test");
  });
  afterAll(() => {
    client?.close();
    server?.forceShutdown();
  });

  it("sends a long batch on several streams, in order, and merges the answers", async () => {
    const events: JobEvent[] = Array.from({ length: 2 * REPORT_EVENTS_PER_STREAM + 500 }, (_, i) => ({ jobId: "job-1", seq: i + 1, event: { $case: "log", value: { text: `line ${i + 1}` } } }));
    const res = await client.reportJobEvents(events);
    expect(streams).toEqual([REPORT_EVENTS_PER_STREAM, REPORT_EVENTS_PER_STREAM, 500]);
    expect(res).toEqual({ acked: { "job-1": 2 * REPORT_EVENTS_PER_STREAM + 500 }, cancelRequested: ["job-1"] });
  });
});
