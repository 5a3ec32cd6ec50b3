import { describe, expect, it } from "vitest";
import {
  DEFAULT_BACKEND, haproxyPaths, isValidDigest, realmOf, MAX_HSTS_SECONDS, renderHaproxyConfig, renderHostMap, renderHttpsMap, slotIndex, slotName, validateBackend,
  type HaproxyConfigSpec,
} from "./haproxy.config.js";
import { parseServersState, withoutServerRows } from "./haproxy-runtime.js";

const paths = haproxyPaths("/var/lib/slipway/ingress");
// sha256("Basic " + base64("bob:s3cret")), as the control plane sends it (lowercase).
const digest = "4576f6431f4b3746cdbcdaa55844ffc7ce88979e2b457b723fabb2389df0d8ea";

function spec(over: Partial<HaproxyConfigSpec> = {}): HaproxyConfigSpec {
  return {
    paths,
    bindAddress: "127.0.0.1",
    httpPort: 8080,
    backends: [
      { name: "shop--test", slots: 2, basicAuth: { username: "bob", digest } },
      { name: "blog--live", slots: 3 },
    ],
    ...over,
  };
}

describe("renderHaproxyConfig", () => {
  const cfg = renderHaproxyConfig(spec());

  it("runs master-worker with an admin socket that hands listeners over and a server state file", () => {
    expect(cfg).toContain("  master-worker\n");
    expect(cfg).toContain("  stats socket /var/lib/slipway/ingress/admin.sock mode 600 level admin expose-fd listeners\n");
    expect(cfg).toContain("  server-state-file /var/lib/slipway/ingress/server-state\n");
    expect(cfg).toContain("  load-server-state-from-file global\n");
  });

  it("has retrying, reusing HTTP defaults", () => {
    for (const line of ["mode http", "option redispatch", "retries 3", "retry-on conn-failure empty-response response-timeout", "http-reuse safe", "option forwardfor", "timeout connect 5s"]) {
      expect(cfg).toContain(`  ${line}\n`);
    }
  });

  it("routes by Host through the map and answers 404 for unknown hosts", () => {
    expect(cfg).toContain("  bind 127.0.0.1:8080\n");
    expect(cfg).toContain("  use_backend %[req.hdr(host),lower,word(1,:),map(/var/lib/slipway/ingress/hosts.map)]\n");
    expect(cfg).toContain(`  default_backend ${DEFAULT_BACKEND}\n`);
    expect(cfg).toContain('http-request return status 404 content-type text/plain string "no environment is served at this host name"');
  });

  it("closes old-worker connections after a response instead of while idle", () => {
    expect(cfg).toContain("  close-spread-time infinite\n");
    expect(cfg).toContain("  http-after-response set-header Connection close if { stopping }\n");
    expect(cfg).toContain("  hard-stop-after 300s\n");
  });

  it("renders one backend per environment with disabled placeholder slots, sorted by name", () => {
    expect(cfg.indexOf("backend blog--live")).toBeLessThan(cfg.indexOf("backend shop--test"));
    const blog = cfg.slice(cfg.indexOf("backend blog--live"), cfg.indexOf("backend shop--test"));
    expect(blog).toBe(
      "backend blog--live\n  balance roundrobin\n  http-request set-header X-Slipway-Backend blog--live\n" +
        "  server s1 unassigned.invalid:1 init-addr last,127.0.0.1 disabled\n  server s2 unassigned.invalid:1 init-addr last,127.0.0.1 disabled\n  server s3 unassigned.invalid:1 init-addr last,127.0.0.1 disabled\n\n",
    );
  });

  it("protects a backend with basic auth by the uppercase digest of the Authorization header", () => {
    expect(cfg).toContain(`  http-request auth realm "shop-test" unless { req.fhdr(authorization),sha2(256),hex -m str ${digest.toUpperCase()} }\n`);
    expect(cfg.slice(cfg.indexOf("backend blog--live"), cfg.indexOf("backend shop--test"))).not.toContain("auth");
    expect(cfg).not.toContain("userlist");
  });

  it("adds the waker as every backend's backup server when it has a port", () => {
    expect(cfg).not.toContain("waker");
    const withWaker = renderHaproxyConfig(spec({ wakerPort: 40123 }));
    expect(withWaker.match(/  server waker 127\.0\.0\.1:40123 backup\n/g)).toHaveLength(2);
    expect(() => renderHaproxyConfig(spec({ wakerPort: 0 }))).toThrow(/waker port/);
  });

  it("is deterministic", () => {
    expect(renderHaproxyConfig(spec({ backends: [...spec().backends].reverse() }))).toBe(cfg);
  });

  it("rejects what it cannot render safely", () => {
    expect(() => renderHaproxyConfig(spec({ httpPort: 0 }))).toThrow(/port/);
    expect(() => renderHaproxyConfig(spec({ bindAddress: "0.0.0.0 ssl" }))).toThrow(/bind address/);
    expect(() => renderHaproxyConfig(spec({ backends: [{ name: "Bad Name", slots: 1 }] }))).toThrow(/backend name/);
    expect(() => renderHaproxyConfig(spec({ backends: [{ name: DEFAULT_BACKEND, slots: 1 }] }))).toThrow(/backend name/);
    expect(() => renderHaproxyConfig(spec({ backends: [{ name: "a", slots: 0 }] }))).toThrow(/slots/);
    expect(() => renderHaproxyConfig(spec({ backends: [{ name: "a", slots: 1 }, { name: "a", slots: 1 }] }))).toThrow(/duplicate/);
    expect(() => renderHaproxyConfig(spec({ backends: [{ name: "a", slots: 1, basicAuth: { username: "x", digest: "abc" } }] }))).toThrow(/digest/);
    expect(() => haproxyPaths("/tmp/with space")).toThrow(/state dir/);
    expect(() => haproxyPaths("/tmp/" + "x".repeat(120))).toThrow(/too long/);
  });
});

