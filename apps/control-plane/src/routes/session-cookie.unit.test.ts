import { describe, expect, it } from "vitest";
import { csrfMatches, csrfTokenOf, isSessionSecret } from "../services/session.service.js";
import { crossSiteRefusal, sessionCookieValues } from "./session-cookie.js";

describe("the session cookie's rules", () => {
  it("reads the session cookie among others, and every copy of it", () => {
    expect(sessionCookieValues(undefined)).toEqual([]);
    expect(sessionCookieValues("theme=dark")).toEqual([]);
    expect(sessionCookieValues("theme=dark; slipway_session=abc; x=1")).toEqual(["abc"]);
    expect(sessionCookieValues('slipway_session="abc"')).toEqual(["abc"]);
    expect(sessionCookieValues("slipway_session=a; slipway_session=b")).toEqual(["a", "b"]);
    expect(sessionCookieValues("xslipway_session=a; slipway_sessionx=b")).toEqual([]);
  });

  it("refuses what a browser sends from another site, and lets this origin and non-browsers through", () => {
    const host = "slipway.example.test";
    const cases: Array<[Record<string, string>, { publicUrl?: string }, boolean]> = [
      // headers, options, refused
      [{ host }, {}, false],
      [{ host, origin: `https://${host}` }, {}, false],
      [{ host: `${host}:443`, origin: `https://${host}` }, {}, false],
      [{ host: `${host}:8443`, origin: `https://${host}:8443` }, {}, false],
      [{ host: `${host}:8443`, origin: `https://${host}` }, {}, true],
      [{ host, origin: "https://evil.example" }, {}, true],
      [{ host, origin: `https://app-test.${host}` }, {}, true],
      [{ host, origin: "null" }, {}, true],
      [{ host, origin: "file://" }, {}, true],
      [{ host, origin: "not a url" }, {}, true],
      [{ host: "127.0.0.1:7700", "x-forwarded-host": host, origin: `https://${host}` }, {}, false],
      [{ host: "127.0.0.1:7700", origin: `https://${host}` }, { publicUrl: `https://${host}/` }, false],
      [{ host: "127.0.0.1:7700", origin: `http://${host}` }, { publicUrl: `https://${host}/` }, true],
      [{ host, "sec-fetch-site": "same-origin" }, {}, false],
      [{ host, "sec-fetch-site": "none" }, {}, false],
      [{ host, "sec-fetch-site": "same-site" }, {}, true],
      [{ host, "sec-fetch-site": "cross-site" }, {}, true],
      [{ host, "sec-fetch-site": "same-site", origin: `https://${host}` }, {}, true],
      [{ host, upgrade: "websocket" }, {}, true],
      [{ host, upgrade: "websocket", origin: `https://${host}` }, {}, false],
      [{ host, upgrade: "websocket", origin: "https://evil.example" }, {}, true],
    ];
    for (const [headers, opts, refused] of cases) {
      expect({ headers, opts, refused: crossSiteRefusal(headers, opts) !== undefined }).toEqual({ headers, opts, refused });
    }
  });

  it("derives a CSRF token per session and compares it whole", () => {
    const a = "A".repeat(43);
    const b = "B".repeat(43);
    expect(isSessionSecret(a)).toBe(true);
    expect(isSessionSecret("A".repeat(42))).toBe(false);
    expect(isSessionSecret(`${"A".repeat(42)}=`)).toBe(false);
    expect(csrfTokenOf(a)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(csrfTokenOf(a)).not.toBe(csrfTokenOf(b));
    expect(csrfTokenOf(a)).toBe(csrfTokenOf(a));
    expect(csrfMatches(a, csrfTokenOf(a))).toBe(true);
    for (const wrong of [undefined, "", csrfTokenOf(b), csrfTokenOf(a).slice(1), `${csrfTokenOf(a)}x`, a]) expect(csrfMatches(a, wrong)).toBe(false);
  });
});
