import type { FastifyPluginAsync } from "fastify";
import type { HostService } from "../services/host.service.js";
import { idParams } from "./schemas.js";

export const hostRoutes: FastifyPluginAsync<{ hosts: HostService }> = async (app, { hosts }) => {
  app.get("/hosts", { schema: { summary: "List hosts" } }, async (req) => hosts.list(req.principal));
  app.get<{ Params: { id: string } }>("/hosts/:id", { schema: { params: idParams } }, async (req) => hosts.get(req.principal, req.params.id));
  app.post<{ Params: { id: string } }>("/hosts/:id/cordon", { schema: { params: idParams } }, async (req, reply) =>
    reply.status(202).send(await hosts.setAdminState(req.principal, req.params.id, "cordoned")),
  );
  app.post<{ Params: { id: string } }>("/hosts/:id/uncordon", { schema: { params: idParams } }, async (req, reply) =>
    reply.status(202).send(await hosts.setAdminState(req.principal, req.params.id, "active")),
  );
};