describe("renderHostMap", () => {
  it("writes sorted host -> backend lines", () => {
    expect(renderHostMap({ "b.example.com": "shop--live", "a.localhost": "shop--test" })).toBe(
      "# Rendered by the Slipway agent: host name -> backend.\na.localhost shop--test\nb.example.com shop--live\n",
    );
  });
  it("rejects hosts that are not lowercase DNS names", () => {
    expect(() => renderHostMap({ "Shop.example.com": "a" })).toThrow(/host name/);
    expect(() => renderHostMap({ "a.example.com:80": "a" })).toThrow(/host name/);
    expect(() => renderHostMap({ "a b": "a" })).toThrow(/host name/);
  });
});

describe("helpers", () => {
  it("names slots positionally", () => {
    expect(slotName(3)).toBe("s3");
    expect(slotIndex("s12")).toBe(12);
    expect(slotIndex("s0")).toBeUndefined();
    expect(slotIndex("BACKEND")).toBeUndefined();
  });
  it("drops the waker's rows from a server state dump, so a reload takes its port from the config", () => {
    const dump = [
      "1",
      "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord",
      "3 a--b 1 s1 127.0.0.1 2 0 1 1 5 1 0 0 0 0 0 0 - 4001 -",
      "3 a--b 21 waker 127.0.0.1 2 0 1 1 5 1 0 0 0 0 0 0 - 40123 -",
      "",
    ].join("\n");
    const kept = parseServersState(withoutServerRows(dump, "waker"));
    expect(kept.map((s) => `${s.backend}/${s.server}:${s.port}`)).toEqual(["a--b/s1:4001"]);
    expect(withoutServerRows(dump, "waker").startsWith("1\n# be_id")).toBe(true);
  });

  it("checks digests and derives realms", () => {
    expect(isValidDigest(digest)).toBe(true);
    expect(isValidDigest(digest.toUpperCase())).toBe(true);
    expect(isValidDigest("hunter2")).toBe(false);
    expect(realmOf("shop--qa")).toBe("shop-qa");
  });

  it("shows the realm it is given for a backend named after an environment's id, and refuses one that could break out of its quotes", () => {
    const id = "env-0f8e2a4c1b3d4e5f8a9b0c1d2e3f4a5b";
    const named = renderHaproxyConfig(spec({ backends: [{ name: id, slots: 1, basicAuth: { username: "bob", digest }, realm: "shop-api-live" }] }));
    expect(named).toContain(`backend ${id}\n`);
    expect(named).toContain(`  http-request auth realm "shop-api-live" unless`);
    const structure = { version: 1 as const, backends: {} };
    expect(validateBackend({ name: id, realm: "shop-api-live", hostnames: ["shop-api-live.localhost"], maxServers: 2 }, structure)).toMatchObject({ realm: "shop-api-live" });
    for (const realm of ['x" unless { always_true }', "a b", "", "x\ny"]) {
      expect(() => validateBackend({ name: id, realm, hostnames: [], maxServers: 2 }, structure), realm).toThrow(/invalid basic auth realm/);
      expect(() => renderHaproxyConfig(spec({ backends: [{ name: id, slots: 1, basicAuth: { username: "bob", digest }, realm }] })), realm).toThrow(/invalid basic auth realm/);
    }
  });
});

