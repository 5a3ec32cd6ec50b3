import { describe, expect, it } from "vitest";
import { findRoute, matchPath, safeNext } from "./match";

describe("matchPath", () => {
  it.each([
    ["/", "/", {}],
    ["/apps/:app", "/apps/shop", { app: "shop" }],
    ["/apps/:app", "/apps/shop/", { app: "shop" }],
    ["/apps/:app", "/apps/a%20b", { app: "a b" }],
    ["/deployments/:id", "/deployments/0198-abc", { id: "0198-abc" }],
  ])("%s matches %s", (pattern, path, params) => {
    expect(matchPath(pattern, path)).toEqual(params);
  });

  it.each([
    ["/", "/apps"],
    ["/apps/:app", "/apps"],
    ["/apps/:app", "/apps/shop/settings"],
    ["/apps/:app", "/apps/%E0%A4%A"],
    ["/deployments/:id", "/apps/x"],
  ])("%s does not match %s", (pattern, path) => {
    expect(matchPath(pattern, path)).toBeUndefined();
  });

  it("takes the first route that matches", () => {
    const routes = [{ path: "/apps/new" }, { path: "/apps/:app" }];
    expect(findRoute(routes, "/apps/new")?.route).toBe(routes[0]);
    expect(findRoute(routes, "/apps/shop")).toEqual({ route: routes[1], params: { app: "shop" } });
    expect(findRoute(routes, "/nope")).toBeUndefined();
  });
});

describe("safeNext", () => {
  it.each([
    [null, "/"],
    ["", "/"],
    ["/apps/shop?x=1", "/apps/shop?x=1"],
    ["//evil.example/", "/"],
    ["/\\evil.example", "/"],
    ["https://evil.example/", "/"],
    ["javascript:alert(1)", "/"],
  ])("%s → %s", (next, to) => {
    expect(safeNext(next)).toBe(to);
  });
});
