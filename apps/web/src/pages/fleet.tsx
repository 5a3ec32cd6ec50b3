import { useEffect, useRef, useState } from "preact/hooks";
import type { JSX } from "preact";
import { adminApi, type DrainProgress, type FleetHost } from "../api/admin";
import { messageOf } from "../errors";
import { formatTime } from "../format";
import { Link } from "../router";
import { isAdmin, principal } from "../session";
import { Alert, focusPageHeading, Loading, PageTitle, StateBadge, useModal, useResource } from "../ui";
import { CopyButton } from "./tokens";

// Hosts have no event stream (heartbeats are batched into the hosts table, see DECISIONS "Fleet"),
// so the list is read again every 5 s while the tab is shown: an agent beats every 5 s by default,
// so nothing fresher exists. A hidden tab reads nothing and catches up when shown again.
const REFRESH_MS = 5000;
// A drain's progress is read every second while it runs (moves are deployments of a few seconds each).
const DRAIN_POLL_MS = 1000;

/** Calls `fn` every `ms` while the tab is visible, and at once when it becomes visible again. */
function useVisibleInterval(fn: () => void, ms: number, enabled = true): void {
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => {
    if (!enabled) return;
    let timer: ReturnType<typeof setInterval> | undefined;
    const start = () => {
      if (timer === undefined) timer = setInterval(() => latest.current(), ms);
    };
    const stop = () => {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    };
    const onVisibility = () => {
      if (document.visibilityState === "visible") {
        latest.current();
        start();
      } else stop();
    };
    if (document.visibilityState === "visible") start();
    document.addEventListener("visibilitychange", onVisibility);
    return () => {
      stop();
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [ms, enabled]);
}

/** "12 s ago", "4 min ago", "2 h ago", "3 d ago". */
export function ago(iso: string | null, now: number): string {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172_800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

/** "1.5 GB", "512 MB". */
export function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return "unknown";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

function cpus(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return "unknown";
  return `${Math.round(n * 100) / 100} CPU${n === 1 ? "" : "s"}`;
}

/** The fleet (admins): every host with its state, room and heartbeat; cordon, drain, revoke; join tokens. */
export function FleetPage(): JSX.Element {
  const admin = isAdmin(principal.value);
  const hosts = useResource(() => (admin ? adminApi.listHosts() : Promise.resolve([])), admin ? "hosts" : "none");
  const [now, setNow] = useState(Date.now());
  useVisibleInterval(hosts.reload, REFRESH_MS, admin);
  // The ages count on between two reads.
  useVisibleInterval(() => setNow(Date.now()), 1000, admin);
  if (!admin) {
    return (
      <>
        <PageTitle title="Fleet">Fleet</PageTitle>
        <p class="muted">The fleet is an admin's to see and change.</p>
      </>
    );
  }
  const replace = (h: FleetHost) => hosts.set((old) => old?.map((x) => (x.id === h.id ? h : x)));
  return (
    <>
      <PageTitle title="Fleet">Fleet</PageTitle>
      <p class="muted">Read again every 5 s while this tab is shown.</p>
      {hosts.error && <Alert>{hosts.error}</Alert>}
      {hosts.loading && !hosts.data && <Loading what="hosts" />}
      {hosts.data && hosts.data.length === 0 && <p class="muted">No host has joined yet: create a join token below and start an agent with it.</p>}
      {hosts.data && hosts.data.length > 0 && (
        <div class="cards hosts">
          {hosts.data.map((h) => (
            <HostCard key={h.id} host={h} now={now} onChange={replace} reload={hosts.reload} />
          ))}
        </div>
      )}
      <JoinTokens />
    </>
  );
}

interface HostCardProps {
  host: FleetHost;
  now: number;
  onChange: (h: FleetHost) => void;
  reload: () => void;
}

function HostCard({ host: h, now, onChange, reload }: HostCardProps): JSX.Element {
  const [busy, setBusy] = useState<string | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [revoking, setRevoking] = useState(false);
  const [drainStarted, setDrainStarted] = useState<DrainProgress | undefined>(undefined);
  const adminState = h.adminState ?? (h.state === "cordoned" || h.state === "draining" || h.state === "revoked" ? h.state : "active");
  const cap = h.capacity ?? {};
  const free = h.allocatable && h.requested ? { cpus: h.allocatable.cpus - h.requested.cpus, memoryBytes: h.allocatable.memoryBytes - h.requested.memoryBytes } : undefined;
  const labels = Object.entries(h.labels ?? {});
  const titleId = `host-${h.id}`;

  const act = async (what: string, call: () => Promise<FleetHost | DrainProgress>) => {
    setBusy(what);
    setError(undefined);
    try {
      const r = await call();
      if ("id" in r) {
        onChange(r);
        setDrainStarted(undefined);
      } else {
        setDrainStarted(r);
        reload();
      }
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(undefined);
    }
  };

  return (
    <article class="card host-card" aria-labelledby={titleId} data-host={h.id}>
      <div class="card-head">
        <h2 id={titleId}>{h.name}</h2>
        <span class="host-states">
          <StateBadge state={h.state} />
          {adminState !== "active" && adminState !== h.state && <StateBadge state={adminState} />}
        </span>
      </div>
      <dl class="facts">
        <dt>Heartbeat</dt>
        <dd class="heartbeat" title={formatTime(h.lastHeartbeatAt)}>
          {ago(h.lastHeartbeatAt, now)}
        </dd>
        <dt>Labels</dt>
        <dd>{labels.length ? labels.map(([k, v]) => <code key={k} class="label">{`${k}=${v}`}</code>) : <span class="muted">none</span>}</dd>
        <dt>Load</dt>
        <dd>
          CPU {Math.round((h.load?.cpu ?? 0) * 100)} %, memory {bytes(h.load?.memoryUsedBytes)} used, {h.load?.containers ?? 0} container{h.load?.containers === 1 ? "" : "s"}
        </dd>
        <dt>Capacity</dt>
        <dd>
          {cpus(cap.cpus)}, {bytes(cap.memoryBytes)} memory
        </dd>
        {free && (
          <>
            <dt>Free room</dt>
            <dd>
              {cpus(free.cpus)}, {bytes(free.memoryBytes)} memory <span class="muted">(of {cpus(h.allocatable!.cpus)} and {bytes(h.allocatable!.memoryBytes)} placeable)</span>
            </dd>
          </>
        )}
        <dt>Version</dt>
        <dd>{h.version}</dd>
        <dt>Runs</dt>
        <dd>
          {h.environments.length === 0 ? (
            <span class="muted">nothing</span>
          ) : (
            <ul class="host-envs">
              {h.environments.map((e) => (
                <li key={`${e.app}/${e.environment}`}>
                  <Link href={`/apps/${encodeURIComponent(e.app)}`}>{e.app}</Link> / {e.environment}
                </li>
              ))}
            </ul>
          )}
        </dd>
      </dl>
      {(adminState === "draining" || drainStarted) && <DrainStatus hostId={h.id} hostName={h.name} first={drainStarted} onEnded={reload} />}
      {error && <Alert>{error}</Alert>}
      {adminState !== "revoked" && (
        <div class="actions">
          {adminState === "active" && (
            <button type="button" disabled={busy !== undefined} onClick={() => act("cordon", () => adminApi.cordon(h.id))} aria-label={`Cordon ${h.name}`}>
              {busy === "cordon" ? "Cordoning…" : "Cordon"}
            </button>
          )}
          {(adminState === "cordoned" || adminState === "draining") && (
            <button type="button" disabled={busy !== undefined} onClick={() => act("uncordon", () => adminApi.uncordon(h.id))} aria-label={`Uncordon ${h.name}`}>
              {busy === "uncordon" ? "Uncordoning…" : "Uncordon"}
            </button>
          )}
          {(adminState === "active" || adminState === "cordoned") && (
            <button type="button" disabled={busy !== undefined} onClick={() => act("drain", () => adminApi.drain(h.id))} aria-label={`Drain ${h.name}`}>
              {busy === "drain" ? "Starting the drain…" : "Drain"}
            </button>
          )}
          <button type="button" class="danger" disabled={busy !== undefined} onClick={() => setRevoking(true)} aria-haspopup="dialog" aria-label={`Revoke ${h.name}`}>
            Revoke
          </button>
        </div>
      )}
      {revoking && <RevokeHostDialog host={h} onClose={() => setRevoking(false)} onRevoked={onChange} />}
    </article>
  );
}

/** A drain's progress, read every second while it runs; then done, or failed with each move's reason. */
function DrainStatus({ hostId, hostName, first, onEnded }: { hostId: string; hostName: string; first: DrainProgress | undefined; onEnded: () => void }): JSX.Element {
  const [p, setP] = useState<DrainProgress | undefined>(first);
  const [error, setError] = useState<string | undefined>(undefined);
  const running = !p || p.state === "running";
  const last = useRef<DrainProgress["state"] | undefined>(first?.state);
  // One read at a time: a slow answer arriving after a newer one would move the count backwards.
  const inFlight = useRef(false);
  const read = () => {
    if (inFlight.current) return Promise.resolve();
    inFlight.current = true;
    return adminApi.drainProgress(hostId).then(
      (next) => {
        inFlight.current = false;
        setError(undefined);
        // A drain that ended changed what runs where: the hosts are read again.
        if (last.current === "running" && next.state !== "running") onEnded();
        last.current = next.state;
        setP(next);
      },
      (err: unknown) => {
        inFlight.current = false;
        setError(messageOf(err));
      },
    );
  };
  useEffect(() => {
    void read();
  }, [hostId]);
  useVisibleInterval(() => void read(), DRAIN_POLL_MS, running);

  if (error && !p) return <Alert>{error}</Alert>;
  if (!p) return <Loading what="the drain's progress" />;
  if (p.state === "not_draining") return <></>;
  const total = p.moved + p.environments;
  return (
    <section class={`drain drain-${p.state}`} aria-label={`Drain of ${hostName}`}>
      <p class="drain-head" role="status">
        {p.state === "running" && (
          <>
            Draining: {p.moved} of {total} moved, {p.environments} left{p.moving ? ` (${p.moving} moving now)` : ""}.
          </>
        )}
        {p.state === "done" && <>Drain done: {p.moved === 1 ? "1 environment" : `${p.moved} environments`} moved, nothing left on this host.</>}
        {p.state === "failed" && (
          <>
            Drain failed: {p.moved} moved, {p.environments} left.
          </>
        )}
      </p>
      {total > 0 && (
        <progress max={total} value={p.moved} aria-label={`Environments moved off ${hostName}`}>
          {p.moved} of {total}
        </progress>
      )}
      {p.failed.length > 0 && (
        <ul class="drain-failures">
          {p.failed.map((f) => (
            <li key={f.deployment}>
              {f.app}/{f.environment}: <Link href={`/deployments/${encodeURIComponent(f.deployment)}`}>the move {f.state}</Link>: {f.reason}
            </li>
          ))}
        </ul>
      )}
      {p.state === "running" && p.remaining.some((r) => r.deployment) && (
        <ul class="drain-moving">
          {p.remaining
            .filter((r) => r.deployment)
            .map((r) => (
              <li key={r.deployment!}>
                {r.app}/{r.environment}: <Link href={`/deployments/${encodeURIComponent(r.deployment!)}`}>{r.state ?? "moving"}</Link>
              </li>
            ))}
        </ul>
      )}
      {error && <Alert>{error}</Alert>}
    </section>
  );
}

function RevokeHostDialog({ host, onClose, onRevoked }: { host: FleetHost; onClose: () => void; onRevoked: (h: FleetHost) => void }): JSX.Element {
  const ref = useModal();
  const [typed, setTyped] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const go = async (e: Event) => {
    e.preventDefault();
    if (typed !== host.name) return;
    setBusy(true);
    setError(undefined);
    try {
      onRevoked(await adminApi.revoke(host.id));
      ref.current?.close();
      focusPageHeading();
    } catch (err) {
      setError(messageOf(err));
      setBusy(false);
    }
  };
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="revoke-host-title" aria-describedby="revoke-host-what" onClose={onClose}>
      <h2 id="revoke-host-title">Revoke {host.name}?</h2>
      <form onSubmit={go}>
        <p id="revoke-host-what">
          Its credential is refused at once: the agent is cut off, gets no job, and cannot join again without a new join token. What runs there keeps running
          unmanaged{host.environments.length ? ` (${host.environments.length} environment${host.environments.length === 1 ? "" : "s"}: drain the host first to move them)` : ""}.
        </p>
        <div class="field">
          <label for="revoke-host-confirm">Type {host.name} to confirm</label>
          <input id="revoke-host-confirm" autoComplete="off" spellcheck={false} value={typed} onInput={(e) => setTyped(e.currentTarget.value)} />
        </div>
        {error && <Alert>{error}</Alert>}
        <div class="actions">
          <button type="submit" class="danger" disabled={busy || typed !== host.name}>
            {busy ? "Revoking…" : `Revoke ${host.name}`}
          </button>
          <button type="button" onClick={() => ref.current?.close()}>
            Keep it
          </button>
        </div>
      </form>
    </dialog>
  );
}

/** Join tokens: one-time, shown once with the command that starts an agent with it. The API lists none and revokes none (they expire). */
function JoinTokens(): JSX.Element {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const [created, setCreated] = useState<{ token: string; expiresAt: string } | undefined>(undefined);
  const create = async () => {
    setBusy(true);
    setError(undefined);
    try {
      setCreated(await adminApi.createJoinToken());
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  const command = created ? `SLIPWAY_CONTROL_PLANE=${window.location.hostname}:7701 SLIPWAY_JOIN_TOKEN=${created.token} slipway-agent` : "";
  return (
    <section class="panel" aria-labelledby="join-title">
      <h2 id="join-title">Add a host</h2>
      <p>A join token lets one agent join the fleet, once, until it expires. It is shown once.</p>
      {error && <Alert>{error}</Alert>}
      <button type="button" class="primary" onClick={create} disabled={busy}>
        {busy ? "Creating…" : "Create join token"}
      </button>
      {created && (
        <div class="created secret-once" role="status">
          <p>
            Join token created, valid until {formatTime(created.expiresAt)}. <strong>It is not shown again.</strong> On the new host, run:
          </p>
          <label for="join-command">Command to join</label>
          <div class="copy-row">
            <textarea id="join-command" readOnly rows={3} value={command} aria-describedby="join-command-hint" />
            <CopyButton text={command} what="the command" />
          </div>
          <p class="hint" id="join-command-hint">
            7701 is the control plane's gRPC port unless it sets SLIPWAY_GRPC_PORT; it must listen where the new host reaches it (SLIPWAY_GRPC_HOST, with TLS beyond
            loopback). The agent keeps its credential in its state directory afterwards.
          </p>
          <label for="join-token">Join token</label>
          <div class="copy-row">
            <input id="join-token" readOnly value={created.token} class="mono" />
            <CopyButton text={created.token} what="the join token" />
          </div>
        </div>
      )}
    </section>
  );
}
