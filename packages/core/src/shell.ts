import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/**
 * The interactive shell ("SSH" of the hosted platform): a command in one of an
 * environment's running containers, its input and output relayed
 * CLI ⇄ control plane (one streamed HTTP request) ⇄ NATS core ⇄ agent ⇄ docker exec.
 * Every hop carries the same frames: a type byte, a 4-byte big-endian length,
 * the payload.
 */
export const ShellFrame = {
  /** agent → client: the session runs (JSON `{container}`). */
  Started: 1,
  Stdout: 2,
  Stderr: 3,
  /** agent → client: the command ended (JSON `{code}`); the last frame. */
  Exit: 4,
  /** → client: the session could not start or broke (UTF-8 message); the last frame. */
  Error: 5,
  /**
   * client → control plane: the first frame of the request body, the session's options (JSON
   * `{command?, tty?, rows?, cols?}`); the command travels here, not in the URL, so it stays out
   * of request logs. Never forwarded to the agent.
   */
  Open: 9,
  /** client → agent */
  Stdin: 10,
  /** client → agent: stdin is at its end. */
  StdinEnd: 11,
  /** client → agent: the terminal's size (JSON `{rows, cols}`). */
  Resize: 12,
} as const;
export type ShellFrameType = (typeof ShellFrame)[keyof typeof ShellFrame];

export const SHELL_MAX_FRAME = 1 << 20;

export function encodeShellFrame(type: number, payload: Uint8Array | string = new Uint8Array()): Buffer {
  const body = typeof payload === "string" ? Buffer.from(payload, "utf8") : Buffer.from(payload);
  const head = Buffer.alloc(5);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** Cuts a byte stream into frames; throws on a frame larger than SHELL_MAX_FRAME. */
export class ShellFrameReader {
  private buf = Buffer.alloc(0);

  push(chunk: Uint8Array): Array<{ type: number; payload: Buffer }> {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    const out: Array<{ type: number; payload: Buffer }> = [];
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1);
      if (len > SHELL_MAX_FRAME) throw new Error(`shell frame of ${len} bytes exceeds ${SHELL_MAX_FRAME}`);
      if (this.buf.length < 5 + len) break;
      out.push({ type: this.buf.readUInt8(0), payload: this.buf.subarray(5, 5 + len) });
      this.buf = this.buf.subarray(5 + len);
    }
    return out;
  }
}

/** What the control plane asks an agent for, on `slipway.shell.<hostId>`. */
export interface ShellRequest {
  app: string;
  environment: string;
  /** The command and its arguments; empty = the container's /bin/sh. */
  command: string[];
  tty: boolean;
  rows: number;
  cols: number;
  /** Where the agent sends frames; the client's frames come on `<inbox>.in`, pings on `<inbox>.ping`. */
  inbox: string;
  /** Unix ms; requests older than SHELL_REQUEST_MAX_AGE_MS are refused (no replay). */
  issuedAt: number;
}

export const SHELL_REQUEST_MAX_AGE_MS = 30_000;

export function shellSubject(hostId: string): string {
  return `slipway.shell.${hostId}`;
}

/**
 * A shell runs code in an app's container, so the agent accepts only requests
 * signed by the control plane: HMAC-SHA256 keyed with the SHA-256 of the
 * host's credential (the control plane keeps exactly that hash; the agent
 * computes it from its credential). Someone who can only publish on NATS
 * cannot open a shell.
 */
export function signShellRequest(credentialHash: string, req: ShellRequest): { request: ShellRequest; signature: string } {
  return { request: req, signature: createHmac("sha256", credentialHash).update(JSON.stringify(req)).digest("hex") };
}

export function credentialHashOf(credential: string): string {
  return createHash("sha256").update(credential).digest("hex");
}

export function verifyShellRequest(credentialHash: string, signed: { request: ShellRequest; signature: string }, now = Date.now()): boolean {
  if (typeof signed?.signature !== "string" || typeof signed.request !== "object" || signed.request === null) return false;
  const want = Buffer.from(createHmac("sha256", credentialHash).update(JSON.stringify(signed.request)).digest("hex"));
  const got = Buffer.from(signed.signature);
  if (want.length !== got.length || !timingSafeEqual(want, got)) return false;
  const age = now - signed.request.issuedAt;
  return age >= -5_000 && age <= SHELL_REQUEST_MAX_AGE_MS;
}
