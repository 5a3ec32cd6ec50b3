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
  /** Unix ms; the request is signed as kind "shell" (host-requests.ts): stale or replayed ones are refused. */
  issuedAt: number;
}

export function shellSubject(hostId: string): string {
  return `slipway.shell.${hostId}`;
}
