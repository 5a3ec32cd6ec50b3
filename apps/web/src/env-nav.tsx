import type { JSX } from "preact";
import { Link, location } from "./router";

/** The pages of one environment, in the order the tabs show them. */
const TABS = [
  { path: "deployments", label: "Deployments" },
  { path: "pending", label: "Pending" },
  { path: "settings", label: "Settings" },
  { path: "logs", label: "Logs" },
  { path: "metrics", label: "Metrics" },
  { path: "data", label: "Data" },
  { path: "terminal", label: "Terminal" },
] as const;

export type EnvTab = (typeof TABS)[number]["path"];

/** Breadcrumb (Apps / app / env) and the environment's tabs, on top of every page of one environment. */
export function EnvNav({ app, env }: { app: string; env: string }): JSX.Element {
  const base = `/apps/${encodeURIComponent(app)}/environments/${encodeURIComponent(env)}`;
  const here = location.value.pathname;
  return (
    <>
      <nav aria-label="Breadcrumb" class="crumbs">
        <Link href="/">Apps</Link> <span aria-hidden="true">/</span> <Link href={`/apps/${encodeURIComponent(app)}`}>{app}</Link> <span aria-hidden="true">/</span> {env}
      </nav>
      <nav aria-label={`Environment ${env}`} class="tabs">
        {TABS.map((t) => (
          <Link key={t.path} href={`${base}/${t.path}`} aria-current={here === `${base}/${t.path}` ? "page" : undefined}>
            {t.label}
          </Link>
        ))}
      </nav>
    </>
  );
}
