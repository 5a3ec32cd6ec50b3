import { computed, signal } from "@preact/signals";
import { api, idle, setCsrfToken, setUnauthenticatedHandler, type Session } from "./api";

/** undefined while the session is looked up at start; null when signed out. */
export const session = signal<Session | null | undefined>(undefined);
export const principal = computed(() => session.value?.principal);

// A marker that a session was opened in this browser. The cookie itself is HttpOnly, so without
// it every first visit would ask GET /v1/sessions/current only to be told 401.
const MARK = "slipway.signedIn";

function remember(s: Session | null): void {
  session.value = s;
  setCsrfToken(s?.csrfToken);
  try {
    if (s) localStorage.setItem(MARK, "1");
    else localStorage.removeItem(MARK);
  } catch {
    // storage refused (private mode): the next visit asks the API instead
  }
}

function marked(): boolean {
  try {
    return localStorage.getItem(MARK) === "1";
  } catch {
    return true;
  }
}

/** Looks up the session the cookie carries, once at start (with its CSRF token). */
export async function loadSession(): Promise<void> {
  setUnauthenticatedHandler(() => remember(null));
  if (!marked()) {
    session.value = null;
    return;
  }
  try {
    remember(await api.currentSession());
  } catch {
    remember(null);
  }
}

// A sign-out still on its way: its answer clears the cookie, so a new sign-in waits for it.
let signingOut: Promise<void> = Promise.resolve();

export async function signIn(token: string): Promise<void> {
  await signingOut.catch(() => undefined);
  remember(await api.signIn(token));
}

/**
 * Ends the session. The pages go first (their streams close), then the calls they made as this
 * session settle, so none of them is refused as signed out; then the API ends the session.
 */
export function signOut(): Promise<void> {
  session.value = null;
  signingOut = (async () => {
    try {
      await idle();
      await api.signOut();
    } finally {
      remember(null);
    }
  })();
  return signingOut;
}

export { isAdmin, mayChange } from "./roles";
