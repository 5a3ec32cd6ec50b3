import { Fragment, render } from "preact";
import type { JSX } from "preact";
import { useEffect } from "preact/hooks";
import "./styles.css";
import { findRoute, type Params } from "./match";
import { Link, location, navigate } from "./router";
import { isAdmin, loadSession, principal, session, signOut } from "./session";
import { AppsPage } from "./pages/apps";
import { AppPage } from "./pages/app";
import { HistoryPage } from "./pages/history";
import { PendingPage } from "./pages/pending";
import { DeploymentPage } from "./pages/deployment";
import { SignInPage } from "./pages/sign-in";
import { lazyPage } from "./lazy";
import { Loading, PageTitle } from "./ui";

type EnvProps = { app: string; env: string };
// Pages beyond the first ones load on first use (their modules, and libraries only they use, are chunks of their own).
const ActivityPage = lazyPage<object>("activity", () => import("./pages/activity").then((m) => m.ActivityPage));
const FleetPage = lazyPage<object>("fleet", () => import("./pages/fleet").then((m) => m.FleetPage));
const TokensPage = lazyPage<object>("tokens", () => import("./pages/tokens").then((m) => m.TokensPage));
const CertificatesPage = lazyPage<object>("certificates", () => import("./pages/certificates").then((m) => m.CertificatesPage));
const AppSettingsPage = lazyPage<{ app: string }>("app settings", () => import("./pages/app-settings").then((m) => m.AppSettingsPage));
const EnvSettingsPage = lazyPage<EnvProps>("environment settings", () => import("./pages/env-settings").then((m) => m.EnvSettingsPage));
const LogsPage = lazyPage<EnvProps>("logs", () => import("./pages/logs").then((m) => m.LogsPage));
const MetricsPage = lazyPage<EnvProps>("metrics", () => import("./pages/metrics").then((m) => m.MetricsPage));
const DataPage = lazyPage<EnvProps>("data", () => import("./pages/data").then((m) => m.DataPage));
const TerminalPage = lazyPage<EnvProps>("terminal", () => import("./pages/terminal").then((m) => m.TerminalPage));

const routes = [
  { path: "/", page: () => <AppsPage /> },
  { path: "/apps", page: () => <AppsPage /> },
  { path: "/apps/:app", page: (p: Params) => <AppPage app={p.app!} /> },
  { path: "/apps/:app/environments/:env/pending", page: (p: Params) => <PendingPage app={p.app!} env={p.env!} /> },
  { path: "/apps/:app/environments/:env/deployments", page: (p: Params) => <HistoryPage app={p.app!} env={p.env!} /> },
  { path: "/apps/:app/settings", page: (p: Params) => <AppSettingsPage app={p.app!} /> },
  { path: "/apps/:app/environments/:env/settings", page: (p: Params) => <EnvSettingsPage app={p.app!} env={p.env!} /> },
  { path: "/apps/:app/environments/:env/logs", page: (p: Params) => <LogsPage app={p.app!} env={p.env!} /> },
  { path: "/apps/:app/environments/:env/metrics", page: (p: Params) => <MetricsPage app={p.app!} env={p.env!} /> },
  { path: "/apps/:app/environments/:env/data", page: (p: Params) => <DataPage app={p.app!} env={p.env!} /> },
  { path: "/apps/:app/environments/:env/terminal", page: (p: Params) => <TerminalPage app={p.app!} env={p.env!} /> },
  { path: "/deployments/:id", page: (p: Params) => <DeploymentPage id={p.id!} /> },
  { path: "/activity", page: () => <ActivityPage /> },
  { path: "/fleet", page: () => <FleetPage /> },
  { path: "/tokens", page: () => <TokensPage /> },
  { path: "/certificates", page: () => <CertificatesPage /> },
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
            <Link href="/activity" aria-current={location.value.pathname === "/activity" ? "page" : undefined}>
              Activity
            </Link>
            {isAdmin(p) && (
              <>
                <Link href="/fleet" aria-current={location.value.pathname === "/fleet" ? "page" : undefined}>
                  Fleet
                </Link>
                <Link href="/tokens" aria-current={location.value.pathname === "/tokens" ? "page" : undefined}>
                  Tokens
                </Link>
                <Link href="/certificates" aria-current={location.value.pathname === "/certificates" ? "page" : undefined}>
                  Certificates
                </Link>
              </>
            )}
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
