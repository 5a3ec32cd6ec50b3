/**
 * Following a container's log across rotations. Docker 20.10's json-file reader (Debian
 * bookworm's docker.io) stops delivering after the file it follows is rotated: `docker logs -f`
 * goes silent for good while the container keeps writing (measured: a follower that saw a flood
 * through dozens of rotations never saw the line written after it; a new follow did). So the
 * agent checks a silent follow against the log's last line (a `tail: 1` read, cheap at any log
 * size) and, when the log has a newer line than the follow delivered, follows anew from the last
 * line it delivered, skipping the replay of what was already sent (by timestamp: Docker stamps
 * every line in nanoseconds). The same engine may also end a follow while the container runs
 * (measured: the followed log's HTTP stream closed 25 s into a flood of ~200,000 lines/s, with the
 * container still writing); the agent then follows anew the same way, while the container runs.
 */

/** The nanoseconds since the epoch of a `timestamps: true` log line ("2026-12-06T16:20:01.1234Z text"), or undefined. */
export function logTimestampNs(line: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)\s/.exec(line);
  if (!m) return undefined;
  const seconds = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(seconds)) return undefined;
  return BigInt(seconds) * 1_000_000n + BigInt((m[2] ?? "").padEnd(9, "0"));
}

/** Docker's `since` for a time in nanoseconds: "seconds.nanoseconds" (the form the CLI sends; inclusive). */
export function sinceArg(ns: bigint): string {
  const s = ns / 1_000_000_000n;
  return `${s}.${(ns % 1_000_000_000n).toString().padStart(9, "0")}`;
}

/**
 * What a follow delivered, so that a new follow after a stuck one skips the replay. Only the replay
 * is filtered: within one follow, lines arrive as Docker wrote them (stdout and stderr are copied
 * concurrently, so their timestamps may be slightly out of order, and all are delivered).
 */
export class DeliveredFilter {
  private newest?: bigint;
  private replayUntil?: bigint;

  /** True when `line` is to be delivered (and remembers its time). */
  admit(line: string): boolean {
    const ts = logTimestampNs(line);
    if (ts === undefined) return this.replayUntil === undefined;
    if (this.replayUntil !== undefined) {
      if (ts <= this.replayUntil) return false;
      this.replayUntil = undefined; // past the replay: everything from here on is new
    }
    if (this.newest === undefined || ts > this.newest) this.newest = ts;
    return true;
  }

  /** A new follow starts from the newest delivered line: lines up to it are a replay. */
  resume(): void {
    this.replayUntil = this.newest;
  }

  /** The newest delivered line's time, in nanoseconds. */
  get lastNs(): bigint | undefined {
    return this.newest;
  }
}
