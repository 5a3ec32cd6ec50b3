import type { JSX } from "preact";
import { EnvNav } from "../env-nav";
import { PageTitle } from "../ui";

// Not built yet (issue 14): the page says so rather than pretending.
export function LogsPage({ app, env }: { app: string; env: string }): JSX.Element {
  return (
    <>
      <EnvNav app={app} env={env} />
      <PageTitle title="Logs">Logs</PageTitle>
      <p class="muted">This page (the runtime log) is not built yet; the API and the CLI have it.</p>
    </>
  );
}
