import { Fragment, render } from "preact";
import type { JSX } from "preact";
import { useEffect } from "preact/hooks";
import "./styles.css";
import { findRoute, type Params } from "./match";
import { Link, location, navigate } from "./router";
import { loadSession, principal, session, signOut } from "./session";
import { AppsPage } from "./pages/apps";
import { AppPage } from "./pages/app";
import { HistoryPage } from "./pages/history";
import { PendingPage } from "./pages/pending";
import { DeploymentPage } from "./pages/deployment";
import { SignInPage } from "./pages/sign-in";
import { Loading, PageTitle } from "./ui";

const routes = [
  { path: "/", page: () => <AppsPage /> },
  { path: "/apps", page: () => <AppsPage /> },
  { path: "/apps/:app", page: (p: Params) => <AppPage app={p.app!} /> },
  { path: "/apps/:app/environments/:env/pending", page: (p: Params) => <PendingPage app={p.app!} env={p.env!} /> },
  { path: "/apps/:app/environments/:env/deployments", page: (p: Params) => <HistoryPage app={p.app!} env={p.env!} /> },
  { path: "/deployments/:id", page: (p: Params) => <DeploymentPage id={p.id!} /> },
] as const;

function NotFound(): JSX.Element {
  return (
    <>
      <PageTitle title="Not found">Nothing here</PageTitle>
      <p>
        This page does not exist. <Link href="/">See every app</Link>.
      </p>
    </>
  );
}

function Header(): JSX.Element {
  const p = principal.value;
  const out = async () => {
    await signOut().catch(() => undefined);
    navigate("/sign-in", { replace: true });
  };
  return (
    <header class="top">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <Link href="/" class="brand">
        Slipway
      </Link>
      {p && (
        <>
          <nav aria-label="Main" class="main-nav">
            <Link href="/" aria-current={location.value.pathname === "/" ? "page" : undefined}>
              Apps
            </Link>
          </nav>
          <div class="who">
            <span title={`${p.role}${p.apps.length ? `: ${p.apps.join(", ")}` : ""}`}>
              {p.name} <span class="muted">({p.role})</span>
            </span>
            <button type="button" onClick={out}>
              Sign out
            </button>
          </div>
        </>
      )}
    </header>
  );
}

function Root(): JSX.Element {
  const s = session.value;
  const { pathname, search } = location.value;
  const signedOut = s === null;

  // Signed out: every page but the sign-in page sends there, and comes back after signing in.
  useEffect(() => {
    if (signedOut && pathname !== "/sign-in") navigate(`/sign-in?next=${encodeURIComponent(pathname + search)}`, { replace: true });
    if (s && pathname === "/sign-in") navigate("/", { replace: true });
  }, [signedOut, s, pathname, search]);

  let body: JSX.Element;
  if (s === undefined) body = <Loading what="your session" />;
  else if (s === null || pathname === "/sign-in") body = <SignInPage />;
  else {
    const found = findRoute(routes, pathname);
    // Keyed by the path: another app or deployment starts with a fresh page (its state, its streams).
    body = found ? <Fragment key={pathname}>{found.route.page(found.params)}</Fragment> : <NotFound />;
  }
  return (
    <>
      <Header />
      <main id="main">{body}</main>
    </>
  );
}

void loadSession();
render(<Root />, document.getElementById("app")!);
