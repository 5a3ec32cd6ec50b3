import type { LogSection } from "./log";

/** One release command as its section of the log tells it. */
export interface ReleaseCommandRun {
  label: string;
  /** Seconds it ran (the agent's "(label: exit 0 in 1.2 s)"), undefined while it runs or when it failed. */
  seconds?: number;
  state: "running" | "succeeded" | "failed";
}

/** One container's startup probe: attempts until it answered, and how long that took. */
export interface ProbeRun {
  container: string;
  attempts: number;
  seconds: number;
  status: number;
}

/** What the steps' own records do not hold: each release command, each container's probe attempts. */
export interface Timeline {
  releaseCommands: ReleaseCommandRun[];
  probes: ProbeRun[];
}

const COMMAND = /^----- (.+) -----$/;
const COMMAND_DONE = /^\((.+): exit 0 in (\d+(?:\.\d+)?) s\)$/;
const PROBE_DONE = /^(\S+): GET \S* answered (\d{3}) after (\d+) probe\(s\) in (\d+(?:\.\d+)?) s$/;

/**
 * The finer timeline of a deployment, read from its log's sections (`docker release commands`,
 * `startup probe`) as the agent writes them. `releaseFailed` marks a command that started and did
 * not finish as failed (the release step failed) rather than running.
 */
export function timelineOf(sections: readonly LogSection[], releaseFailed = false): Timeline {
  const releaseCommands: ReleaseCommandRun[] = [];
  const probes: ProbeRun[] = [];
  for (const section of sections) {
    if (section.title === "docker release commands") {
      for (const line of section.lines) {
        const started = COMMAND.exec(line);
        if (started) {
          releaseCommands.push({ label: started[1]!, state: "running" });
          continue;
        }
        const done = COMMAND_DONE.exec(line);
        const last = releaseCommands[releaseCommands.length - 1];
        if (done && last && last.label === done[1] && last.state === "running") {
          last.state = "succeeded";
          last.seconds = Number(done[2]);
        }
      }
    } else if (section.title === "startup probe") {
      for (const line of section.lines) {
        const done = PROBE_DONE.exec(line);
        if (done) probes.push({ container: done[1]!, status: Number(done[2]), attempts: Number(done[3]), seconds: Number(done[4]) });
      }
    }
  }
  if (releaseFailed) for (const c of releaseCommands) if (c.state === "running") c.state = "failed";
  return { releaseCommands, probes };
}
