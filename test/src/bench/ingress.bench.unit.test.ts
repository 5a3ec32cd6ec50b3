import { describe, expect, it } from "vitest";
import { bareConfig } from "./ingress.bench.js";

// The shape of the agent's rendered haproxy.cfg (apps/agent/src/ingress/haproxy.config.ts) with a request log.
const AGENT_CFG = `# Rendered by the Slipway agent; changes are overwritten.
global
  master-worker
  stats socket /s/agent/haproxy/admin.sock mode 600 level admin expose-fd listeners
  stats timeout 30s
  server-state-file /s/agent/haproxy/server-state
  close-spread-time infinite
  hard-stop-after 300s
  log 127.0.0.1:41234 len 4096 format raw local0 info

defaults
  mode http
  log global
  option dontlognull
  log-format "slipway1 %b %s %ST %Ta"
  option forwardfor
  http-reuse safe
  timeout http-keep-alive 10s
  load-server-state-from-file global

frontend http
  bind 127.0.0.1:8080
  use_backend %[req.hdr(host),lower,word(1,:),map(/s/agent/haproxy/hosts.map)]
  default_backend slipway_no_environment

backend slipway_no_environment
  http-request set-var(txn.slw_keep) be_name,map_str_int(/s/agent/haproxy/log-sample.map,1000)
  http-request set-log-level silent if { rand(1000),sub(txn.slw_keep) -m int ge 0 }
  http-request return status 404 content-type text/plain string "no environment is served at this host name"

backend shop--test
  balance roundrobin
  http-request set-var(txn.slw_keep) be_name,map_str_int(/s/agent/haproxy/log-sample.map,1000)
  http-request set-log-level silent if { rand(1000),sub(txn.slw_keep) -m int ge 0 }
  server s1 unassigned.invalid:1 init-addr last,127.0.0.1 disabled
`;

describe("the bare HAProxy's config", () => {
  const { cfg, diff } = bareConfig(AGENT_CFG, "/s/agent/haproxy", "/tmp/bare", 8080, 9090);

  it("has no request log (nor its sampling rules) and nothing else removed", () => {
    expect(cfg).not.toMatch(/^\s*log/m);
    expect(cfg).not.toContain("dontlognull");
    expect(cfg).not.toContain("slw_keep");
    const kept = (text: string) => text.split("\n").filter((l) => !/^\s*(log|log-format|option dontlognull)\b/.test(l.trim()) && !l.includes("txn.slw_keep"));
    expect(cfg.split("\n")).toHaveLength(kept(AGENT_CFG).length);
    expect(cfg).toContain("  http-reuse safe\n");
    expect(cfg).toContain("  server s1 unassigned.invalid:1 init-addr last,127.0.0.1 disabled");
  });

  it("uses its own port, sockets, host map and server state, and lists every difference", () => {
    expect(cfg).toContain("  bind 127.0.0.1:9090\n");
    expect(cfg).toContain("map(/tmp/bare/hosts.map)");
    expect(cfg).toContain("stats socket /tmp/bare/admin.sock ");
    expect(cfg).toContain("server-state-file /tmp/bare/server-state\n");
    expect(cfg).not.toContain("/s/agent");
    expect(diff.filter((d) => d.startsWith("- ")).slice(0, 4)).toEqual(["- log 127.0.0.1:41234 len 4096 format raw local0 info", "- log global", "- option dontlognull", '- log-format "slipway1 %b %s %ST %Ta"']);
    expect(diff.filter((d) => d.startsWith("- ")).slice(4)).toHaveLength(4);
    expect(diff.filter((d) => d.startsWith("~ "))).toHaveLength(4);
  });
});
