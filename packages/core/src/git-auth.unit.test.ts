import { describe, expect, it } from "vitest";
import { explainGitFailure, knownHostsLinesFor, sshRemoteOf } from "./git-auth.js";

describe("sshRemoteOf", () => {
  it("names the host as known_hosts does", () => {
    expect(sshRemoteOf("ssh://git@github.com/acme/shop.git")).toEqual({ hostname: "github.com", port: 22, knownHostsName: "github.com" });
    expect(sshRemoteOf("ssh://git@127.0.0.1:2222/srv/shop.git")).toEqual({ hostname: "127.0.0.1", port: 2222, knownHostsName: "[127.0.0.1]:2222" });
    expect(sshRemoteOf("git@gitlab.example.com:acme/shop.git")?.knownHostsName).toBe("gitlab.example.com");
    expect(sshRemoteOf("ssh://git@[::1]:2222/x.git")?.knownHostsName).toBe("[::1]:2222");
  });
  it("is undefined for http(s), file URLs and paths", () => {
    for (const u of ["https://github.com/acme/shop.git", "http://127.0.0.1:8080/x.git", "file:///srv/x.git", "/srv/x.git"]) expect(sshRemoteOf(u)).toBeUndefined();
  });
});

describe("knownHostsLinesFor", () => {
  it("keeps only the host's key lines", () => {
    const text = "# scanned\n[127.0.0.1]:2222 ssh-ed25519 AAAAC3Nz\nother.example ssh-rsa AAAAB3\n[127.0.0.1]:2222 ecdsa-sha2-nistp256 AAAAE2\n\n";
    expect(knownHostsLinesFor(text, "[127.0.0.1]:2222")).toEqual(["[127.0.0.1]:2222 ssh-ed25519 AAAAC3Nz", "[127.0.0.1]:2222 ecdsa-sha2-nistp256 AAAAE2"]);
  });
});

describe("explainGitFailure", () => {
  const url = "ssh://git@127.0.0.1:2222/srv/shop.git";
  it("says a changed host key may be an attack", () => {
    const r = explainGitFailure("@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\nfatal: Could not read from remote repository.", url);
    expect(r?.reason).toMatch(/host key of \[127\.0\.0\.1\]:2222 has changed/);
    expect(r?.retryable).toBe(false);
  });
  it("says which key to add when the deploy key is refused", () => {
    expect(explainGitFailure("git@127.0.0.1: Permission denied (publickey).\nfatal: Could not read from remote repository.", url)?.reason).toMatch(/refused the app's deploy key/);
  });
  it("an unknown host key is not pinned", () => {
    expect(explainGitFailure("No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed.", url)?.reason).toMatch(/not pinned/);
  });
  it("a refused connection is retryable", () => {
    expect(explainGitFailure("ssh: connect to host 127.0.0.1 port 2222: Connection refused", url)).toEqual({ reason: "the git host [127.0.0.1]:2222 cannot be reached (connection refused)", retryable: true });
  });
  it("says nothing of what it does not know", () => {
    expect(explainGitFailure("fatal: something else", url)).toBeUndefined();
  });
});
