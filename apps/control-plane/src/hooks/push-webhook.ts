/**
 * Push webhooks from git hosts, verified against an application's webhook secret and read into one
 * shape. Pure: no I/O, no HTTP server; the route gives it the headers and the raw body and answers
 * from the outcome.
 *
 * What each sender sends (from the hosts' documentation and sources):
 * - GitHub: `X-GitHub-Event`, `X-GitHub-Delivery` (one GUID per event, kept by a redelivery),
 *   `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
 * - Gitea and Forgejo: `X-Gitea-Event` / `X-Forgejo-Event`, `X-Gitea-Delivery` / `X-Forgejo-Delivery`,
 *   `X-Gitea-Signature` / `X-Forgejo-Signature: <hex HMAC-SHA256>` without a prefix. They also send
 *   GitHub's headers (`X-GitHub-Event`, `X-Hub-Signature-256`), so their own headers decide first.
 *   A deleted branch comes as a `delete` event (`ref` the short name, `ref_type`), not as a push;
 *   the pusher is a user object with `login`, not GitHub's `{name, email}`.
 * - GitLab: `X-Gitlab-Event` ("Push Hook", "Tag Push Hook", …), `X-Gitlab-Token: <the secret itself>`.
 *   `Idempotency-Key` (GitLab 17.4+) is the id kept across retries; `X-Gitlab-Event-UUID` names the
 *   event; `X-Gitlab-Webhook-UUID` is a fresh UUID per request (GitLab's WebHookService).
 * - Bitbucket Cloud: `X-Event-Key: repo:push`, `X-Request-UUID`, `X-Hub-Signature: sha256=<hex>`
 *   (only when the webhook has a secret); `push.changes[]` with `new`/`old` refs, `new: null` for a
 *   deleted branch. Bitbucket Data Center: `X-Event-Key: repo:refs_changed` (`diagnostics:ping` for
 *   "Test connection"), `X-Request-Id`, the same `X-Hub-Signature`; `changes[]` with `ref.displayId`,
 *   `ref.type` ("BRANCH"/"TAG"), `toHash` and `type` ("ADD"/"UPDATE"/"DELETE").
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

export type WebhookProvider = "github" | "gitlab" | "gitea" | "bitbucket";

/** A push to one branch, as the route hands it on to start a deployment (or to stop one). */
export interface PushEvent {
  provider: WebhookProvider;
  /** The sender's delivery id; without one, a hash of provider and body, so a redelivery has the same id. */
  deliveryId: string;
  branch: string;
  /** The new head, 40 hex (64 in a SHA-256 repository), lower case; "" when the branch was deleted. */
  after: string;
  deleted: boolean;
  /** The pusher's user name, as the host names them; absent when the payload has none. */
  pusher?: string;
  /** Commits in the push, when the payload counts them (Bitbucket's lists are capped: absent then). */
  commits?: number;
}

export type WebhookOutcome =
  | { kind: "push"; event: PushEvent }
  /** Authentic but nothing to deploy (a ping, a tag, another event type): the route answers 2xx. */
  | { kind: "ignored"; provider: WebhookProvider; deliveryId: string; reason: string }
  /** 401: signature or token missing or wrong. 400: unknown sender, malformed payload. 415: not JSON. */
  | { kind: "rejected"; status: 400 | 401 | 415; reason: string };

type Headers = Record<string, string | string[] | undefined>;
type Json = Record<string, unknown>;

/** How one host authenticates, names its deliveries and events. */
interface Sender {
  provider: WebhookProvider;
  event: string;
  /** The header values that may hold the delivery id, most trusted first. */
  deliveryIds: (string | undefined)[];
  verify: (rawBody: Buffer, secret: string) => string | undefined;
}

const ZERO_SHA = /^0+$/;
const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const MAX_DELIVERY_ID = 200;

/**
 * Verifies a webhook request against the application's secret and reads the push it announces.
 *
 * Pure and deterministic: safe to call concurrently, and the same request always gives the same
 * outcome (so the same delivery id: the route deduplicates by it). The signature or token is checked
 * before the body is parsed; a body that is not authentic is never read. Called by the webhook
 * route once per request, with the body exactly as received (its size limit is the route's).
 */
