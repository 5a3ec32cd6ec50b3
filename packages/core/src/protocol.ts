/**
 * Names on the wire between the CLI, the control plane and the agents, kept in
 * one place so both ends of every hop agree: NATS core subjects of the runtime
 * log and the shell (requests addressed to one host, answers on a per-request
 * inbox), and the media types of the HTTP bodies that stream them. Jobs'
 * subjects are in names.ts (`jobsSubject`), the shell request's in shell.ts
 * (`shellSubject`).
 */

/** Runtime log requests for the host: JSON `{app, environment, follow, since, tail, inbox}`. */
export function logsSubject(hostId: string): string {
  return `slipway.logs.${hostId}`;
}

/** NATS's prefix for reply subjects. */
export const INBOX_PREFIX = "_INBOX.";

/**
 * A fresh inbox for one log stream or shell session (`token`: random hex). The
 * agent answers only on inboxes: it refuses a request whose inbox does not
 * start with `INBOX_PREFIX`.
 */
export function logsInbox(token: string): string {
  return `${INBOX_PREFIX}slipway.logs.${token}`;
}
export function shellInbox(token: string): string {
  return `${INBOX_PREFIX}slipway.shell.${token}`;
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
