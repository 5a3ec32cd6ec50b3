export * from "./errors.js";
export * from "./states.js";
export * from "./names.js";
export * from "./settings.js";
export * from "./status.js";
export * from "./logging.js";
export * from "./variables.js";
export * from "./retention.js";
