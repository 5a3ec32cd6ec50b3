/**
 * NATS addresses as configured: one URL, or a cluster's nodes as a comma-separated
 * list (`nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4222`). The list is
 * kept as one string wherever it travels (configuration, the address handed to agents
 * at registration) and split only where a connection is made: nats.js takes the nodes
 * as `servers`, connects to any one that answers and moves to another when it dies.
 */
export function natsServers(list: string): string[] {
  return list
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Checks a configured list: every entry a URL with one of `protocols`, none twice.
 * Returns the list normalised (trimmed, comma-joined) or the reason it is refused.
 */
export function parseNatsServers(raw: string, protocols: string[]): { list: string } | { error: string } {
  const servers = natsServers(raw);
  if (servers.length === 0) return { error: "names no server" };
  for (const s of servers) {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      return { error: `'${s.replace(/\/\/[^@]*@/, "//***@")}' is not a URL` };
    }
    if (!protocols.includes(u.protocol)) return { error: `'${u.host}': protocol must be one of ${protocols.join(", ")}` };
    if (!u.hostname) return { error: `'${s}' names no host` };
  }
  if (new Set(servers).size !== servers.length) return { error: "names a server twice" };
  return { list: servers.join(",") };
}