export function parsePushWebhook(headers: Headers, rawBody: Buffer, secret: string): WebhookOutcome {
  const sender = identify(headers);
  if (sender === undefined) return reject(400, "unknown sender: no GitHub, GitLab, Gitea, Forgejo or Bitbucket event header");
  // Only JSON is read; and Gitea signs the JSON inside a form-encoded body, not the body sent, so
  // say what is wrong rather than answer "wrong signature" to a webhook whose secret is right.
  const contentType = header(headers, "content-type");
  if (contentType !== undefined && !isJson(contentType)) return reject(415, "the webhook must send application/json");
  if (secret === "") return reject(401, "no webhook secret is configured");

  const failure = sender.verify(rawBody, secret);
  if (failure !== undefined) return reject(401, failure);

  const deliveryId = deliveryIdOf(sender, rawBody);
  if (deliveryId === undefined) return reject(400, "malformed delivery id header");
  const ignore = (reason: string): WebhookOutcome => ({ kind: "ignored", provider: sender.provider, deliveryId, reason });

  const kind = eventKind(sender);
  if (kind === "ping") return ignore("ping");
  if (kind === "tag") return ignore("tag push");
  if (kind === "other") return ignore(`event ${quote(sender.event)} is not a push`);

  const payload = parseObject(rawBody);
  if (payload === undefined) return reject(400, "the body is not a JSON object");
  const read = readPush(kind, payload);
  if ("ignored" in read) return ignore(read.ignored);
  if ("invalid" in read) return reject(400, read.invalid);
  return { kind: "push", event: { provider: sender.provider, deliveryId, ...read.push } };
}

// ---------------------------------------------------------------------------------------------
// Senders

function identify(headers: Headers): Sender | undefined {
  const forgejoEvent = header(headers, "x-forgejo-event");
  const giteaEvent = header(headers, "x-gitea-event");
  // Before GitHub: Gitea and Forgejo send X-GitHub-Event too.
  const giteaLike = forgejoEvent ?? giteaEvent;
  if (giteaLike !== undefined) {
    // Forgejo sends its own headers and Gitea's with the same values; its own decide.
    const signature = header(headers, "x-forgejo-signature") ?? header(headers, "x-gitea-signature");
    return {
      provider: "gitea",
      event: giteaLike,
      deliveryIds: [header(headers, "x-forgejo-delivery"), header(headers, "x-gitea-delivery")],
      verify: (body, secret) => verifyHmac(signature, "", body, secret),
    };
  }
  const gitlabEvent = header(headers, "x-gitlab-event");
  if (gitlabEvent !== undefined) {
    const token = header(headers, "x-gitlab-token");
    return {
      provider: "gitlab",
      event: gitlabEvent,
      // Idempotency-Key is kept across retries; X-Gitlab-Webhook-UUID is new on every request, so it
      // is a last resort (every GitLab that sends it also sends X-Gitlab-Event-UUID).
      deliveryIds: [header(headers, "idempotency-key"), header(headers, "x-gitlab-event-uuid"), header(headers, "x-gitlab-webhook-uuid")],
      verify: (_body, secret) => (token === undefined ? "missing X-Gitlab-Token" : equalInConstantTime(token, secret) ? undefined : "wrong X-Gitlab-Token"),
    };
  }
  const bitbucketEvent = header(headers, "x-event-key");
  if (bitbucketEvent !== undefined) {
    const signature = header(headers, "x-hub-signature");
    return {
      provider: "bitbucket",
      event: bitbucketEvent,
      deliveryIds: [header(headers, "x-request-uuid"), header(headers, "x-request-id")],
      verify: (body, secret) => verifyHmac(signature, "sha256=", body, secret),
    };
  }
  const githubEvent = header(headers, "x-github-event");
  if (githubEvent !== undefined) {
    const signature = header(headers, "x-hub-signature-256");
    return {
      provider: "github",
      event: githubEvent,
      deliveryIds: [header(headers, "x-github-delivery")],
      verify: (body, secret) => verifyHmac(signature, "sha256=", body, secret),
    };
  }
  return undefined;
}

type Kind = "git-push" | "gitlab-push" | "gitea-delete" | "bitbucket-cloud" | "bitbucket-dc" | "ping" | "tag" | "other";

function eventKind({ provider, event }: Sender): Kind {
  switch (provider) {
    case "github":
      return event === "push" ? "git-push" : event === "ping" ? "ping" : "other";
    case "gitea":
      return event === "push" ? "git-push" : event === "delete" ? "gitea-delete" : "other";
    case "gitlab":
      return event === "Push Hook" ? "gitlab-push" : event === "Tag Push Hook" ? "tag" : "other";
    case "bitbucket":
      return event === "repo:push" ? "bitbucket-cloud" : event === "repo:refs_changed" ? "bitbucket-dc" : event === "diagnostics:ping" ? "ping" : "other";
  }
}

