import { useEffect, useState } from "preact/hooks";
import type { JSX } from "preact";
import { api } from "../api";
import { activityStream, adminApi, type ActivityEntry, type ActivityFilter } from "../api/admin";
import { messageOf } from "../errors";
import { formatTime } from "../format";
import { Link, location, navigate } from "../router";
import { isAdmin, principal } from "../session";
import { useEventStream } from "../sse";
import { Alert, Loading, PageTitle, useResource } from "../ui";
import { LiveState } from "./app";

const PAGE = 50;

/** The filter as the URL's query says it (?app=&env=), so a filtered view is a link. */
function filterOf(search: string): ActivityFilter {
  const q = new URLSearchParams(search);
  return { ...(q.get("app") ? { app: q.get("app")! } : {}), ...(q.get("env") ? { env: q.get("env")! } : {}) };
}

function hrefOf(f: ActivityFilter): string {
  const q = new URLSearchParams();
  if (f.app) q.set("app", f.app);
  if (f.env) q.set("env", f.env);
  const s = q.toString();
  return s ? `/activity?${s}` : "/activity";
}

/**
 * The activity feed, newest first, filtered by app and environment (in the URL). New entries
 * arrive by the feed's event stream, resumed after the newest entry shown; older ones page in
 * with `before`. Only admins read the whole feed (the API's rule): other roles pick one of their apps.
 */
