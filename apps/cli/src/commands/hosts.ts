// `slipway hosts`: the fleet.
import { formatLabels } from "@slipway/core";
import { ago, table } from "../format.js";
import { print, type Command } from "./command.js";

export const hostsCommands: Command[] = [
  {
    name: "hosts",
    args: [],
    summary: "The fleet: hosts with state, labels, load and environments (admins)",
    async run(ctx) {
      const hosts = await ctx.client().call<any[]>("GET", "/hosts");
      print(ctx, hosts, () =>
        table([
          ["ID", "NAME", "STATE", "LABELS", "CPU", "ENVIRONMENTS", "LAST HEARTBEAT"],
          ...hosts.map((h) => [h.id, h.name, h.state, formatLabels(h.labels ?? {}) || "-", `${Math.round((h.load?.cpu ?? 0) * 100)} %`, String(h.environments.length), h.lastHeartbeatAt ? ago(h.lastHeartbeatAt) : "never"]),
        ]),
      );
      return 0;
    },
  },
];
