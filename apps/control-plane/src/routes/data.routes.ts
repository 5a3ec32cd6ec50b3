import type { Readable } from "node:stream";
import type { FastifyPluginAsync } from "fastify";
import { ENV_NAME_PATTERN } from "@slipway/core";
import type { DataService } from "../data/data.service.js";
import { envParams, idParams } from "./schemas.js";

/** How long the rest of a refused upload's body is read and dropped before its connection is closed. */
const LINGER_MS = 5_000;

export const dataRoutes: FastifyPluginAsync<{ data: DataService }> = async (app, { data }) => {
  app.post<{ Params: { app: string; env: string }; Body: { database?: boolean; media?: boolean } }>(
    "/apps/:app/environments/:env/backups",
    {
      schema: {
        summary: "Back up an environment's database and/or media",
        params: envParams,
        body: { type: "object", additionalProperties: false, properties: { database: { type: "boolean", default: true }, media: { type: "boolean", default: true } } },
      },
    },
    async (req, reply) => reply.status(202).send(await data.createBackup(req.principal, req.params.app, req.params.env, { database: req.body?.database ?? true, media: req.body?.media ?? true })),
  );
  app.get<{ Params: { app: string; env: string } }>("/apps/:app/environments/:env/backups", { schema: { summary: "Backups, newest first", params: envParams } }, async (req) =>
    data.listBackups(req.principal, req.params.app, req.params.env),
  );
  app.get<{ Params: { id: string } }>("/backups/:id", { schema: { summary: "One backup", params: idParams } }, async (req) => data.getBackup(req.principal, req.params.id));
  app.get<{ Params: { id: string } }>(
    "/backups/:id/database",
    {
      // fastify's automatic HEAD would read the whole archive from the store only to drop it.
      exposeHeadRoute: false,
      schema: {
        summary: "A finished backup's database archive (pg_dump custom format), as stored",
        description:
          "Streams the archive with its length and, when the backup recorded one, its sha256 in `x-slipway-sha256`. Admins and deployers of the app only (a viewer gets 403). 409 while the backup is not finished or when it has no database.",
        params: idParams,
      },
    },
    async (req, reply) => {
      const archive = await data.openBackupDatabase(req.principal, req.params.id);
      void reply
        .header("content-type", archive.contentType)
        .header("content-length", String(archive.bytes))
        .header("content-disposition", `attachment; filename="${archive.filename}"`)
        .header("cache-control", "no-store");
      if (archive.sha256) void reply.header("x-slipway-sha256", archive.sha256);
      return reply.send(archive.body);
    },
  );
  app.get<{ Params: { id: string } }>(
    "/backups/:id/media",
    {
      // As for the database: an automatic HEAD would read every object only to drop it.
      exposeHeadRoute: false,
      schema: {
        summary: "A finished backup's media as one tar stream (application/x-tar)",
        description:
          "Entries are named by the object keys relative to the environment's media root; objects are streamed one after the other from the backup store as the client reads. No length: `x-slipway-media-objects` and `x-slipway-media-bytes` say what the backup recorded (entries, bytes of content). A failure part way ends the stream early, so the tar is incomplete. Admins and deployers of the app only (a viewer gets 403). 409 while the backup is not finished or when it has no media.",
        params: idParams,
      },
    },
    async (req, reply) => {
      const archive = await data.openBackupMedia(req.principal, req.params.id);
      return reply
        .header("content-type", "application/x-tar")
        .header("content-disposition", `attachment; filename="${archive.filename}"`)
        .header("cache-control", "no-store")
        .header("x-slipway-media-objects", String(archive.objects))
        .header("x-slipway-media-bytes", String(archive.bytes))
        .send(archive.body);
    },
  );
  // The upload takes the body as a stream, whatever its size and content type: no parser reads
  // it (the service checks its first bytes, counts it against its own limit and streams it into
  // the backup store), so fastify's bodyLimit does not apply here, and only here.
  await app.register(async (upload) => {
    upload.removeAllContentTypeParsers();
    upload.addContentTypeParser("*", (_req, payload, done) => done(null, payload));
    // A refusal may come before the client has sent all of its body. Closing the connection right
    // after the answer resets it while the client still sends, and the client may then see the
    // reset instead of the answer; reading all of the rest could mean gigabytes. So the rest is
    // read and dropped for at most LINGER_MS (a client that stops sending when it gets the
    // answer is done long before), then the connection is closed.
    upload.addHook("onResponse", async (req, reply) => {
      const raw = req.raw;
      if (reply.statusCode < 400 || raw.complete) return;
      // Destroying the request closes its connection.
      const timer = setTimeout(() => raw.destroy(), LINGER_MS).unref();
      raw.once("end", () => clearTimeout(timer));
      raw.once("close", () => clearTimeout(timer));
      // The service stopped reading part way, through the stream's async iterator, whose
      // 'readable' listener would keep resume() from letting the rest flow.
      raw.removeAllListeners("readable");
      raw.resume();
    });
    upload.post<{ Params: { app: string; env: string }; Querystring: { part?: "database" | "media" } }>(
      "/apps/:app/environments/:env/backups/upload",
      {
        schema: {
          summary: "Store a database archive (pg_dump -Fc) or, with ?part=media, the media (a tar) as a finished backup of kind 'upload'",
          description:
            "The body is streamed into the backup store, never held in memory. `part=database` (the default): a pg_dump custom-format archive as application/octet-stream; it must start like one (PGDMP), else 400. `part=media`: a tar (application/x-tar, uncompressed) whose entries are named by the object keys relative to the environment's media root; regular files and folders only, no absolute names, no `..`, else 400; each file becomes an object, folders are not stored. Beyond SLIPWAY_BACKUP_UPLOAD_MAX_MB (default 10 GiB) 413. Whatever is refused or fails, nothing is stored. Answers 201 with the backup (database only or media only), which POST /v1/backups/{id}/restore restores (after a safety backup of the target); a media restore makes the environment's media exactly the tar's files. Retention never prunes uploads.",
          consumes: ["application/octet-stream", "application/x-tar"],
          params: envParams,
          querystring: { type: "object", additionalProperties: false, properties: { part: { type: "string", enum: ["database", "media"], default: "database" } } },
        },
      },
      async (req, reply) => {
        const length = req.headers["content-length"];
        const declared = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
        const body = req.body as Readable | undefined;
        const { app: appName, env } = req.params;
        const backup = req.query.part === "media" ? await data.uploadMediaBackup(req.principal, appName, env, body, declared) : await data.uploadBackup(req.principal, appName, env, body, declared);
        return reply.status(201).send(backup);
      },
    );
  });
  app.post<{ Params: { id: string }; Body: { into?: string; confirm?: boolean } }>(
    "/backups/:id/restore",
    {
      schema: {
        summary: "Restore a backup into its environment or another of the same app (needs confirm: true)",
        params: idParams,
        body: { type: "object", additionalProperties: false, properties: { into: { type: "string", pattern: ENV_NAME_PATTERN }, confirm: { type: "boolean" } } },
      },
    },
    async (req, reply) => reply.status(202).send(await data.restore(req.principal, req.params.id, req.body ?? {})),
  );
  app.post<{ Params: { app: string; env: string }; Body: { from: string; database?: boolean; media?: boolean; confirm?: boolean } }>(
    "/apps/:app/environments/:env/content-copies",
    {
      schema: {
        summary: "Replace this environment's database and/or media with another's (a backup of it is taken first)",
        params: envParams,
        body: {
          type: "object",
          additionalProperties: false,
          required: ["from"],
          properties: { from: { type: "string", pattern: ENV_NAME_PATTERN }, database: { type: "boolean", default: true }, media: { type: "boolean", default: true }, confirm: { type: "boolean" } },
        },
      },
    },
    async (req, reply) =>
      reply.status(202).send(await data.contentCopy(req.principal, req.params.app, req.params.env, { from: req.body.from, database: req.body.database ?? true, media: req.body.media ?? true, ...(req.body.confirm !== undefined ? { confirm: req.body.confirm } : {}) })),
  );
  app.get<{ Params: { id: string } }>("/content-copies/:id", { schema: { summary: "A content copy or restore, with live progress", params: idParams } }, async (req) => data.getContentCopy(req.principal, req.params.id));

  const scheduleSchema = {
    type: "object",
    additionalProperties: false,
    required: ["enabled"],
    properties: {
      enabled: { type: "boolean" },
      retention: {
        type: "object",
        additionalProperties: false,
        required: ["daily", "weekly", "monthly"],
        properties: { daily: { type: "integer", minimum: 0, maximum: 365 }, weekly: { type: "integer", minimum: 0, maximum: 520 }, monthly: { type: "integer", minimum: 0, maximum: 1200 } },
      },
    },
  } as const;
  app.get<{ Params: { app: string; env: string } }>("/apps/:app/environments/:env/backup-schedule", { schema: { params: envParams } }, async (req) => data.getSchedule(req.principal, req.params.app, req.params.env));
  app.put<{ Params: { app: string; env: string }; Body: { enabled: boolean; retention?: { daily: number; weekly: number; monthly: number } } }>(
    "/apps/:app/environments/:env/backup-schedule",
    { schema: { summary: "Daily scheduled backups with retention (default on for live: 7 daily, 4 weekly, 12 monthly)", params: envParams, body: scheduleSchema } },
    async (req) => data.setSchedule(req.principal, req.params.app, req.params.env, { enabled: req.body.enabled, retention: req.body.retention ?? { daily: 7, weekly: 4, monthly: 12 } }),
  );
};
