import type { JSX } from "preact";
import { PageTitle } from "../ui";

// Not built yet (issue 14): the page says so rather than pretending.
export function FleetPage({}): JSX.Element {
  return (
    <>
      <PageTitle title="Fleet">Fleet</PageTitle>
      <p class="muted">This page (the fleet) is not built yet; the API and the CLI have it.</p>
    </>
  );
}