describe("HTTPS and ACME HTTP-01 in the rendered config", () => {
  const thumbprint = "Tq5aPqZ1x7lIF0VYlkqcLwBsyZ8eW3pDf6Y2jQ9r0sA";

  it("renders neither without an HTTPS port and a thumbprint (nothing changes for existing hosts)", () => {
    const cfg = renderHaproxyConfig(spec());
    expect(cfg).not.toContain("ssl crt-list");
    expect(cfg).not.toContain("acme-challenge");
    expect(cfg).not.toContain("frontend https");
  });

  it("binds HTTPS with the crt-list and ALPN, routing by the same host map as HTTP", () => {
    const cfg = renderHaproxyConfig(spec({ httpsPort: 8443 }));
    const https = cfg.slice(cfg.indexOf("frontend https"), cfg.indexOf(`\nbackend ${DEFAULT_BACKEND}\n`));
    expect(https).toContain("  bind 127.0.0.1:8443 ssl crt-list /var/lib/slipway/ingress/crt-list.txt alpn h2,http/1.1\n");
    expect(https).toContain("  use_backend %[req.hdr(host),lower,word(1,:),map(/var/lib/slipway/ingress/hosts.map)]\n");
    expect(https).toContain(`  default_backend ${DEFAULT_BACKEND}\n`);
    expect(https).toContain("  http-request set-header X-Forwarded-Proto https\n");
    expect(paths.defaultCert).toBe("/var/lib/slipway/ingress/certs/_default.pem");
    expect(() => renderHaproxyConfig(spec({ httpsPort: 8080 }))).toThrow(/HTTPS port/);
    expect(() => renderHaproxyConfig(spec({ httpsPort: 70000 }))).toThrow(/HTTPS port/);
  });

  it("answers the challenge path on the HTTP frontend before host routing", () => {
    const cfg = renderHaproxyConfig(spec({ acmeThumbprint: thumbprint }));
    const rule = `  http-request return status 200 content-type text/plain lf-string "%[path,field(4,/)].${thumbprint}" if { path_reg ^/\\.well-known/acme-challenge/[A-Za-z0-9_-]+$ }\n`;
    expect(cfg).toContain(rule);
    const http = cfg.slice(cfg.indexOf("frontend http\n"));
    expect(http.indexOf(rule)).toBeLessThan(http.indexOf("use_backend"));
    // Only HTTP: the CA validates HTTP-01 on port 80.
    expect(cfg.split(rule).length).toBe(2);
  });

  it("redirects HTTP to HTTPS (308, same host without port, same path and query) for the HTTPS map's host names, after the challenge rule; HSTS from the map on HTTPS only", () => {
    const cfg = renderHaproxyConfig(spec({ acmeThumbprint: thumbprint, httpsPort: 8443 }));
    const http = cfg.slice(cfg.indexOf("frontend http\n"), cfg.indexOf("frontend https\n"));
    const redirect = "  http-request redirect location https://%[req.hdr(host),lower,word(1,:)]%[pathq] code 308 if { req.hdr(host),lower,word(1,:),map(/var/lib/slipway/ingress/https.map) -m found }\n";
    expect(http).toContain(redirect);
    expect(http.indexOf("acme-challenge")).toBeLessThan(http.indexOf(redirect));
    expect(http.indexOf(redirect)).toBeLessThan(http.indexOf("use_backend"));
    const https = cfg.slice(cfg.indexOf("frontend https\n"));
    expect(https).not.toContain("redirect");
    expect(https).toContain('  http-after-response set-header Strict-Transport-Security "max-age=%[var(txn.slw_hsts)]" if { var(txn.slw_hsts) -m int gt 0 }\n');
    expect(http).not.toContain("Strict-Transport-Security");
    // Without an HTTPS port nothing is redirected.
    expect(renderHaproxyConfig(spec({}))).not.toContain("redirect");
  });

  it("renders the HTTPS map sorted, and refuses a bad host name or max-age", () => {
    expect(renderHttpsMap({ "b.example.com": 0, "a.example.com": 31536000 })).toBe("# Rendered by the Slipway agent: host name redirected to HTTPS -> HSTS max-age (0 = none).\na.example.com 31536000\nb.example.com 0\n");
    expect(() => renderHttpsMap({ "a b": 0 })).toThrow(/host name/);
    expect(() => renderHttpsMap({ "a.example.com": -1 })).toThrow(/max-age/);
    expect(() => renderHttpsMap({ "a.example.com": MAX_HSTS_SECONDS + 1 })).toThrow(/max-age/);
  });

  it("refuses a thumbprint that could break out of the rule", () => {
    for (const bad of ["short", `${thumbprint.slice(0, 42)}"`, `${thumbprint.slice(0, 40)} if`, thumbprint + "A"]) {
      expect(() => renderHaproxyConfig(spec({ acmeThumbprint: bad }))).toThrow(/thumbprint/);
    }
  });
});
