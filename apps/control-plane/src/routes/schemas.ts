import { NAME_PATTERN, ENV_NAME_PATTERN, BRANCH_PATTERN } from "@slipway/core";

export const errorSchema = {
  type: "object",
  properties: {
    error: {
      type: "object",
      properties: { code: { type: "string" }, message: { type: "string" }, details: {} },
      required: ["code", "message"],
    },
  },
} as const;

export const appParams = {
  type: "object",
  properties: { app: { type: "string", pattern: NAME_PATTERN } },
  required: ["app"],
} as const;
export const envParams = {
  type: "object",
  properties: { app: { type: "string", pattern: NAME_PATTERN }, env: { type: "string", pattern: ENV_NAME_PATTERN } },
  required: ["app", "env"],
} as const;
export const idParams = {
  type: "object",
  properties: { id: { type: "string", format: "uuid" } },
  required: ["id"],
} as const;

export const branchSchema = { type: "string", pattern: BRANCH_PATTERN } as const;
