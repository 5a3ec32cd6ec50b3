import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  deploymentStates,
  deploymentTransitions,
  environmentStates,
  environmentTransitions,
  isTerminalDeploymentState,
  jobStates,
  jobTransitions,
  transition,
  type DeploymentState,
} from "./states.js";
import { environmentApiState, environmentState, type EnvironmentFacts } from "./environment-state.js";
import { IllegalStateError } from "./errors.js";

const machines = [
  { name: "deployment", states: deploymentStates, table: deploymentTransitions as Record<string, readonly string[]> },
  { name: "environment", states: environmentStates, table: environmentTransitions as Record<string, readonly string[]> },
  { name: "job", states: jobStates, table: jobTransitions as Record<string, readonly string[]> },
] as const;

describe("transition tables (property-based)", () => {
  for (const m of machines) {
    it(`${m.name}: transition() allows exactly the table's moves and same-state no-ops`, () => {
      const state = fc.constantFrom(...(m.states as readonly string[]));
      fc.assert(
        fc.property(state, state, (from, to) => {
          const legal = from === to || m.table[from]!.includes(to);
          if (legal) expect(transition(m.name, m.table, from, to)).toBe(to);
          else expect(() => transition(m.name, m.table, from, to)).toThrow(IllegalStateError);
        }),
        { numRuns: 500 },
      );
    });

    it(`${m.name}: every state of the table is a known state`, () => {
      for (const [from, tos] of Object.entries(m.table)) {
        expect(m.states as readonly string[]).toContain(from);
        for (const to of tos) expect(m.states as readonly string[]).toContain(to);
      }
    });
  }

  it("deployment: a random walk of attempted moves never leaves a terminal state and reaches one only by a legal move", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...deploymentStates), { maxLength: 40 }), (attempts) => {
        let s: DeploymentState = "queued";
        for (const to of attempts) {
          const before = s;
          try {
            s = transition("deployment", deploymentTransitions, s, to);
          } catch {
            expect(before === to || deploymentTransitions[before].includes(to)).toBe(false);
          }
          if (isTerminalDeploymentState(before)) expect(s).toBe(before);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("deployment: every active state can fail, and only switching cannot be cancelled", () => {
    for (const s of deploymentStates) {
      if (isTerminalDeploymentState(s)) {
        expect(deploymentTransitions[s]).toEqual([]);
        continue;
      }
      expect(deploymentTransitions[s]).toContain("failed");
      expect(deploymentTransitions[s].includes("cancelled")).toBe(s !== "switching");
    }
  });
});

const base: EnvironmentFacts = { desired: "running", observed: null, deploying: false, serving: false, lastDeploymentFailed: false };

describe("environmentState", () => {
  it.each<[string, Partial<EnvironmentFacts>, string]>([
    ["never deployed", {}, "not_deployed"],
    ["first deployment running", { deploying: true }, "deploying"],
    ["first deployment failed, nothing serves", { lastDeploymentFailed: true }, "failed"],
    ["serving, host has not reported yet", { serving: true }, "running"],
    ["serving, stop asked, host has not reported yet", { serving: true, desired: "stopped" }, "stopped"],
    ["serving, host says asleep", { serving: true, observed: "sleeping" }, "sleeping"],
    ["serving, stop asked but host still runs it", { serving: true, desired: "stopped", observed: "running" }, "running"],
    ["a redeploy while serving", { serving: true, observed: "running", deploying: true }, "deploying"],
    ["a failed redeploy while serving keeps what the host says", { serving: true, observed: "running", lastDeploymentFailed: true }, "running"],
  ])("%s", (_name, facts, want) => {
    expect(environmentState({ ...base, ...facts })).toBe(want);
  });

  it("the API shows unknown for a deployed environment whose host is offline, never for one without containers or in a deployment", () => {
    const offline = { placed: true, hostOnline: false };
    expect(environmentApiState({ ...base, serving: true, observed: "running", ...offline })).toBe("unknown");
    expect(environmentApiState({ ...base, serving: true, observed: "sleeping", ...offline })).toBe("unknown");
    expect(environmentApiState({ ...base, ...offline })).toBe("not_deployed");
    expect(environmentApiState({ ...base, deploying: true, ...offline })).toBe("deploying");
    expect(environmentApiState({ ...base, serving: true, observed: "running", placed: true, hostOnline: true })).toBe("running");
  });

  // What can happen to an environment, each allowed only where the platform allows it.
  type Event = "deploy" | "succeed" | "fail" | "cancel" | "stop" | "start" | "sleep" | "wake";
  function apply(f: EnvironmentFacts, e: Event): EnvironmentFacts {
    switch (e) {
      case "deploy":
        return f.deploying ? f : { ...f, deploying: true, desired: "running" };
      case "succeed":
        return f.deploying ? { ...f, deploying: false, serving: true, observed: "running", lastDeploymentFailed: false } : f;
      case "fail":
        return f.deploying ? { ...f, deploying: false, lastDeploymentFailed: true } : f;
      case "cancel":
        return f.deploying ? { ...f, deploying: false, lastDeploymentFailed: false } : f;
      case "stop":
        return f.serving && !f.deploying ? { ...f, desired: "stopped", observed: "stopped" } : f;
      case "start":
        return f.serving && !f.deploying ? { ...f, desired: "running", observed: "running" } : f;
      case "sleep":
        return f.serving && !f.deploying && f.observed === "running" ? { ...f, observed: "sleeping" } : f;
      case "wake":
        return f.serving && !f.deploying && f.observed === "sleeping" ? { ...f, observed: "running" } : f;
    }
  }

  it("every state change caused by a legal event is a legal environment transition", () => {
    const events = fc.array(fc.constantFrom<Event>("deploy", "succeed", "fail", "cancel", "stop", "start", "sleep", "wake"), { maxLength: 60 });
    fc.assert(
      fc.property(events, (es) => {
        let facts = base;
        let state = environmentState(facts);
        for (const e of es) {
          facts = apply(facts, e);
          const next = environmentState(facts);
          expect(() => transition("environment", environmentTransitions, state, next)).not.toThrow();
          state = next;
        }
      }),
      { numRuns: 2000 },
    );
  });
});
