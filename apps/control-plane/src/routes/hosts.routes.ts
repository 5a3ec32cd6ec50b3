import type { FastifyPluginAsync } from "fastify";
import type { HostService } from "../services/host.service.js";
import type { DrainService } from "../services/drain.service.js";
import { idParams } from "./schemas.js";

export const hostRoutes: FastifyPluginAsync<{ hosts: HostService; drains?: DrainService }> = async (app, { hosts, drains }) => {
  app.get("/hosts", { schema: { summary: "List hosts" } }, async (req) => hosts.list(req.principal));
  app.get<{ Params: { id: string } }>("/hosts/:id", { schema: { params: idParams } }, async (req) => hosts.get(req.principal, req.params.id));
  app.post<{ Params: { id: string } }>("/hosts/:id/cordon", { schema: { params: idParams } }, async (req, reply) =>
    reply.status(202).send(await hosts.setAdminState(req.principal, req.params.id, "cordoned")),
  );
  app.post<{ Params: { id: string } }>("/hosts/:id/uncordon", { schema: { params: idParams } }, async (req, reply) =>
    reply.status(202).send(await hosts.setAdminState(req.principal, req.params.id, "active")),
  );
  app.post<{ Params: { id: string } }>("/hosts/:id/revoke", { schema: { summary: "Revoke a host's credential: it is cut off at once", params: idParams } }, async (req, reply) =>
    reply.status(202).send(await hosts.setAdminState(req.principal, req.params.id, "revoked")),
  );
  if (drains) {
    app.post<{ Params: { id: string } }>("/hosts/:id/drain", { schema: { summary: "Move every environment of the host elsewhere (zero-downtime deployments)", params: idParams } }, async (req, reply) =>
      reply.status(202).send(await drains.drain(req.principal, req.params.id)),
    );
    app.get<{ Params: { id: string } }>("/hosts/:id/drain", { schema: { summary: "Progress of a drain", params: idParams } }, async (req) => drains.progress(req.principal, req.params.id));
  }
};
