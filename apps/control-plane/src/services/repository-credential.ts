/**
 * A credential embedded in a repository URL (`https://user:token@host/repo.git`) is a secret:
 * it is split out on input, kept encrypted, and joined back only for the git processes that
 * need it (the control plane's mirror, an agent's GetJobSpec). Everything shown keeps the URL
 * without it.
 */
export interface SplitRepository {
  /** The URL without the credential. */
  url: string;
  /** The userinfo (`user:token`, or a token alone over http(s)); undefined when there is none. */
  credential?: string;
}

const AUTHORITY = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/is;

/**
 * Over http(s) any userinfo authenticates (a token alone as the user name is common). Over ssh
 * a user name alone is the login (`ssh://git@host/…`) and stays; a password is split out.
 * scp-like `git@host:path`, file:// and paths carry no credential.
 */
export function splitRepositoryCredential(repository: string): SplitRepository {
  const m = AUTHORITY.exec(repository);
  if (!m) return { url: repository };
  const [, scheme, authority, rest] = m as unknown as [string, string, string, string];
  // The last "@": a password with an unescaped "@" still splits at the host.
  const at = authority.lastIndexOf("@");
  if (at < 0) return { url: repository };
  const userinfo = authority.slice(0, at);
  const http = /^https?:\/\/$/i.test(scheme);
  if (!http && !userinfo.includes(":")) return { url: repository };
  if (userinfo === "") return { url: `${scheme}${authority.slice(at + 1)}${rest}` };
  return { url: `${scheme}${authority.slice(at + 1)}${rest}`, credential: userinfo };
}

/** The URL git is given: the credential put back in front of the host. */
export function joinRepositoryCredential(url: string, credential: string | undefined): string {
  if (credential === undefined) return url;
  const m = AUTHORITY.exec(url);
  if (!m) return url;
  return `${m[1]}${credential}@${m[2]}${m[3]}`;
}

/** Any text with URLs in it (a git error, a log line) with their userinfo masked. */
export function redactUrls(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/\s'"]*@/gi, "$1***@");
}