// ---------------------------------------------------------------------------------------------
// Authentication

/** Undefined when the signature holds, else why not. */
function verifyHmac(signature: string | undefined, prefix: string, body: Buffer, secret: string): string | undefined {
  if (signature === undefined) return "missing signature";
  // The prefix names the algorithm, it is no secret: checking it first tells nothing about the digest.
  if (!signature.toLowerCase().startsWith(prefix)) return `the signature is not ${prefix}<hex HMAC-SHA256>`;
  const expected = createHmac("sha256", secret).update(body).digest("hex");
  return equalInConstantTime(signature.slice(prefix.length).toLowerCase(), expected) ? undefined : "wrong signature";
}

/**
 * Compares two secrets in time independent of where they differ and of their lengths: both are
 * hashed to 32 bytes first, so timingSafeEqual always gets equal lengths and a length mismatch
 * rejects without a shortcut.
 */
function equalInConstantTime(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given, "utf8").digest();
  const b = createHash("sha256").update(expected, "utf8").digest();
  return timingSafeEqual(a, b);
}

// ---------------------------------------------------------------------------------------------
// Delivery ids

/** The sender's id, or a hash of provider and body without one; undefined when the header is malformed. */
function deliveryIdOf(sender: Sender, rawBody: Buffer): string | undefined {
  const given = sender.deliveryIds.map((v) => v?.trim()).find((v) => v !== undefined && v !== "");
  if (given === undefined) return `sha256:${createHash("sha256").update(sender.provider).update("\n").update(rawBody).digest("hex")}`;
  return given.length <= MAX_DELIVERY_ID && /^[\x21-\x7e]+$/.test(given) ? given : undefined;
}

// ---------------------------------------------------------------------------------------------
// Payloads

type Read = { push: Omit<PushEvent, "provider" | "deliveryId"> } | { ignored: string } | { invalid: string };

function readPush(kind: Kind, p: Json): Read {
  switch (kind) {
    case "git-push":
    case "gitlab-push":
      return readGitPush(kind, p);
    case "gitea-delete":
      return readGiteaDelete(p);
    case "bitbucket-cloud":
      return readBitbucketCloud(p);
    case "bitbucket-dc":
      return readBitbucketDataCenter(p);
    default:
      return { ignored: "not a push" };
  }
}

/** GitHub, Gitea, Forgejo and GitLab push payloads share `ref` and `after`. */
function readGitPush(kind: "git-push" | "gitlab-push", p: Json): Read {
  const ref = p.ref;
  if (typeof ref !== "string") return { invalid: "the push has no ref" };
  if (ref.startsWith("refs/tags/")) return { ignored: "tag push" };
  if (!ref.startsWith("refs/heads/")) return { ignored: `ref ${quote(ref)} is not a branch` };
  const pusher =
    kind === "gitlab-push"
      ? text(p.user_username)
      : // GitHub's pusher is {name, email}; Gitea's and Forgejo's a user with login (and username).
        text(object(p.pusher)?.name) ?? text(object(p.pusher)?.login) ?? text(object(p.pusher)?.username);
  const commits = kind === "gitlab-push" ? count(p.total_commits_count) ?? length(p.commits) : count(p.total_commits) ?? length(p.commits);
  return branchUpdate(ref.slice("refs/heads/".length), p.after, pusher, commits, p.deleted === true);
}

/** Gitea and Forgejo announce a deleted branch with a `delete` event, never as a push. */
function readGiteaDelete(p: Json): Read {
  if (p.ref_type !== "branch") return { ignored: p.ref_type === "tag" ? "tag deletion" : "not a branch deletion" };
  if (typeof p.ref !== "string") return { invalid: "the delete event has no ref" };
  // `ref` is the short name (Gitea's RefEndName / ShortName), though a full one is read as well.
  const branch = p.ref.startsWith("refs/heads/") ? p.ref.slice("refs/heads/".length) : p.ref;
  const pusher = text(object(p.sender)?.login) ?? text(object(p.sender)?.username);
  return branchDeletion(branch, pusher);
}

