import type { ShellStreams } from "./shell.js";

/** Where a command reads and writes; `main.ts` binds it to the process, tests to buffers. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  /** The token when `slipway login` is given none (piped in); undefined when stdin is a terminal. */
  readStdin?: () => Promise<string | undefined>;
  /** Ctrl-C: stops following a log or waiting; the work on the platform goes on. */
  signal?: AbortSignal;
  /** Pause between two polls of a long operation (default 1 s). */
  pollMs?: number;
  /** Asks a question on the terminal and answers the line typed; undefined when there is no terminal to ask on. */
  prompt?: (question: string) => Promise<string>;
  /** stderr is a terminal: progress is one line rewritten in place (else a line now and then). */
  errIsTTY?: boolean;
  /** The process's own streams, for `slipway shell` (bytes both ways, raw terminal). */
  shell?: ShellStreams;
}