export function ActivityPage(): JSX.Element {
  const who = principal.value;
  const admin = isAdmin(who);
  const asked = filterOf(location.value.search);
  // A deployer or viewer reads the feed of one of its apps; the first one when none is named.
  const filter: ActivityFilter = !admin && !asked.app && who?.apps[0] ? { app: who.apps[0], ...(asked.env ? { env: asked.env } : {}) } : asked;
  const key = `${filter.app ?? ""}/${filter.env ?? ""}`;

  const apps = useResource(() => api.listApps(), "apps");
  // Entries name hosts by id: an admin sees their names too (hosts are an admin's to list).
  const hosts = useResource(() => (admin ? adminApi.listHosts() : Promise.resolve([])), admin ? "hosts" : "none");
  const hostNames = Object.fromEntries((hosts.data ?? []).map((h) => [h.id, h.name]));
  const appNames = apps.data ? apps.data.map((a) => a.name) : admin ? [] : [...(who?.apps ?? [])];
  const envNames = filter.app ? (apps.data?.find((a) => a.name === filter.app)?.environments.map((e) => e.name) ?? []) : [];
  // A filter from a link may name what the lists do not have (yet): it stays selectable.
  if (filter.app && !appNames.includes(filter.app)) appNames.unshift(filter.app);
  if (filter.env && !envNames.includes(filter.env)) envNames.unshift(filter.env);

  const setFilter = (next: ActivityFilter) => navigate(hrefOf(next), { replace: true });

  return (
    <>
      <PageTitle title="Activity">Activity</PageTitle>
      <form class="activity-filter" aria-label="Filter the activity" onSubmit={(e) => e.preventDefault()}>
        <div class="field">
          <label for="activity-app">App</label>
          <select id="activity-app" value={filter.app ?? ""} onChange={(e) => setFilter({ ...(e.currentTarget.value ? { app: e.currentTarget.value } : {}) })}>
            {admin && <option value="">All apps and the platform</option>}
            {appNames.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="activity-env">Environment</label>
          <select id="activity-env" value={filter.env ?? ""} disabled={!filter.app && !filter.env} onChange={(e) => setFilter({ ...(filter.app ? { app: filter.app } : {}), ...(e.currentTarget.value ? { env: e.currentTarget.value } : {}) })}>
            <option value="">{filter.app ? "Every environment" : "Choose an app first"}</option>
            {envNames.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </div>
      </form>
      {!admin && appNames.length === 0 ? <p class="muted">Your token names no app, so there is no activity to show.</p> : <Feed key={key} filter={filter} hostNames={hostNames} />}
    </>
  );
}

/** One filter's feed: the first page, then live entries on top and older pages below. */
function Feed({ filter, hostNames }: { filter: ActivityFilter; hostNames: Record<string, string> }): JSX.Element {
  const first = useResource(() => adminApi.activity(filter, { limit: PAGE }), "first");
  const [entries, setEntries] = useState<ActivityEntry[]>([]);
  const [older, setOlder] = useState<{ busy: boolean; end: boolean; error?: string }>({ busy: false, end: false });

  useEffect(() => {
    setEntries(first.data ?? []);
    setOlder({ busy: false, end: (first.data?.length ?? 0) < PAGE });
  }, [first.data]);

  // Subscribed once the first page is there: the stream resumes after its newest entry, so nothing falls between.
  // (An empty first page gives no id: the stream then starts after the feed's newest entry when it opens.)
  const streamUrl = first.data ? activityStream(filter, first.data[0]?.id) : undefined;
  const stream = useEventStream(streamUrl, {
    activity: (ev) => {
      let entry: ActivityEntry;
      try {
        entry = JSON.parse(ev.data) as ActivityEntry;
      } catch {
        return;
      }
      setEntries((list) => (list.some((e) => e.id === entry.id) ? list : [entry, ...list]));
    },
  });

  const loadOlder = async () => {
    const last = entries[entries.length - 1];
    if (!last) return;
    setOlder({ busy: true, end: false });
    try {
      const page = await adminApi.activity(filter, { before: last.id, limit: PAGE });
      setEntries((list) => [...list, ...page.filter((e) => !list.some((x) => x.id === e.id))]);
      setOlder({ busy: false, end: page.length < PAGE });
    } catch (err) {
      setOlder({ busy: false, end: false, error: messageOf(err) });
    }
  };

  return (
    <section aria-label="Entries" class="activity-feed">
      {streamUrl && (
        <p class="activity-live">
          <LiveState state={stream.state} />
        </p>
      )}
      {first.error && <Alert>{first.error}</Alert>}
      {first.loading && !first.data && <Loading what="the activity" />}
      {first.data && entries.length === 0 && <p class="muted">Nothing happened here yet. New entries appear as they happen.</p>}
      {entries.length > 0 && (
        <ol class="activity" aria-label="Activity, newest first">
          {entries.map((e) => (
            <ActivityRow key={e.id} entry={e} hostNames={hostNames} />
          ))}
        </ol>
      )}
      {older.error && <Alert>{older.error}</Alert>}
      {entries.length > 0 && !older.end && (
        <button type="button" onClick={loadOlder} disabled={older.busy}>
          {older.busy ? "Loading older entries…" : "Older entries"}
        </button>
      )}
      {entries.length > 0 && older.end && <p class="muted">That is the first entry{filter.app ? " here" : ""}.</p>}
    </section>
  );
}

function ActivityRow({ entry: e, hostNames }: { entry: ActivityEntry; hostNames: Record<string, string> }): JSX.Element {
  const d = e.details ?? {};
  const empty = (v: unknown) => v === null || v === undefined || v === "" || (typeof v === "object" && Object.keys(v).length === 0);
  // A host's id says nothing more where the entry already names the host.
  const facts = Object.entries(d).filter(([k, v]) => !empty(v) && !(k === "hostId" && typeof v === "string" && hostNames[v] !== undefined && d.name === hostNames[v]));
  return (
    <li class="activity-row" data-action={e.action} data-id={e.id}>
      <div class="activity-head">
        <time dateTime={e.at}>{formatTime(e.at)}</time>
        <code class="activity-action">{e.action}</code>
        {e.app && (
          <span>
            <Link href={`/apps/${encodeURIComponent(e.app)}`}>{e.app}</Link>
            {e.environment ? ` / ${e.environment}` : ""}
          </span>
        )}
        <span class="muted">by {e.actor}</span>
      </div>
      {facts.length > 0 && (
        <dl class="activity-details">
          {facts.map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd>
                {k === "deployment" && typeof v === "string" ? (
                  <Link href={`/deployments/${encodeURIComponent(v)}`}>{v.slice(0, 8)}</Link>
                ) : typeof v === "string" && hostNames[v] ? (
                  <span title={v}>{hostNames[v]}</span>
                ) : (
                  show(v)
                )}
              </dd>
            </div>
          ))}
        </dl>
      )}
    </li>
  );
}

function show(v: unknown): string {
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v) && v.every((x) => typeof x !== "object")) return v.join(", ");
  return JSON.stringify(v);
}
