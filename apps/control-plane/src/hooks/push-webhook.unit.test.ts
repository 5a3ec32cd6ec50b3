import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isBranchName, parsePushWebhook, type WebhookOutcome } from "./push-webhook.js";

const SECRET = "s3cret-of-the-app";
const SHA = "bffeb74224043ba2feb48d137756c8a9331c449a";
const BEFORE = "28e1879d029cb852e4844d9c718537df08844e03";
const ZERO = "0000000000000000000000000000000000000000";

const body = (payload: unknown) => Buffer.from(JSON.stringify(payload));
const hmac = (raw: Buffer, secret = SECRET) => createHmac("sha256", secret).update(raw).digest("hex");
const JSON_TYPE = { "content-type": "application/json" };

// Minimal payloads with the fields and shapes the hosts send (their documentation's examples, cut down).
const githubPush = (over: Record<string, unknown> = {}) => ({
  ref: "refs/heads/main",
  before: BEFORE,
  after: SHA,
  created: false,
  deleted: false,
  forced: false,
  commits: [{ id: SHA, message: "Deploy me", distinct: true }],
  pusher: { name: "octocat", email: "octocat@example.com" },
  repository: { full_name: "octo/app" },
  ...over,
});

const giteaPush = (over: Record<string, unknown> = {}) => ({
  ref: "refs/heads/develop",
  before: BEFORE,
  after: SHA,
  compare_url: `http://localhost:3000/gitea/webhooks/compare/${BEFORE}...${SHA}`,
  commits: [{ id: SHA, message: "Webhooks Yay!" }],
  total_commits: 1,
  repository: { full_name: "gitea/webhooks" },
  pusher: { id: 1, login: "gitea", full_name: "Gitea", email: "someone@gitea.io", username: "gitea" },
  sender: { id: 1, login: "gitea", username: "gitea" },
  ...over,
});

const gitlabPush = (over: Record<string, unknown> = {}) => ({
  object_kind: "push",
  event_name: "push",
  before: BEFORE,
  after: SHA,
  ref: "refs/heads/master",
  checkout_sha: SHA,
  user_name: "John Smith",
  user_username: "jsmith",
  project: { path_with_namespace: "mike/diaspora" },
  commits: [{ id: SHA, message: "Update Catalan translation" }, { id: BEFORE, message: "fixed readme" }],
  total_commits_count: 4,
  ...over,
});

const bitbucketCloudPush = (changes: unknown[]) => ({
  actor: { type: "user", display_name: "Emma", nickname: "emma", uuid: "{a5b1c2d3-0000-4000-8000-000000000001}" },
  repository: { type: "repository", full_name: "team/app" },
  push: { changes },
});

const bitbucketDcPush = (changes: unknown[]) => ({
  eventKey: "repo:refs_changed",
  date: "2017-09-19T09:45:32+1000",
  actor: { name: "admin", emailAddress: "admin@example.com", id: 1, displayName: "Administrator", slug: "admin", type: "NORMAL" },
  repository: { slug: "repository", name: "repository", project: { key: "PROJ" } },
  changes,
});

function github(raw: Buffer, event = "push", extra: Record<string, string> = {}) {
  return { ...JSON_TYPE, "x-github-event": event, "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958", "x-hub-signature-256": `sha256=${hmac(raw)}`, ...extra };
}

function gitea(raw: Buffer, event = "push") {
  // Gitea sends its own headers, Gogs' and GitHub's, all with the same delivery and event.
  const id = "f6266f16-1bf3-46a5-9ea4-602e06ead473";
  return {
    ...JSON_TYPE,
    "x-github-delivery": id,
    "x-github-event": event,
    "x-gogs-delivery": id,
    "x-gogs-event": event,
    "x-gitea-delivery": id,
    "x-gitea-event": event,
    "x-gitea-signature": hmac(raw),
    "x-hub-signature-256": `sha256=${hmac(raw)}`,
  };
}

function gitlab(token = SECRET, event = "Push Hook") {
  return { ...JSON_TYPE, "x-gitlab-event": event, "x-gitlab-token": token, "x-gitlab-event-uuid": "9cebe914-4827-408f-b014-cfa23a47a35f", "x-gitlab-webhook-uuid": "3c5c0404-c866-44bc-a5f6-452bb1bfc76e" };
}

