import type { JSX } from "preact";
import { PageTitle } from "../ui";

// Not built yet (issue 14): the page says so rather than pretending.
export function ActivityPage({}): JSX.Element {
  return (
    <>
      <PageTitle title="Activity">Activity</PageTitle>
      <p class="muted">This page (the activity feed) is not built yet; the API and the CLI have it.</p>
    </>
  );
}
