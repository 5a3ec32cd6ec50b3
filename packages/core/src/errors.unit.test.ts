import { describe, expect, it } from "vitest";
import { SlipwayError, StepFailure, errorCatalogue, fromFailure, toFailure } from "./errors.js";

describe("error catalogue", () => {
  it.each(errorCatalogue.map((E) => [E.name, E] as const))("%s has a stable code, an HTTP status and keeps its cause", (_name, E) => {
    const cause = new Error("root");
    const e = new E("message", { cause, details: { field: "x" } });
    expect(e).toBeInstanceOf(SlipwayError);
    expect(e.name).toBe(E.name);
    expect(e.code).toMatch(/^[a-z_]+$/);
    expect(e.httpStatus).toBeGreaterThanOrEqual(400);
    expect(e.cause).toBe(cause);
    expect(e.details).toEqual({ field: "x" });
  });
  it("codes are unique", () => {
    const codes = errorCatalogue.map((E) => new E("m").code);
    expect(new Set(codes).size).toBe(codes.length);
  });
  it("round-trips failures as data, keeping retryability", () => {
    const f = toFailure(new StepFailure("image_not_found", "no such image", false, { image: "x" }));
    expect(f).toEqual({ type: "image_not_found", message: "no such image", retryable: false, details: { image: "x" } });
    const back = fromFailure(f);
    expect(back.type).toBe("image_not_found");
    expect(back.retryable).toBe(false);
    expect(toFailure(new Error("boom"))).toEqual({ type: "internal", message: "boom", retryable: true });
  });
});