function bitbucket(raw: Buffer, event = "repo:push"): Record<string, string> {
  const id: Record<string, string> = event === "repo:push" ? { "x-request-uuid": "8f0f5b5a-5c1e-4d54-9d3c-0f0e4c0e3b1a", "x-hook-uuid": "{hook}", "x-attempt-number": "1" } : { "x-request-id": "d4c3b2a1-0000-4000-8000-000000000002" };
  return { ...JSON_TYPE, "x-event-key": event, ...id, "x-hub-signature": `sha256=${hmac(raw)}` };
}

function expectRejected(outcome: WebhookOutcome, status: number) {
  expect(outcome.kind).toBe("rejected");
  if (outcome.kind === "rejected") expect(outcome.status).toBe(status);
}

describe("a valid push", () => {
  it("from GitHub", () => {
    const raw = body(githubPush());
    expect(parsePushWebhook(github(raw), raw, SECRET)).toEqual({
      kind: "push",
      event: { provider: "github", deliveryId: "72d3162e-cc78-11e3-81ab-4c9367dc0958", branch: "main", after: SHA, deleted: false, pusher: "octocat", commits: 1 },
    });
  });

  it("from GitLab: the plain token, total_commits_count and user_username", () => {
    const raw = body(gitlabPush());
    expect(parsePushWebhook(gitlab(), raw, SECRET)).toEqual({
      kind: "push",
      event: { provider: "gitlab", deliveryId: "9cebe914-4827-408f-b014-cfa23a47a35f", branch: "master", after: SHA, deleted: false, pusher: "jsmith", commits: 4 },
    });
  });

  it("from GitLab 17.4+: Idempotency-Key, the id kept across retries, comes first", () => {
    const raw = body(gitlabPush());
    const outcome = parsePushWebhook({ ...gitlab(), "idempotency-key": "a5461c4d-9c7f-4af9-add6-cddebe3c426f" }, raw, SECRET);
    expect(outcome.kind === "push" && outcome.event.deliveryId).toBe("a5461c4d-9c7f-4af9-add6-cddebe3c426f");
  });

  it("from Gitea: the bare hex signature and the pusher's login", () => {
    const raw = body(giteaPush());
    expect(parsePushWebhook(gitea(raw), raw, SECRET)).toEqual({
      kind: "push",
      event: { provider: "gitea", deliveryId: "f6266f16-1bf3-46a5-9ea4-602e06ead473", branch: "develop", after: SHA, deleted: false, pusher: "gitea", commits: 1 },
    });
  });

  it("from Forgejo, as Gitea", () => {
    const raw = body(giteaPush());
    const headers = { ...gitea(raw), "x-forgejo-event": "push", "x-forgejo-delivery": "0b9e7c3e-forgejo", "x-forgejo-signature": hmac(raw) };
    const outcome = parsePushWebhook(headers, raw, SECRET);
    expect(outcome).toMatchObject({ kind: "push", event: { provider: "gitea", deliveryId: "0b9e7c3e-forgejo", branch: "develop", after: SHA } });
    // Forgejo's own signature decides: a wrong one is not rescued by a right X-Gitea-Signature.
    expectRejected(parsePushWebhook({ ...headers, "x-forgejo-signature": hmac(raw, "other") }, raw, SECRET), 401);
  });

  it("from Bitbucket Cloud: the first branch change", () => {
    const raw = body(
      bitbucketCloudPush([
        { new: { type: "tag", name: "v1.0.0", target: { type: "commit", hash: SHA } }, old: null, created: true, closed: false, truncated: false, commits: [] },
        {
          new: { type: "branch", name: "feature/login", target: { type: "commit", hash: SHA } },
          old: { type: "branch", name: "feature/login", target: { type: "commit", hash: BEFORE } },
          created: false,
          closed: false,
          forced: false,
          truncated: false,
          commits: [{ type: "commit", hash: SHA }],
        },
      ]),
    );
    expect(parsePushWebhook(bitbucket(raw), raw, SECRET)).toEqual({
      kind: "push",
      event: { provider: "bitbucket", deliveryId: "8f0f5b5a-5c1e-4d54-9d3c-0f0e4c0e3b1a", branch: "feature/login", after: SHA, deleted: false, pusher: "emma", commits: 1 },
    });
  });

  it("from Bitbucket Cloud with a cut commit list: no count", () => {
    const change = { new: { type: "branch", name: "main", target: { hash: SHA } }, old: { type: "branch", name: "main", target: { hash: BEFORE } }, truncated: true, commits: [{}, {}, {}, {}, {}] };
    const raw = body(bitbucketCloudPush([change]));
    const outcome = parsePushWebhook(bitbucket(raw), raw, SECRET);
    expect(outcome.kind === "push" && outcome.event).toEqual({ provider: "bitbucket", deliveryId: "8f0f5b5a-5c1e-4d54-9d3c-0f0e4c0e3b1a", branch: "main", after: SHA, deleted: false, pusher: "emma" });
  });

  it("from Bitbucket Data Center", () => {
    const raw = body(bitbucketDcPush([{ ref: { id: "refs/heads/main", displayId: "main", type: "BRANCH" }, refId: "refs/heads/main", fromHash: BEFORE, toHash: SHA, type: "UPDATE" }]));
    expect(parsePushWebhook(bitbucket(raw, "repo:refs_changed"), raw, SECRET)).toEqual({
      kind: "push",
      event: { provider: "bitbucket", deliveryId: "d4c3b2a1-0000-4000-8000-000000000002", branch: "main", after: SHA, deleted: false, pusher: "admin" },
    });
  });

  it("to a SHA-256 repository, and an upper-case head read in lower case", () => {
    const sha256 = "a".repeat(64);
    const raw = body(githubPush({ after: sha256.toUpperCase() }));
    const outcome = parsePushWebhook(github(raw), raw, SECRET);
    expect(outcome.kind === "push" && outcome.event.after).toBe(sha256);
  });

  it("with header values as arrays of one, and no content type", () => {
    const raw = body(githubPush());
    const headers = Object.fromEntries(Object.entries(github(raw)).filter(([k]) => k !== "content-type").map(([k, v]) => [k, [v]]));
    expect(parsePushWebhook(headers, raw, SECRET).kind).toBe("push");
  });
});

