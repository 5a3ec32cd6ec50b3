import { pino, type Logger, type LoggerOptions, type DestinationStream } from "pino";

export type { Logger };

/** Paths never written to logs. */
export const redactPaths = [
  "token", "credential", "password", "secret", "*.token", "*.credential", "*.password", "*.secret",
  "variables", "*.variables", "authorization", "*.authorization", "headers.authorization", "req.headers.authorization",
  // Browser sessions: the cookie is the session's secret, the CSRF token is derived from it.
  "cookie", "*.cookie", "headers.cookie", "req.headers.cookie", 'headers["set-cookie"]', 'res.headers["set-cookie"]', "csrfToken", "*.csrfToken",
];

/** The one logger factory: JSON lines on stdout, secrets redacted. */
export function createLogger(name: string, level: string = "info", destination?: DestinationStream): Logger {
  const opts: LoggerOptions = {
    name,
    level,
    redact: { paths: redactPaths, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
    base: { pid: process.pid },
  };
  return destination ? pino(opts, destination) : pino(opts);
}
