import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@slipway/core";
import type { DatabaseHandle } from "../db/database.js";
import { testDatabase } from "../testing/harness.js";
import { SecretBox } from "../services/secret-box.js";
import { getAppByName } from "../repositories/apps.repository.js";
import { GitAccess, fingerprintOf } from "./git-access.js";

const HOST_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
const OTHER_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIBfXmO5BZ4oVf0M9Y2oJOa7jHGdcWT1Pa/zQv9nKzGNK";

describe("GitAccess: deploy keys and pinned host keys", () => {
  let database: DatabaseHandle;
  const box = new SecretBox(randomBytes(32));
  let scans = 0;
  let offered = `[git.example]:2222 ssh-ed25519 ${HOST_KEY}\n`;
  const access = () =>
    new GitAccess(database.db, box, createLogger("t", "silent"), {
      scan: async () => {
        scans++;
        await new Promise((r) => setTimeout(r, 20));
        return `# git.example:2222 SSH-2.0-OpenSSH\n${offered}`;
      },
    });

  beforeAll(async () => {
    database = await testDatabase("pglite");
    for (const [name, repository] of [
      ["shop", "ssh://git@git.example:2222/acme/shop.git"],
      ["web", "https://git.example/acme/web.git"],
    ]) {
      await database.db.insertInto("apps").values({ id: randomUUID(), name: name!, repository: repository!, settings: "{}", settings_revision: 1, created_at: new Date(), updated_at: new Date() }).execute();
    }
  });
  afterAll(async () => database?.close());

  it("makes one deploy key per app, keeps its private half sealed, and hands both to git only for ssh URLs", async () => {
    const a = access();
    const app = await getAppByName(database.db, "shop");
    // Two first asks at once: one key.
    const [k1, k2] = await Promise.all([a.deployKey(app), a.deployKey({ ...app })]);
    expect(k1.publicKey).toBe(k2.publicKey);
    expect(k1.publicKey).toMatch(/^ssh-ed25519 \S+ slipway-shop$/);
    expect(k1.fingerprint).toBe(fingerprintOf(k1.publicKey));
    const row = await getAppByName(database.db, "shop");
    expect(row.deploy_key_private_encrypted).not.toContain("PRIVATE KEY");
    const git = await a.forGit(row);
    expect(git.url).toBe("ssh://git@git.example:2222/acme/shop.git");
    expect(git.auth?.sshPrivateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----/);
    expect(git.auth?.knownHosts).toBe(`[git.example]:2222 ssh-ed25519 ${HOST_KEY}`);
    expect((await a.forGit(await getAppByName(database.db, "web"))).auth).toBeUndefined();
    const rotated = await a.rotateDeployKey(row);
    expect(rotated.publicKey).not.toBe(k1.publicKey);
  });

  it("pins a host's key on first use, once, and keeps it when the host later offers another", async () => {
    const a = access();
    await database.db.deleteFrom("git_host_keys").execute();
    scans = 0;
    const [x, y] = await Promise.all([a.knownHosts("[git.example]:2222", "git.example", 2222), a.knownHosts("[git.example]:2222", "git.example", 2222)]);
    expect(x).toBe(y);
    expect(scans).toBe(1);
    offered = `[git.example]:2222 ssh-ed25519 ${OTHER_KEY}\n`;
    expect(await access().knownHosts("[git.example]:2222", "git.example", 2222)).toBe(`[git.example]:2222 ssh-ed25519 ${HOST_KEY}`);
    expect(scans).toBe(1);
    expect(await a.listHostKeys()).toEqual([expect.objectContaining({ host: "[git.example]:2222", source: "first-use", keys: [`[git.example]:2222 ssh-ed25519 ${HOST_KEY}`] })]);
  });

  it("lets an admin pin keys as known_hosts lines or bare keys, and refuses anything else", async () => {
    const a = access();
    const pinned = await a.pinHostKeys("admin", "[git.example]:2222", `ssh-ed25519 ${OTHER_KEY}`);
    expect(pinned).toMatchObject({ source: "admin", pinnedBy: "admin", keys: [`[git.example]:2222 ssh-ed25519 ${OTHER_KEY}`] });
    await expect(a.pinHostKeys("admin", "github.com", "ssh-ed25519 AAAAnot-a-key")).rejects.toThrow(/not an SSH public key/);
    await expect(a.pinHostKeys("admin", "github.com", `gitlab.com ssh-ed25519 ${HOST_KEY}`)).rejects.toThrow(/known_hosts lines for github.com/);
    await expect(a.pinHostKeys("admin", "bad host!", `ssh-ed25519 ${HOST_KEY}`)).rejects.toThrow(/invalid git host/);
    expect((await a.listHostKeys()).map((k) => k.host)).toEqual(["[git.example]:2222"]);
    await a.unpinHostKeys("[git.example]:2222");
    await expect(a.unpinHostKeys("[git.example]:2222")).rejects.toThrow(/no SSH key is pinned/);
  });
});
