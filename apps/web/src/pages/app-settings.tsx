import type { JSX } from "preact";
import { PageTitle } from "../ui";

// Not built yet (issue 14): the page says so rather than pretending.
export function AppSettingsPage(_props: { app: string }): JSX.Element {
  return (
    <>
      <PageTitle title="Settings">Settings</PageTitle>
      <p class="muted">This page (the app's settings) is not built yet; the API and the CLI have it.</p>
    </>
  );
}
