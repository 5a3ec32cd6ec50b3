import { signal } from "@preact/signals";
import type { AnchorHTMLAttributes, ComponentChildren, JSX, TargetedMouseEvent } from "preact";

/** The current location (path and query), kept in step with the history API. */
export const location = signal(currentLocation());

function currentLocation(): { pathname: string; search: string } {
  return { pathname: window.location.pathname, search: window.location.search };
}

window.addEventListener("popstate", () => {
  location.value = currentLocation();
});

/** Goes to a path of the dashboard without reloading; `replace` keeps the history as it is. */
export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  if (opts.replace) window.history.replaceState(null, "", to);
  else window.history.pushState(null, "", to);
  location.value = currentLocation();
  window.scrollTo(0, 0);
}

type LinkProps = AnchorHTMLAttributes & { href: string; children?: ComponentChildren };

/** A real link (it opens in a new tab, copies, works without JavaScript's help) that navigates in place. */
export function Link({ href, children, ...rest }: LinkProps): JSX.Element {
  const onClick = (e: TargetedMouseEvent<HTMLAnchorElement>) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={onClick} {...rest}>
      {children}
    </a>
  );
}