describe("authentication", () => {
  it("a wrong signature is 401", () => {
    const raw = body(githubPush());
    const wrong = hmac(raw, "not-the-secret");
    expectRejected(parsePushWebhook({ ...github(raw), "x-hub-signature-256": `sha256=${wrong}` }, raw, SECRET), 401);
    expectRejected(parsePushWebhook({ ...gitea(raw), "x-gitea-signature": wrong }, raw, SECRET), 401);
    expectRejected(parsePushWebhook({ ...bitbucket(raw), "x-hub-signature": `sha256=${wrong}` }, raw, SECRET), 401);
  });

  it.each([
    ["GitHub", "x-hub-signature-256", github],
    ["Gitea", "x-gitea-signature", gitea],
    ["Bitbucket", "x-hub-signature", bitbucket],
  ] as const)("a missing signature is 401 (%s)", (_name, signatureHeader, headersFor) => {
    const raw = body(githubPush());
    const headers: Record<string, string> = { ...headersFor(raw) };
    delete headers[signatureHeader];
    expect(parsePushWebhook(headers, raw, SECRET)).toEqual({ kind: "rejected", status: 401, reason: "missing signature" });
  });

  it("the signature of a different body is 401", () => {
    const signed = body(githubPush());
    const sent = body(githubPush({ ref: "refs/heads/production" }));
    expectRejected(parsePushWebhook(github(signed), sent, SECRET), 401);
    expectRejected(parsePushWebhook(gitea(signed), sent, SECRET), 401);
    expectRejected(parsePushWebhook(bitbucket(signed), sent, SECRET), 401);
  });

  it("signatures of other lengths and forms are 401, without a throw", () => {
    const raw = body(githubPush());
    for (const signature of ["sha256=", "sha256=abc", `sha256=${hmac(raw)}00`, hmac(raw), `sha1=${hmac(raw)}`, "sha256=ü"]) {
      expectRejected(parsePushWebhook({ ...github(raw), "x-hub-signature-256": signature }, raw, SECRET), 401);
    }
  });

  it("a wrong or missing GitLab token is 401", () => {
    const raw = body(gitlabPush());
    expect(parsePushWebhook(gitlab("not-the-secret"), raw, SECRET)).toEqual({ kind: "rejected", status: 401, reason: "wrong X-Gitlab-Token" });
    expectRejected(parsePushWebhook(gitlab(`${SECRET}x`), raw, SECRET), 401);
    expectRejected(parsePushWebhook(gitlab(SECRET.slice(0, -1)), raw, SECRET), 401);
    const headers: Record<string, string> = gitlab();
    delete headers["x-gitlab-token"];
    expect(parsePushWebhook(headers, raw, SECRET)).toEqual({ kind: "rejected", status: 401, reason: "missing X-Gitlab-Token" });
  });

  it("an empty secret authenticates nothing", () => {
    const raw = body(githubPush());
    expectRejected(parsePushWebhook(github(raw), raw, ""), 401);
    expectRejected(parsePushWebhook(gitlab(""), body(gitlabPush()), ""), 401);
  });

  it("checks the signature before the body: bad JSON with a wrong signature is 401, not 400", () => {
    const raw = Buffer.from("{not json");
    expectRejected(parsePushWebhook({ ...github(raw), "x-hub-signature-256": `sha256=${hmac(raw, "other")}` }, raw, SECRET), 401);
  });

  it("a request with both x-github-event and x-gitea-event is Gitea, signed by X-Gitea-Signature", () => {
    const raw = body(giteaPush());
    const outcome = parsePushWebhook(gitea(raw), raw, SECRET);
    expect(outcome.kind === "push" && outcome.event.provider).toBe("gitea");
    // A GitHub-style signature alone does not authenticate a Gitea request.
    const headers: Record<string, string> = gitea(raw);
    delete headers["x-gitea-signature"];
    expectRejected(parsePushWebhook(headers, raw, SECRET), 401);
  });
});

