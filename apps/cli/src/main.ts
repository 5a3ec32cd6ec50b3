#!/usr/bin/env node
import { createInterface } from "node:readline/promises";
import { run } from "./cli.js";

const aborter = new AbortController();
let interrupted = 0;
process.on("SIGINT", () => {
  // First Ctrl-C stops following (the platform's work goes on); a second one leaves at once.
  if (++interrupted > 1) process.exit(130);
  aborter.abort();
});

async function readStdin(): Promise<string | undefined> {
  if (process.stdin.isTTY) return undefined;
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** A typed answer, asked on stderr (stdout may be piped to a file). */
async function prompt(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  // The terminal is raw while asking: Ctrl-C arrives as a key, not as a signal.
  rl.on("SIGINT", () => aborter.abort());
  try {
    return await rl.question(question, { signal: aborter.signal });
  } finally {
    rl.close();
  }
}

const code = await run(process.argv.slice(2), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
  readStdin,
  ...(process.stdin.isTTY && process.stderr.isTTY ? { prompt } : {}),
  errIsTTY: process.stderr.isTTY === true,
  signal: aborter.signal,
  shell: { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr },
});
// Let stdout drain before leaving (piped output).
process.stdout.write("", () => process.exit(code));
