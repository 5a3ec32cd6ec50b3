import { createLogger, type Logger } from "./logging.js";

/** A setting that cannot be used; the process reports it and exits with status 2. */
export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`invalid configuration: ${variable}: ${message}`);
    this.name = "ConfigError";
  }
}

/** A whole number from the environment, `fallback` when unset, within min..max. */
export function intFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `'${raw}' is not a whole number`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `${n} is outside ${min}..${max}`);
  return n;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** LOG_LEVEL, checked against pino's levels. */
export function logLevelFromEnv(env: NodeJS.ProcessEnv, fallback = "info"): string {
  const level = env.LOG_LEVEL || fallback;
  if (!LOG_LEVELS.includes(level)) throw new ConfigError("LOG_LEVEL", `'${level}' is not a pino level`);
  return level;
}

/**
 * The life of a service process: loads its configuration (a ConfigError
 * prints one line and exits 2), starts it, and stops it once on SIGTERM or
 * SIGINT (exit 0, or 1 when stopping failed). A failed start exits 1.
 */
export async function runService<C extends { logLevel: string }>(opts: {
  name: string;
  loadConfig: () => C;
  start: (config: C, log: Logger) => Promise<{ stop(): Promise<void> }>;
  stoppingMessage?: string;
}): Promise<void> {
  let config: C;
  try {
    config = opts.loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${opts.name}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(opts.name, config.logLevel);
  try {
    const service = await opts.start(config, log);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, opts.stoppingMessage ?? "stopping");
      service.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, "error while stopping");
          process.exit(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  } catch (err) {
    log.fatal({ err }, `${opts.name} failed to start`);
    process.exit(1);
  }
}