describe("rejected requests", () => {
  it("an unknown sender is 400", () => {
    const raw = body(githubPush());
    expectRejected(parsePushWebhook({ ...JSON_TYPE, "x-hub-signature-256": `sha256=${hmac(raw)}` }, raw, SECRET), 400);
    expectRejected(parsePushWebhook({}, Buffer.alloc(0), SECRET), 400);
  });

  it("bad JSON with a valid signature is 400", () => {
    for (const text of ["{not json", "", "[1,2]", "null", '"refs/heads/main"']) {
      const raw = Buffer.from(text);
      expect(parsePushWebhook(github(raw), raw, SECRET)).toEqual({ kind: "rejected", status: 400, reason: "the body is not a JSON object" });
    }
    expectRejected(parsePushWebhook(gitlab(), Buffer.from("{"), SECRET), 400);
  });

  it("a form-encoded webhook is 415, told to send JSON", () => {
    const raw = Buffer.from(`payload=${encodeURIComponent(JSON.stringify(githubPush()))}`);
    expectRejected(parsePushWebhook({ ...github(raw), "content-type": "application/x-www-form-urlencoded" }, raw, SECRET), 415);
    expect(parsePushWebhook({ ...github(body(githubPush())), "content-type": "application/json; charset=utf-8" }, body(githubPush()), SECRET).kind).toBe("push");
  });

  it.each([
    ["no ref", { ref: undefined }],
    ["an invalid branch", { ref: "refs/heads/feature..x" }],
    ["a branch with a control character", { ref: "refs/heads/ma\u0007in" }],
    ["no head", { after: undefined }],
    ["a short head", { after: SHA.slice(0, 12) }],
    ["a head that is not hex", { after: `${SHA.slice(0, 39)}g` }],
  ])("a push with %s is 400", (_name, over) => {
    const raw = body(githubPush(over));
    expectRejected(parsePushWebhook(github(raw), raw, SECRET), 400);
  });

  it("a delivery id header that is not a plain token is 400", () => {
    const raw = body(githubPush());
    expectRejected(parsePushWebhook(github(raw, "push", { "x-github-delivery": "a b" }), raw, SECRET), 400);
    expectRejected(parsePushWebhook(github(raw, "push", { "x-github-delivery": "x".repeat(201) }), raw, SECRET), 400);
  });
});

