export { startAgent, type RunningAgent, type AgentIdentity } from "./agent.js";
export { loadConfig, type AgentConfig } from "./config.js";
