// The rendered configuration checked by the installed HAProxy (`haproxy -c`): an
// integration test, since it runs the real binary; the rendering itself is
// unit-tested in haproxy.config.unit.test.ts.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { haproxyPaths, renderHaproxyConfig, renderHostMap } from "./haproxy.config.js";

// sha256("Basic " + base64("bob:s3cret")), as the control plane sends it (lowercase).
const digest = "4576f6431f4b3746cdbcdaa55844ffc7ce88979e2b457b723fabb2389df0d8ea";

describe("rendered config is accepted by haproxy -c", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "slipway-cfg-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("validates", () => {
    const p = haproxyPaths(dir);
    writeFileSync(p.hostsMap, renderHostMap({ "shop-test.localhost": "shop--test" }));
    const backends = [
      { name: "shop--test", slots: 2, basicAuth: { username: "bob", digest } },
      { name: "blog--live", slots: 3 },
    ];
    writeFileSync(p.config, renderHaproxyConfig({ paths: p, bindAddress: "127.0.0.1", httpPort: 8080, backends, wakerPort: 40123 }));
    expect(() => execFileSync("/usr/sbin/haproxy", ["-c", "-q", "-f", p.config], { stdio: "pipe" })).not.toThrow();
  });
});