describe("ignored deliveries", () => {
  it("a GitHub ping", () => {
    const raw = body({ zen: "Keep it logically awesome.", hook_id: 12345678, hook: { type: "Repository", events: ["push"] } });
    expect(parsePushWebhook(github(raw, "ping"), raw, SECRET)).toEqual({ kind: "ignored", provider: "github", deliveryId: "72d3162e-cc78-11e3-81ab-4c9367dc0958", reason: "ping" });
  });

  it("a Bitbucket Data Center connection test", () => {
    const raw = body({ test: true });
    expect(parsePushWebhook(bitbucket(raw, "diagnostics:ping"), raw, SECRET)).toMatchObject({ kind: "ignored", provider: "bitbucket", reason: "ping" });
  });

  it("a tag push, from each host", () => {
    const gh = body(githubPush({ ref: "refs/tags/v1.2.0", base_ref: "refs/heads/main" }));
    expect(parsePushWebhook(github(gh), gh, SECRET)).toMatchObject({ kind: "ignored", provider: "github", reason: "tag push" });
    const gt = body(giteaPush({ ref: "refs/tags/v1.2.0" }));
    expect(parsePushWebhook(gitea(gt), gt, SECRET)).toMatchObject({ kind: "ignored", provider: "gitea", reason: "tag push" });
    const gl = body(gitlabPush({ object_kind: "tag_push", ref: "refs/tags/v1.2.0" }));
    expect(parsePushWebhook(gitlab(SECRET, "Tag Push Hook"), gl, SECRET)).toMatchObject({ kind: "ignored", provider: "gitlab", reason: "tag push" });
    const bc = body(bitbucketCloudPush([{ new: { type: "tag", name: "v1.2.0", target: { hash: SHA } }, old: null }]));
    expect(parsePushWebhook(bitbucket(bc), bc, SECRET)).toMatchObject({ kind: "ignored", reason: "tag push" });
    const bd = body(bitbucketDcPush([{ ref: { id: "refs/tags/v1.2.0", displayId: "v1.2.0", type: "TAG" }, refId: "refs/tags/v1.2.0", fromHash: ZERO, toHash: SHA, type: "ADD" }]));
    expect(parsePushWebhook(bitbucket(bd, "repo:refs_changed"), bd, SECRET)).toMatchObject({ kind: "ignored", reason: "tag push" });
  });

  it("other events, still only once authenticated", () => {
    const raw = body({ action: "opened", number: 1 });
    expect(parsePushWebhook(github(raw, "pull_request"), raw, SECRET)).toMatchObject({ kind: "ignored", reason: 'event "pull_request" is not a push' });
    expect(parsePushWebhook(gitlab(SECRET, "Merge Request Hook"), raw, SECRET)).toMatchObject({ kind: "ignored", provider: "gitlab" });
    expect(parsePushWebhook(bitbucket(raw, "pullrequest:created"), raw, SECRET)).toMatchObject({ kind: "ignored", provider: "bitbucket" });
    expectRejected(parsePushWebhook({ ...github(raw, "pull_request"), "x-hub-signature-256": "sha256=00" }, raw, SECRET), 401);
  });

  it("a push to a ref that is not a branch", () => {
    const raw = body(githubPush({ ref: "refs/notes/commits" }));
    expect(parsePushWebhook(github(raw), raw, SECRET)).toMatchObject({ kind: "ignored", reason: 'ref "refs/notes/commits" is not a branch' });
  });
});

