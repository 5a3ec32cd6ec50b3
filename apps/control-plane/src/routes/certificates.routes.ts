import type { FastifyPluginAsync } from "fastify";
import { ForbiddenError } from "@slipway/core";
import { requireAdmin } from "../services/auth.service.js";
import type { CertificateService } from "../tls/certificate.service.js";
import { idParams } from "./schemas.js";

/** A certificate as the API shows it; the serializer drops anything else, so no key can slip out. */
const certificateView = {
  type: "object",
  properties: {
    id: { type: "string" },
    hostnames: { type: "array", items: { type: "string" } },
    source: { type: "string", enum: ["acme", "uploaded"] },
    serial: { type: ["string", "null"] },
    notBefore: { type: ["string", "null"], format: "date-time" },
    notAfter: { type: ["string", "null"], format: "date-time" },
    status: { type: "string", enum: ["pending", "valid", "failed", "expired"] },
    lastError: { type: ["string", "null"] },
    uploadedBy: { type: ["string", "null"], description: "the name of the token that uploaded it" },
    updatedAt: { type: "string", format: "date-time" },
  },
  required: ["id", "hostnames", "source", "serial", "notBefore", "notAfter", "status", "lastError", "uploadedBy", "updatedAt"],
} as const;

const uploadAnswer = {
  type: "object",
  properties: {
    certificate: certificateView,
    replaced: { type: "boolean", description: "true when it replaced the certificate uploaded before for the same set of names" },
    replacedSerial: { type: ["string", "null"] },
    jobsQueued: { type: ["integer", "null"], description: "routes jobs queued so every host serving a covered name gets it" },
  },
  required: ["certificate", "replaced", "replacedSerial", "jobsQueued"],
} as const;

/** Certificates an admin uploads (issue 15), and every stored certificate (uploaded and ACME). */
export const certificateRoutes: FastifyPluginAsync<{ certificates: CertificateService }> = async (app, { certificates }) => {
  app.post<{ Body: { certificate: string; privateKey: string } }>(
    "/certificates",
    {
      // Refused before the body (a private key) is even read.
      onRequest: async (req) => requireAdmin(req.principal, "only an admin token uploads certificates"),
      schema: {
        summary: "Upload a certificate (PEM chain, leaf first) and its private key (RSA or ECDSA, unencrypted PEM); it is served for the DNS names of its subjectAltName (a wildcard covers one label). Uploading again for the same set of names replaces it (200, replaced: true)",
        body: {
          type: "object",
          additionalProperties: false,
          required: ["certificate", "privateKey"],
          properties: {
            certificate: { type: "string", minLength: 1, maxLength: 256 * 1024 },
            privateKey: { type: "string", minLength: 1, maxLength: 64 * 1024 },
          },
        },
        response: { 200: uploadAnswer, 201: uploadAnswer },
      },
    },
    async (req, reply) => {
      const result = await certificates.upload(req.principal, req.body);
      return reply.status(result.replaced ? 200 : 201).send(result);
    },
  );

  app.get(
    "/certificates",
    {
      onRequest: async (req) => {
        if (req.principal.role === "viewer") throw new ForbiddenError("the certificates are listed to admin and deployer tokens");
      },
      schema: { summary: "Every stored certificate, uploaded and issued by ACME: names, source, serial, validity, status (never a key)", response: { 200: { type: "array", items: certificateView } } },
    },
    async () => certificates.list(),
  );

  app.delete<{ Params: { id: string } }>(
    "/certificates/:id",
    {
      onRequest: async (req) => requireAdmin(req.principal, "only an admin token removes certificates"),
      schema: { summary: "Remove an uploaded certificate (409 for one issued by ACME): the hosts serving it take it off, or serve the names' ACME certificate instead", params: idParams, response: { 200: certificateView } },
    },
    async (req) => certificates.remove(req.principal, req.params.id),
  );
};
