/** A route pattern such as `/apps/:app/deployments/:id`: literal segments and named parameters. */
export type Params = Record<string, string>;

/**
 * The parameters of `pathname` under `pattern`, or undefined when it does not match. Segments
 * are compared whole; a parameter takes one non-empty segment, percent-decoded. A trailing
 * slash is ignored.
 */
export function matchPath(pattern: string, pathname: string): Params | undefined {
  const want = split(pattern);
  const got = split(pathname);
  if (want.length !== got.length) return undefined;
  const params: Params = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (w.startsWith(":")) {
      try {
        params[w.slice(1)] = decodeURIComponent(g);
      } catch {
        return undefined;
      }
    } else if (w !== g) {
      return undefined;
    }
  }
  return params;
}

function split(p: string): string[] {
  return p.split("/").filter((s) => s !== "");
}

/** The first route whose pattern matches, with its parameters. */
export function findRoute<R extends { path: string }>(routes: readonly R[], pathname: string): { route: R; params: Params } | undefined {
  for (const route of routes) {
    const params = matchPath(route.path, pathname);
    if (params) return { route, params };
  }
  return undefined;
}

/**
 * Where to go after signing in: a path of this dashboard (`/…`, not `//host` nor a scheme), else `/`.
 * The `next` parameter comes from the address bar, so it must never lead off the origin.
 */
export function safeNext(next: string | null | undefined): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  return next;
}
