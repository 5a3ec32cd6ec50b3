import { describe, expect, it } from "vitest";
import { joinRepositoryCredential, redactUrls, splitRepositoryCredential } from "./repository-credential.js";

describe("repository credentials", () => {
  it.each([
    ["https://user:token@git.example/team/repo.git", "https://git.example/team/repo.git", "user:token"],
    ["https://ghp_abc123@github.com/team/repo.git", "https://github.com/team/repo.git", "ghp_abc123"],
    ["HTTP://u:p@host:8080/r", "HTTP://host:8080/r", "u:p"],
    ["https://u:p@ss@host/r.git", "https://host/r.git", "u:p@ss"],
    ["https://u:p%40ss@host/r.git?x=1", "https://host/r.git?x=1", "u:p%40ss"],
    ["ssh://git:secret@host/r.git", "ssh://host/r.git", "git:secret"],
    ["ssh://git@host/r.git", "ssh://git@host/r.git", undefined],
    ["git@github.com:team/repo.git", "git@github.com:team/repo.git", undefined],
    ["https://git.example/team/repo.git", "https://git.example/team/repo.git", undefined],
    ["https://git.example/path/with@sign", "https://git.example/path/with@sign", undefined],
    ["file:///srv/repos/hello", "file:///srv/repos/hello", undefined],
    ["/srv/repos/hello", "/srv/repos/hello", undefined],
  ])("%s → %s + %s, and back", (input, url, credential) => {
    expect(splitRepositoryCredential(input)).toEqual(credential === undefined ? { url } : { url, credential });
    expect(joinRepositoryCredential(url, credential)).toBe(credential === undefined ? url : input);
  });

  it("masks the userinfo of every URL in a text", () => {
    expect(redactUrls("fatal: unable to access 'https://user:tok@host/r.git/': 403; also http://a@b/c")).toBe("fatal: unable to access 'https://***@host/r.git/': 403; also http://***@b/c");
    expect(redactUrls("nothing to see at https://host/r.git")).toBe("nothing to see at https://host/r.git");
  });
});
