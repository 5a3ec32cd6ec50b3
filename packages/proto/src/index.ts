export * from "./gen/slipway/v1/agent.js";
export { JobMessage } from "./gen/slipway/v1/jobs.js";