describe("a deleted branch", () => {
  const deletion = (provider: string, pusher?: string) => ({ kind: "push", event: expect.objectContaining({ provider, branch: "feature/old", after: "", deleted: true, ...(pusher ? { pusher } : {}) }) });

  it("from GitHub: an all-zero head", () => {
    const raw = body(githubPush({ ref: "refs/heads/feature/old", before: SHA, after: ZERO, deleted: true, commits: [] }));
    expect(parsePushWebhook(github(raw), raw, SECRET)).toEqual(deletion("github", "octocat"));
  });

  it("from GitLab: an all-zero head", () => {
    const raw = body(gitlabPush({ ref: "refs/heads/feature/old", before: SHA, after: ZERO, checkout_sha: null, commits: [], total_commits_count: 0 }));
    expect(parsePushWebhook(gitlab(), raw, SECRET)).toEqual(deletion("gitlab", "jsmith"));
  });

  it("from Gitea and Forgejo: a delete event with the short ref name", () => {
    const raw = body({ ref: "feature/old", ref_type: "branch", pusher_type: "user", repository: { full_name: "gitea/webhooks" }, sender: { login: "gitea", username: "gitea" } });
    expect(parsePushWebhook(gitea(raw, "delete"), raw, SECRET)).toEqual(deletion("gitea", "gitea"));
    const tag = body({ ref: "v1.0", ref_type: "tag", pusher_type: "user" });
    expect(parsePushWebhook(gitea(tag, "delete"), tag, SECRET)).toMatchObject({ kind: "ignored", reason: "tag deletion" });
  });

  it("from Bitbucket Cloud: new is null, the name from old", () => {
    const raw = body(bitbucketCloudPush([{ new: null, old: { type: "branch", name: "feature/old", target: { hash: SHA } }, created: false, closed: true, truncated: false, commits: [] }]));
    expect(parsePushWebhook(bitbucket(raw), raw, SECRET)).toEqual(deletion("bitbucket", "emma"));
  });

  it("from Bitbucket Data Center: a DELETE change", () => {
    const raw = body(bitbucketDcPush([{ ref: { id: "refs/heads/feature/old", displayId: "feature/old", type: "BRANCH" }, refId: "refs/heads/feature/old", fromHash: SHA, toHash: ZERO, type: "DELETE" }]));
    expect(parsePushWebhook(bitbucket(raw, "repo:refs_changed"), raw, SECRET)).toEqual(deletion("bitbucket", "admin"));
  });
});

describe("delivery ids", () => {
  it("without a delivery header, the same body gives the same id twice, another body another", () => {
    const headers: Record<string, string> = github(body(githubPush()));
    delete headers["x-github-delivery"];
    const raw = body(githubPush());
    const first = parsePushWebhook(headers, raw, SECRET);
    const second = parsePushWebhook(headers, Buffer.from(raw), SECRET);
    expect(first.kind === "push" && first.event.deliveryId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(second).toEqual(first);

    const other = body(githubPush({ after: BEFORE }));
    const third = parsePushWebhook({ ...headers, "x-hub-signature-256": `sha256=${hmac(other)}` }, other, SECRET);
    expect(third.kind === "push" && third.event.deliveryId).not.toBe(first.kind === "push" && first.event.deliveryId);
  });

  it("the hash includes the provider, and ignored deliveries get one too", () => {
    const raw = body(gitlabPush());
    const headers: Record<string, string> = gitlab();
    delete headers["x-gitlab-event-uuid"];
    delete headers["x-gitlab-webhook-uuid"];
    const gl = parsePushWebhook(headers, raw, SECRET);
    const gh = parsePushWebhook({ ...JSON_TYPE, "x-github-event": "push", "x-hub-signature-256": `sha256=${hmac(raw)}` }, raw, SECRET);
    expect(gl.kind === "push" && gh.kind === "push").toBe(true);
    expect(gl.kind === "push" && gl.event.deliveryId).not.toBe(gh.kind === "push" && gh.event.deliveryId);

    const ping = body({ zen: "Design for failure." });
    const pinged = parsePushWebhook({ ...JSON_TYPE, "x-github-event": "ping", "x-hub-signature-256": `sha256=${hmac(ping)}` }, ping, SECRET);
    expect(pinged.kind === "ignored" && pinged.deliveryId).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});

describe("branch names", () => {
  it.each(["main", "feature/login", "release-1.2", "user/jo@home", "ünïcode", "a".repeat(255)])("accepts %s", (name) => {
    expect(isBranchName(name)).toBe(true);
  });

  it.each(["", "@", "a..b", "a b", "tab\there", "new\nline", "del\u007f", "x~1", "x^", "a:b", "a?", "a*", "a[b", "a\\b", "a@{1}", "/a", "a/", "a//b", ".hidden", "a/.b", "a.lock", "a/b.lock/c", "end.", "é".repeat(128)])(
    "rejects %j",
    (name) => {
      expect(isBranchName(name)).toBe(false);
    },
  );
});
