import { useState } from "preact/hooks";
import type { JSX } from "preact";
import { DEFAULT_APP_SETTINGS, settingsApi, settingsErrors, type AppSettings, type ReleaseCommand, type StartupProbe } from "../api/settings";
import { type FormErrors } from "../errors";
import { Link } from "../router";
import { isAdmin, mayChange, principal } from "../session";
import { Alert, Field, Loading, PageTitle, useResource } from "../ui";

/** An app's settings: release commands in order, web port, startup probe (defaults shown), repository. */
export function AppSettingsPage({ app }: { app: string }): JSX.Element {
  const data = useResource(() => settingsApi.getApp(app), app);
  const who = principal.value;
  return (
    <>
      <nav aria-label="Breadcrumb" class="crumbs">
        <Link href="/">Apps</Link> <span aria-hidden="true">/</span> <Link href={`/apps/${encodeURIComponent(app)}`}>{app}</Link> <span aria-hidden="true">/</span> Settings
      </nav>
      <PageTitle title={`Settings of ${app}`}>Settings of {app}</PageTitle>
      {data.error && <Alert>{data.error}</Alert>}
      {data.loading && !data.data && <Loading what="the app's settings" />}
      {data.data && (
        <>
          <SettingsForm key={app} app={app} settings={data.data.settings} canChange={mayChange(who, app)} />
          <Repository app={app} url={data.data.repository} canChange={isAdmin(who)} />
        </>
      )}
    </>
  );
}

const PROBE_FIELDS: Array<{ key: keyof StartupProbe; label: string; hint: string; numeric: boolean }> = [
  { key: "path", label: "Probe path", hint: "The path requested until the new containers answer", numeric: false },
  { key: "acceptedStatuses", label: "Accepted statuses", hint: 'Statuses that count as started, e.g. "200-499" or "200,301-302"', numeric: false },
  { key: "startupTimeoutSeconds", label: "Startup timeout (seconds)", hint: "How long the containers may take to start", numeric: true },
  { key: "probeTimeoutSeconds", label: "Probe timeout (seconds)", hint: "How long one probe request may take", numeric: true },
  { key: "maxRetries", label: "Maximum probe attempts", hint: "Attempts before the deployment fails", numeric: true },
];

type Row = ReleaseCommand & { id: number };
let rowIds = 0;

