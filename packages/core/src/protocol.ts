import { JOBS_STREAM, jobsConsumer } from "./names.js";
import { shellSubject } from "./shell.js";

/**
 * Names on the wire between the CLI, the control plane and the agents, kept in
 * one place so both ends of every hop agree: NATS core subjects of the runtime
 * log and the shell (requests addressed to one host, answers on a per-request
 * inbox), and the media types of the HTTP bodies that stream them. Jobs'
 * subjects are in names.ts (`jobsSubject`), the shell request's in shell.ts
 * (`shellSubject`).
 */

/** Runtime log requests for the host: a signed `LogRequest` (see host-requests.ts). */
export function logsSubject(hostId: string): string {
  return `slipway.logs.${hostId}`;
}

/**
 * Every reply subject of one host starts with this: the inboxes of its own
 * JetStream requests (nats.js' `inboxPrefix`) and the inboxes the control
 * plane opens for a log stream or shell session on that host. A host's NATS
 * user may use only its own prefix (`natsHostPermissions`), so no other host
 * can read or write a session it is not part of.
 */
export function hostInboxPrefix(hostId: string): string {
  return `_INBOX_${hostId}`;
}

/** True when `inbox` lies under the host's own prefix: the agent answers nowhere else. */
export function isHostInbox(hostId: string, inbox: unknown): inbox is string {
  return typeof inbox === "string" && inbox.startsWith(`${hostInboxPrefix(hostId)}.`) && !/[\s*>]/.test(inbox);
}

/** A fresh inbox for one log stream or shell session on the host (`token`: random hex). */
export function logsInbox(hostId: string, token: string): string {
  return `${hostInboxPrefix(hostId)}.logs.${token}`;
}
export function shellInbox(hostId: string, token: string): string {
  return `${hostInboxPrefix(hostId)}.shell.${token}`;
}

/**
 * What one host's NATS user may do, and nothing more: pull and acknowledge
 * its own jobs, read its own consumer's settings, receive the log and shell
 * requests addressed to it, and publish and subscribe under its own inbox
 * prefix. Everything else (other hosts' subjects, `_INBOX.>`, the streams'
 * management API) is refused by the server.
 */
export function natsHostPermissions(hostId: string): { publish: string[]; subscribe: string[] } {
  const consumer = `${JOBS_STREAM}.${jobsConsumer(hostId)}`;
  const inboxes = `${hostInboxPrefix(hostId)}.>`;
  return {
    publish: [`$JS.API.CONSUMER.MSG.NEXT.${consumer}`, `$JS.API.CONSUMER.INFO.${consumer}`, `$JS.ACK.${consumer}.>`, inboxes],
    subscribe: [logsSubject(hostId), shellSubject(hostId), inboxes],
  };
}

/**
 * What the requesting side sends on `<inbox>.<suffix>` while a stream or
 * session lasts: input frames (shell), a ping every few seconds (the agent
 * ends the stream when they stop), the end of a followed log, the client's
 * going away (shell).
 */
export const INBOX_CONTROL = {
  input: "in",
  ping: "ping",
  stop: "stop",
  close: "close",
} as const;
export type InboxControl = (typeof INBOX_CONTROL)[keyof typeof INBOX_CONTROL];

/** `<inbox>.<suffix>`, e.g. inboxControl(inbox, INBOX_CONTROL.ping). */
export function inboxControl(inbox: string, suffix: InboxControl): string {
  return `${inbox}.${suffix}`;
}

/** Every control subject of an inbox, for the agent's subscription. */
export function inboxControlWildcard(inbox: string): string {
  return `${inbox}.*`;
}

/** The control suffix of a subject received on `inboxControlWildcard(inbox)`. */
export function inboxControlOf(subject: string): string {
  return subject.slice(subject.lastIndexOf(".") + 1);
}

/** Both bodies of a shell request (`POST …/shell`): frames of core's `encodeShellFrame`. */
export const SHELL_MEDIA_TYPE = "application/vnd.slipway.shell-frames";

/** Logs streamed over HTTP (a deployment's log, an environment's runtime log): lines of UTF-8 text. */
export const LOG_MEDIA_TYPE = "text/plain; charset=utf-8";
