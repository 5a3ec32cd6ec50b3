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

/**
 * The first value in `value` that passed its schema yet cannot be taken as is, with its path
 * (`"limit"`, `"settings.webPort"`): a number that is not finite (ajv coerces the query string
 * "1e309" or "Infinity", and JSON.parse reads 1e309, to Infinity, then skips minimum/maximum for
 * it: its number keywords apply to finite numbers only), or a string or key holding U+0000
 * (PostgreSQL's text and jsonb cannot store it: the query would fail with a 500). Iterative: a
 * body nested thousands of levels deep does not overflow the stack.
 */
export function unacceptableValueAt(value: unknown): { at: string; problem: string } | undefined {
  const stack: Array<[unknown, string]> = [[value, ""]];
  while (stack.length > 0) {
    const [v, at] = stack.pop()!;
    const here = at || "value";
    if (typeof v === "number" && !Number.isFinite(v)) return { at: here, problem: "must be a finite number" };
    if (typeof v === "string" && v.includes("\u0000")) return { at: here, problem: "must not contain U+0000" };
    if (Array.isArray(v)) v.forEach((item, i) => stack.push([item, at ? `${at}.${i}` : String(i)]));
    else if (v !== null && typeof v === "object" && isPlain(v)) {
      for (const [k, item] of Object.entries(v)) {
        if (k.includes("\u0000")) return { at: here, problem: "must not have a key containing U+0000" };
        stack.push([item, at ? `${at}.${k}` : k]);
      }
    }
  }
  return undefined;
}

/** A parsed value's object (fastify's params and query objects have a null-prototype prototype), not a stream or a buffer. */
function isPlain(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as object | null;
  return proto === null || proto === Object.prototype || Object.getPrototypeOf(proto) === null;
}