function readBitbucketCloud(p: Json): Read {
  const changes = object(p.push)?.changes;
  if (!Array.isArray(changes)) return { invalid: "the push has no push.changes" };
  const pusher = text(object(p.actor)?.nickname) ?? text(object(p.actor)?.display_name);
  const refs = changes.map(object).filter((c): c is Json => c !== undefined);
  const change = refs.find((c) => object(c.new)?.type === "branch" || (c.new === null && object(c.old)?.type === "branch"));
  if (change === undefined) return { ignored: refs.some((c) => object(c.new ?? c.old)?.type === "tag") ? "tag push" : "no branch in the push" };
  const created = object(change.new);
  if (created === undefined) return branchDeletion(object(change.old)?.name, pusher);
  // Bitbucket lists at most 5 commits a change and says when it cut the list.
  const commits = change.truncated === false ? length(change.commits) : undefined;
  return branchUpdate(created.name, object(created.target)?.hash, pusher, commits, false);
}

function readBitbucketDataCenter(p: Json): Read {
  if (!Array.isArray(p.changes)) return { invalid: "the push has no changes" };
  const pusher = text(object(p.actor)?.name) ?? text(object(p.actor)?.slug);
  const refs = p.changes.map(object).filter((c): c is Json => c !== undefined);
  const change = refs.find((c) => object(c.ref)?.type === "BRANCH");
  if (change === undefined) return { ignored: refs.some((c) => object(c.ref)?.type === "TAG") ? "tag push" : "no branch in the push" };
  const branch = object(change.ref)?.displayId;
  if (change.type === "DELETE") return branchDeletion(branch, pusher);
  return branchUpdate(branch, change.toHash, pusher, undefined, false);
}

function branchUpdate(branch: unknown, after: unknown, pusher: string | undefined, commits: number | undefined, deleted: boolean): Read {
  if (deleted) return branchDeletion(branch, pusher);
  if (typeof branch !== "string" || !isBranchName(branch)) return { invalid: `invalid branch name ${quote(branch)}` };
  if (typeof after !== "string") return { invalid: "the push has no new head" };
  const sha = after.toLowerCase();
  if (ZERO_SHA.test(sha)) return branchDeletion(branch, pusher);
  if (!SHA.test(sha)) return { invalid: `invalid commit id ${quote(after)}` };
  return { push: { branch, after: sha, deleted: false, ...optional(pusher, commits) } };
}

function branchDeletion(branch: unknown, pusher: string | undefined): Read {
  if (typeof branch !== "string" || !isBranchName(branch)) return { invalid: `invalid branch name ${quote(branch)}` };
  return { push: { branch, after: "", deleted: true, ...optional(pusher, undefined) } };
}

function optional(pusher: string | undefined, commits: number | undefined): Pick<PushEvent, "pusher" | "commits"> {
  return { ...(pusher !== undefined ? { pusher } : {}), ...(commits !== undefined ? { commits } : {}) };
}

/**
 * git check-ref-format's rules for a branch (`refs/heads/<name>`), within 255 bytes: no control
 * characters, space, `~ ^ : ? * [ \`, no `..` or `@{`, not `@`, no empty component, none starting
 * with `.` or ending with `.lock`, and not ending with `.`.
 */
export function isBranchName(name: string): boolean {
  if (name === "" || name === "@" || Buffer.byteLength(name, "utf8") > 255) return false;
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name) || name.includes("..") || name.includes("@{") || name.endsWith(".")) return false;
  return name.split("/").every((c) => c !== "" && !c.startsWith(".") && !c.endsWith(".lock"));
}

// ---------------------------------------------------------------------------------------------
// Small readers

/** One header's value; a repeated header (an array of several) counts as absent. */
function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  if (Array.isArray(value)) return value.length === 1 ? value[0] : undefined;
  return value;
}

function isJson(contentType: string): boolean {
  const media = contentType.split(";")[0]!.trim().toLowerCase();
  return media === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(media);
}

function parseObject(rawBody: Buffer): Json | undefined {
  try {
    return object(JSON.parse(rawBody.toString("utf8")));
  } catch {
    return undefined;
  }
}

function object(value: unknown): Json | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
}

/** A short name from the payload (a user name), or undefined when it is not one. */
function text(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" && value.length <= 255 ? value : undefined;
}

function count(value: unknown): number | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

function length(value: unknown): number | undefined {
  return Array.isArray(value) ? value.length : undefined;
}

/** A sender's value in a reason: quoted, and cut so a reason stays a line. */
function quote(value: unknown): string {
  const s = JSON.stringify(typeof value === "string" ? value : String(value));
  return s.length > 80 ? `${s.slice(0, 77)}…"` : s;
}

function reject(status: 400 | 401 | 415, reason: string): WebhookOutcome {
  return { kind: "rejected", status, reason };
}
