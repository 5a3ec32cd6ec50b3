import { useEffect, useState } from "preact/hooks";
import type { JSX } from "preact";
import { messageOf } from "./errors";
import { Alert, Loading } from "./ui";

type Page<P> = (props: P) => JSX.Element;

/**
 * A page whose module is fetched the first time it is shown (esbuild's splitting puts it and the
 * libraries only it uses in chunks of their own), so the first page loads none of it.
 */
export function lazyPage<P extends object>(what: string, load: () => Promise<Page<P>>): Page<P> {
  let loaded: Page<P> | undefined;
  let loading: Promise<Page<P>> | undefined;
  return function LazyPage(props: P): JSX.Element {
    const [page, setPage] = useState<Page<P> | undefined>(() => loaded);
    const [error, setError] = useState<string | undefined>(undefined);
    useEffect(() => {
      if (loaded) return;
      let current = true;
      loading ??= load().then((p) => (loaded = p));
      loading.then(
        (p) => current && setPage(() => p),
        (err: unknown) => {
          loading = undefined;
          if (current) setError(`the ${what} page could not be loaded: ${messageOf(err)}; reload to try again`);
        },
      );
      return () => {
        current = false;
      };
    }, []);
    if (error) return <Alert>{error}</Alert>;
    const Shown = page ?? loaded;
    return Shown ? <Shown {...props} /> : <Loading what={`the ${what} page`} />;
  };
}
