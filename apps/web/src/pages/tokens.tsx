import type { JSX } from "preact";
import { PageTitle } from "../ui";

// Not built yet (issue 14): the page says so rather than pretending.
export function TokensPage({}): JSX.Element {
  return (
    <>
      <PageTitle title="Tokens">Tokens</PageTitle>
      <p class="muted">This page (API tokens) is not built yet; the API and the CLI have it.</p>
    </>
  );
}