function SettingsForm({ app, settings, canChange }: { app: string; settings: AppSettings; canChange: boolean }): JSX.Element {
  const [rows, setRows] = useState<Row[]>(() => settings.releaseCommands.map((c) => ({ ...c, id: ++rowIds })));
  const [timeout, setTimeoutText] = useState(String(settings.releaseCommandTimeoutSeconds));
  const [webPort, setWebPort] = useState(settings.webPort === null ? "" : String(settings.webPort));
  const [probe, setProbe] = useState<Record<keyof StartupProbe, string>>(() => Object.fromEntries(PROBE_FIELDS.map((f) => [f.key, String(settings.startupProbe[f.key])])) as Record<keyof StartupProbe, string>);
  const [errors, setErrors] = useState<FormErrors>({ fields: {} });
  const [saved, setSaved] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [announce, setAnnounce] = useState("");
  const dis = !canChange;

  const move = (i: number, by: -1 | 1) => {
    const j = i + by;
    if (j < 0 || j >= rows.length) return;
    const next = rows.slice();
    [next[i], next[j]] = [next[j]!, next[i]!];
    setRows(next);
    setAnnounce(`${next[j]!.label || "Command"} moved to position ${j + 1} of ${next.length}`);
    // The button pressed may vanish at the list's end: keep the focus on the row's own button.
    const id = next[j]!.id;
    requestAnimationFrame(() => (document.getElementById(`rc-${id}-${by < 0 ? "up" : "down"}`) ?? document.getElementById(`rc-${id}-${by < 0 ? "down" : "up"}`))?.focus());
  };
  const update = (i: number, k: "label" | "command", v: string) => setRows((r) => r.map((row, n) => (n === i ? { ...row, [k]: v } : row)));

  const submit = async (e: Event) => {
    e.preventDefault();
    setErrors({ fields: {} });
    setSaved(undefined);
    const num = (s: string) => (s.trim() === "" ? null : Number(s));
    const patch: Partial<AppSettings> = {
      releaseCommands: rows.map(({ label, command }) => ({ label, command })),
      releaseCommandTimeoutSeconds: num(timeout) as number,
      webPort: num(webPort),
      startupProbe: Object.fromEntries(PROBE_FIELDS.map((f) => [f.key, f.numeric ? num(probe[f.key]) : probe[f.key]])) as unknown as StartupProbe,
    };
    setBusy(true);
    try {
      await settingsApi.patchAppSettings(app, patch);
      setSaved("Saved the app's settings");
    } catch (err) {
      const fields = ["webPort", "releaseCommandTimeoutSeconds", ...PROBE_FIELDS.map((f) => `startupProbe.${f.key}`), ...rows.flatMap((_, i) => [`releaseCommands.${i}.label`, `releaseCommands.${i}.command`]), "releaseCommands"];
      setErrors(settingsErrors(err, fields));
    } finally {
      setBusy(false);
    }
  };
  const e = errors.fields;

  return (
    <form onSubmit={submit} noValidate aria-label="App settings" class="app-settings">
      <section class="panel settings-section" aria-labelledby="release-title">
        <h2 id="release-title">Release commands</h2>
        <p class="hint">Run in this order in a one-off container of the new image before traffic switches (migrations, for example); one failing stops the deployment.</p>
        {rows.length === 0 ? (
          <p class="muted">None.</p>
        ) : (
          <ol class="release-commands" aria-label="Release commands">
            {rows.map((row, i) => (
              <li key={row.id} class="release-command">
                <Field id={`rc-${row.id}-label`} label={`Label of command ${i + 1}`} error={e[`releaseCommands.${i}.label`]}>
                  {(aria) => <input {...aria} disabled={dis} value={row.label} onInput={(ev) => update(i, "label", ev.currentTarget.value)} />}
                </Field>
                <Field id={`rc-${row.id}-command`} label={`Command ${i + 1}`} error={e[`releaseCommands.${i}.command`]}>
                  {(aria) => <input {...aria} disabled={dis} class="mono" spellcheck={false} autocomplete="off" value={row.command} onInput={(ev) => update(i, "command", ev.currentTarget.value)} />}
                </Field>
                {canChange && (
                  <div class="actions">
                    {i > 0 && (
                      <button type="button" class="small" id={`rc-${row.id}-up`} onClick={() => move(i, -1)} aria-label={`Move up ${row.label || `command ${i + 1}`}`}>
                        Move up
                      </button>
                    )}
                    {i < rows.length - 1 && (
                      <button type="button" class="small" id={`rc-${row.id}-down`} onClick={() => move(i, 1)} aria-label={`Move down ${row.label || `command ${i + 1}`}`}>
                        Move down
                      </button>
                    )}
                    <button type="button" class="small danger" onClick={() => setRows((r) => r.filter((_, n) => n !== i))} aria-label={`Remove ${row.label || `command ${i + 1}`}`}>
                      Remove
                    </button>
                  </div>
                )}
              </li>
            ))}
          </ol>
        )}
        <p class="visually-hidden" role="status">
          {announce}
        </p>
        {e.releaseCommands && <p class="field-error">{e.releaseCommands}</p>}
        {canChange && (
          <button
            type="button"
            onClick={() => {
              const row = { label: "", command: "", id: ++rowIds };
              setRows((r) => [...r, row]);
              requestAnimationFrame(() => document.getElementById(`rc-${row.id}-label`)?.focus());
            }}
          >
            Add release command
          </button>
        )}
        <Field id="rc-timeout" label="Timeout of each release command (seconds)" error={e.releaseCommandTimeoutSeconds} hint={`Default ${DEFAULT_APP_SETTINGS.releaseCommandTimeoutSeconds}`}>
          {(aria) => <input {...aria} disabled={dis} type="number" inputMode="numeric" value={timeout} onInput={(ev) => setTimeoutText(ev.currentTarget.value)} />}
        </Field>
      </section>
      <section class="panel settings-section" aria-labelledby="web-title">
        <h2 id="web-title">Web process and startup probe</h2>
        <Field id="web-port" label="Web port" error={e.webPort} hint="Empty by default: the port the image EXPOSEs">
          {(aria) => <input {...aria} disabled={dis} type="number" inputMode="numeric" value={webPort} onInput={(ev) => setWebPort(ev.currentTarget.value)} />}
        </Field>
        {PROBE_FIELDS.map((f) => (
          <Field key={f.key} id={`probe-${f.key}`} label={f.label} error={e[`startupProbe.${f.key}`]} hint={`${f.hint}. Default ${String(DEFAULT_APP_SETTINGS.startupProbe[f.key])}`}>
            {(aria) => <input {...aria} disabled={dis} {...(f.numeric ? { type: "number", inputMode: "numeric" as const } : { spellcheck: false, autocomplete: "off" })} value={probe[f.key]} onInput={(ev) => setProbe((p) => ({ ...p, [f.key]: ev.currentTarget.value }))} />}
          </Field>
        ))}
      </section>
      {errors.form && <Alert>{errors.form}</Alert>}
      {canChange && (
        <button type="submit" class="primary" disabled={busy}>
          Save app settings
        </button>
      )}
      {saved && (
        <p class="saved" role="status">
          {saved}. They apply at each environment's next deployment (its Pending page lists them).
        </p>
      )}
    </form>
  );
}

function Repository({ app, url, canChange }: { app: string; url: string; canChange: boolean }): JSX.Element {
  const [value, setValue] = useState(url);
  const [current, setCurrent] = useState(url);
  const [errors, setErrors] = useState<FormErrors>({ fields: {} });
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setErrors({ fields: {} });
    setSaved(false);
    setBusy(true);
    try {
      const next = await settingsApi.setRepository(app, value.trim());
      setCurrent(next.repository);
      setValue(next.repository);
      setSaved(true);
    } catch (err) {
      setErrors(settingsErrors(err, ["url"]));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="panel settings-section" aria-labelledby="repo-title">
      <h2 id="repo-title">Repository</h2>
      {!canChange ? (
        <p class="repo">{current}</p>
      ) : (
        <form onSubmit={submit} noValidate aria-label="Repository">
          <Field id="repo-url" label="Repository URL" error={errors.fields.url} hint="Changing it makes the next deployments build from the new repository">
            {(aria) => <input {...aria} spellcheck={false} autocomplete="off" value={value} onInput={(ev) => setValue(ev.currentTarget.value)} />}
          </Field>
          {errors.form && <Alert>{errors.form}</Alert>}
          <button type="submit" disabled={busy}>
            Save repository
          </button>
          {saved && (
            <p class="saved" role="status">
              Saved: {current}
            </p>
          )}
        </form>
      )}
    </section>
  );
}
