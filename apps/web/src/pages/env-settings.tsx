import { useEffect, useState } from "preact/hooks";
import type { ComponentChildren, JSX } from "preact";
import { ApiError } from "../api";
import { MASK, settingsApi, settingsErrors, type EnvironmentPatch, type EnvironmentSettingsView } from "../api/settings";
import { parseDotenvLines, parseLabelLines, VARIABLE_NAME } from "../dotenv-lines";
import { EnvNav } from "../env-nav";
import { messageOf, type FormErrors } from "../errors";
import { Link } from "../router";
import { isAdmin, mayChange, principal } from "../session";
import { Alert, Field, Loading, PageTitle, useResource } from "../ui";
import { CertificateState, HttpsFields, httpsForm, httpsPatch, useDomainCertificates, type HttpsForm } from "./env-https";

/** What a saved form says: what was saved, and when it applies. */
interface Saved {
  text: string;
  /** It applies at the next deployment (else at once). */
  pending: boolean;
}

function SavedNote({ saved, app, env }: { saved: Saved | undefined; app: string; env: string }): JSX.Element | null {
  if (!saved) return null;
  return (
    <p class="saved" role="status">
      {saved.text}.{" "}
      {saved.pending ? (
        <>
          It applies at the next deployment: <Link href={`/apps/${encodeURIComponent(app)}/environments/${encodeURIComponent(env)}/pending`}>see what is pending in {env}</Link>.
        </>
      ) : (
        "It applies now."
      )}
    </p>
  );
}

function Section({ id, title, children }: { id: string; title: string; children: ComponentChildren }): JSX.Element {
  return (
    <section class="panel settings-section" aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {children}
    </section>
  );
}

/** An environment's settings: variables (masked), domains, basic auth, and how it is deployed and run. */
export function EnvSettingsPage({ app, env }: { app: string; env: string }): JSX.Element {
  const key = `${app}/${env}`;
  const environment = useResource(() => settingsApi.getEnvironment(app, env), key);
  const who = principal.value;
  const canChange = mayChange(who, app);
  return (
    <>
      <EnvNav app={app} env={env} />
      <PageTitle title={`Settings of ${app}/${env}`}>
        Settings of {app} / {env}
      </PageTitle>
      {!canChange && <p class="muted">You may read these settings; your token may not change them.</p>}
      <Variables app={app} env={env} canChange={canChange} canReveal={isAdmin(who)} />
      {environment.error && <Alert>{environment.error}</Alert>}
      {environment.loading && !environment.data && <Loading what="the environment's settings" />}
      {environment.data && (
        <>
          <Domains app={app} env={env} view={environment.data} canChange={canChange} onChange={(v) => environment.set(() => v)} />
          <BasicAuth app={app} env={env} view={environment.data} canChange={canChange} onChange={(v) => environment.set(() => v)} />
          <Deployment app={app} env={env} view={environment.data} canChange={canChange} onChange={(v) => environment.set(() => v)} />
        </>
      )}
    </>
  );
}

interface PartProps {
  app: string;
  env: string;
  view: EnvironmentSettingsView;
  canChange: boolean;
  onChange: (v: EnvironmentSettingsView) => void;
}

function Variables({ app, env, canChange, canReveal }: { app: string; env: string; canChange: boolean; canReveal: boolean }): JSX.Element {
  const vars = useResource(() => settingsApi.variables(app, env), `${app}/${env}`);
  const [revealed, setRevealed] = useState<Record<string, string>>({});
  const [editing, setEditing] = useState<string | undefined>(undefined);
  const [saved, setSaved] = useState<Saved | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  const reveal = async (name?: string) => {
    setError(undefined);
    try {
      const all = await settingsApi.variables(app, env, true);
      setRevealed((r) => (name ? { ...r, [name]: all[name] ?? "" } : all));
    } catch (err) {
      setError(messageOf(err));
    }
  };
  /** One PATCH; afterwards the list as the API shows it, masked again. */
  const change = async (changes: Record<string, string | null>, text: string): Promise<void> => {
    const list = await settingsApi.patchVariables(app, env, changes);
    vars.set(() => list);
    setRevealed((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !(k in changes))));
    setSaved({ text, pending: true });
  };
  /** Back from the edit form: the focus returns to the row's Edit button. */
  const stopEditing = (name: string) => {
    setEditing(undefined);
    requestAnimationFrame(() => document.getElementById(`var-${name}-edit`)?.focus());
  };
  const remove = async (name: string) => {
    setBusy(true);
    setError(undefined);
    try {
      await change({ [name]: null }, `Removed ${name}`);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  const names = Object.keys(vars.data ?? {}).sort();
  return (
    <Section id="variables-title" title="Variables">
      <p class="hint">Given to the app's containers as environment variables. Values are secret: they are shown masked{canReveal ? " until you reveal them" : ""}.</p>
      {vars.error && <Alert>{vars.error}</Alert>}
      {vars.loading && !vars.data && <Loading what="variables" />}
      {vars.data && names.length === 0 && <p class="muted">No variables of its own yet.</p>}
      {vars.data && names.length > 0 && (
        <>
          {canReveal && (
            <div class="actions">
              <button type="button" onClick={() => reveal()}>
                Reveal all values
              </button>
              {Object.keys(revealed).length > 0 && (
                <button type="button" onClick={() => setRevealed({})}>
                  Hide values
                </button>
              )}
            </div>
          )}
          <ul class="variables" aria-label="Variables">
            {names.map((name) => (
              <li key={name} class="variable">
                {editing === name ? (
                  <VariableForm
                    idBase={`var-edit-${name}`}
                    fixedName={name}
                    onCancel={() => stopEditing(name)}
                    onSave={async (n, v) => {
                      await change({ [n]: v }, `Saved ${n}`);
                      stopEditing(name);
                    }}
                  />
                ) : (
                  <>
                    <code class="variable-name">{name}</code>
                    <code class="variable-value" data-value-of={name}>
                      {name in revealed ? revealed[name] : vars.data![name] === MASK ? "••••••••" : vars.data![name]}
                    </code>
                    <span class="variable-actions">
                      {canReveal && !(name in revealed) && (
                        <button type="button" class="small" onClick={() => reveal(name)} aria-label={`Reveal ${name}`}>
                          Reveal
                        </button>
                      )}
                      {canChange && (
                        <>
                          <button type="button" class="small" id={`var-${name}-edit`} onClick={() => setEditing(name)} aria-label={`Edit ${name}`}>
                            Edit
                          </button>
                          <button type="button" class="small danger" disabled={busy} onClick={() => remove(name)} aria-label={`Remove ${name}`}>
                            Remove
                          </button>
                        </>
                      )}
                    </span>
                  </>
                )}
              </li>
            ))}
          </ul>
        </>
      )}
      {error && <Alert>{error}</Alert>}
      <SavedNote saved={saved} app={app} env={env} />
      {canChange && (
        <>
          <h3>Add a variable</h3>
          <VariableForm idBase="var-new" onSave={(n, v) => change({ [n]: v }, `Saved ${n}`)} />
          <BulkPaste onSave={(map) => change(map, `Saved ${Object.keys(map).length} variable${Object.keys(map).length === 1 ? "" : "s"} (${Object.keys(map).join(", ")})`)} />
        </>
      )}
    </Section>
  );
}

/** Adds a variable (name and value) or, with fixedName, changes one's value. The API's refusal goes next to its field. */
function VariableForm({ idBase, fixedName, onSave, onCancel }: { idBase: string; fixedName?: string; onSave: (name: string, value: string) => Promise<void>; onCancel?: () => void }): JSX.Element {
  const [name, setName] = useState(fixedName ?? "");
  const [value, setValue] = useState("");
  const [errors, setErrors] = useState<FormErrors>({ fields: {} });
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    // Editing one: the value's field takes the focus (the Edit button pressed is gone).
    if (fixedName) document.getElementById(`${idBase}-value`)?.focus();
  }, []);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErrors({ fields: {} });
    const key = name.trim();
    try {
      await onSave(key, value);
      if (!fixedName) {
        setName("");
        setValue("");
      }
    } catch (err) {
      // An invalid name comes back in details under the name itself.
      const named = err instanceof ApiError && (key in err.details || !VARIABLE_NAME.test(key));
      setErrors(named ? { fields: { name: messageOf(err) } } : { fields: {}, form: messageOf(err) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="variable-form" onSubmit={submit} noValidate aria-label={fixedName ? `Edit ${fixedName}` : "Add a variable"}>
      {!fixedName && (
        <Field id={`${idBase}-name`} label="Name" error={errors.fields.name} hint="Letters, digits and _, not starting with a digit">
          {(aria) => <input {...aria} autocomplete="off" spellcheck={false} value={name} onInput={(e) => setName(e.currentTarget.value)} />}
        </Field>
      )}
      <Field id={`${idBase}-value`} label={fixedName ? `New value of ${fixedName}` : "Value"} error={errors.fields.value}>
        {(aria) => <input {...aria} autocomplete="off" spellcheck={false} value={value} onInput={(e) => setValue(e.currentTarget.value)} />}
      </Field>
      {errors.form && <Alert>{errors.form}</Alert>}
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          {fixedName ? `Save ${fixedName}` : "Add variable"}
        </button>
        {onCancel && (
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
        )}
      </div>
    </form>
  );
}

/** Many `KEY=value` lines at once: read in the browser; any line that is not a variable is named and nothing is sent. */
function BulkPaste({ onSave }: { onSave: (vars: Record<string, string>) => Promise<void> }): JSX.Element {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | undefined>(undefined);
  const [lineErrors, setLineErrors] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    const parsed = parseDotenvLines(text);
    setLineErrors(parsed.errors.map((x) => x.message));
    if (parsed.errors.length > 0) return;
    if (Object.keys(parsed.variables).length === 0) {
      setError("there is no KEY=value line to save");
      return;
    }
    setBusy(true);
    try {
      await onSave(parsed.variables);
      setText("");
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  const id = "var-bulk";
  const problem = lineErrors.length > 0 || error !== undefined;
  return (
    <form onSubmit={submit} noValidate aria-label="Paste variables">
      <div class="field">
        <label for={id}>Paste KEY=value lines</label>
        <p class="hint" id={`${id}-hint`}>
          As in a .env file: # comments, blank lines, quotes and an export prefix are fine. Keys that exist are overwritten, the others are kept.
        </p>
        <textarea id={id} rows={5} spellcheck={false} value={text} onInput={(e) => setText(e.currentTarget.value)} aria-describedby={`${id}-hint${problem ? ` ${id}-error` : ""}`} {...(problem ? { "aria-invalid": "true" } : {})} />
        {problem && (
          <div class="field-error" id={`${id}-error`}>
            {lineErrors.length > 0 && <p>Nothing was saved: {lineErrors.length === 1 ? "this line is" : "these lines are"} not KEY=value.</p>}
            {lineErrors.length > 0 && (
              <ul>
                {lineErrors.map((m) => (
                  <li key={m}>{m}</li>
                ))}
              </ul>
            )}
            {error && <p>{error}</p>}
          </div>
        )}
      </div>
      <button type="submit" disabled={busy}>
        Save pasted variables
      </button>
    </form>
  );
}

function Domains({ app, env, view, canChange, onChange }: PartProps): JSX.Element {
  const [hostname, setHostname] = useState("");
  const [errors, setErrors] = useState<FormErrors>({ fields: {} });
  const [saved, setSaved] = useState<Saved | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [defaultDomain, ...custom] = view.domains;
  const certs = useDomainCertificates(app, env, custom);
  const certificateOf = new Map(certs.data?.domains.map((d) => [d.hostname, d]));
  const now = Date.now();
  const run = async (work: () => Promise<EnvironmentSettingsView>, text: string) => {
    setBusy(true);
    setErrors({ fields: {} });
    try {
      onChange(await work());
      setSaved({ text, pending: false });
      return true;
    } catch (err) {
      setErrors(settingsErrors(err, ["hostname"]));
      return false;
    } finally {
      setBusy(false);
    }
  };
  const add = async (e: Event) => {
    e.preventDefault();
    const h = hostname.trim();
    if (await run(() => settingsApi.addDomain(app, env, h), `Added ${h}`)) setHostname("");
  };
  return (
    <Section id="domains-title" title="Domains">
      <p>
        Default: <code>{defaultDomain}</code>
      </p>
      {custom.length === 0 ? (
        <p class="muted">No domain of its own.</p>
      ) : (
        <ul class="domains" aria-label="Custom domains">
          {custom.map((d) => (
            <li key={d}>
              <code>{d}</code>
              <CertificateState hostname={d} certificate={certificateOf.get(d)?.certificate} servedBy={certificateOf.get(d)?.servedBy} now={now} />
              {canChange && (
                <button type="button" class="small danger" disabled={busy} onClick={() => run(() => settingsApi.removeDomain(app, env, d), `Removed ${d}`)} aria-label={`Remove ${d}`}>
                  Remove
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {certs.error && <Alert>The certificates could not be read: {certs.error}</Alert>}
      {canChange && (
        <form onSubmit={add} noValidate aria-label="Add a domain">
          <Field id="domain-new" label="Add a domain" error={errors.fields.hostname} hint="A host name pointing at the platform's ingress; routed at once, unique across the platform">
            {(aria) => <input {...aria} autocomplete="off" spellcheck={false} value={hostname} onInput={(e) => setHostname(e.currentTarget.value)} />}
          </Field>
          {errors.form && <Alert>{errors.form}</Alert>}
          <button type="submit" disabled={busy}>
            Add domain
          </button>
        </form>
      )}
      <SavedNote saved={saved && { text: saved.text, pending: false }} app={app} env={env} />
      {saved && <p class="hint">Its DOMAIN_ALIASES variable follows at the next deployment.</p>}
    </Section>
  );
}

function BasicAuth({ app, env, view, canChange, onChange }: PartProps): JSX.Element {
  const [username, setUsername] = useState(view.basicAuth?.username ?? "");
  const [password, setPassword] = useState("");
  const [errors, setErrors] = useState<FormErrors>({ fields: {} });
  const [saved, setSaved] = useState<Saved | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const save = async (basicAuth: EnvironmentPatch["basicAuth"], text: string) => {
    setBusy(true);
    setErrors({ fields: {} });
    try {
      onChange(await settingsApi.patchEnvironment(app, env, { basicAuth }));
      setSaved({ text, pending: false });
      setPassword("");
    } catch (err) {
      setErrors(settingsErrors(err, ["basicAuth.username", "basicAuth.password", "basicAuth"]));
    } finally {
      setBusy(false);
    }
  };
  const submit = (e: Event) => {
    e.preventDefault();
    void save({ username, password }, `Basic auth on for ${username}`);
  };
  return (
    <Section id="auth-title" title="Basic auth">
      <p>{view.basicAuth ? `On: visitors sign in as ${view.basicAuth.username}.` : "Off: anyone with the URL reaches the app."}</p>
      {canChange && (
        <form onSubmit={submit} noValidate aria-label="Basic auth">
          <Field id="auth-user" label="User name" error={errors.fields["basicAuth.username"]}>
            {(aria) => <input {...aria} autocomplete="off" value={username} onInput={(e) => setUsername(e.currentTarget.value)} />}
          </Field>
          <Field id="auth-password" label="Password" error={errors.fields["basicAuth.password"] ?? errors.fields.basicAuth} hint="At least 8 characters; only its digest is stored">
            {(aria) => <input {...aria} type="password" autocomplete="new-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} />}
          </Field>
          {errors.form && <Alert>{errors.form}</Alert>}
          <div class="actions">
            <button type="submit" disabled={busy}>
              {view.basicAuth ? "Change basic auth" : "Turn basic auth on"}
            </button>
            {view.basicAuth && (
              <button type="button" class="danger" disabled={busy} onClick={() => save(null, "Basic auth off")}>
                Turn basic auth off
              </button>
            )}
          </div>
        </form>
      )}
      <SavedNote saved={saved} app={app} env={env} />
    </Section>
  );
}

const DEPLOY_FIELDS = ["branch", "autoDeploy", "replicas", "sleepAfterSeconds", "hostLabels", "limits.memoryMb", "limits.cpus", "limits.pids", "limits", "https.redirect", "https.hstsMaxAgeSeconds", "https"] as const;

function labelsText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
}

/** One form, one PATCH with only what changed: branch, auto-deploy, replicas, sleep, host labels, limits, HTTPS. */
function Deployment({ app, env, view, canChange, onChange }: PartProps): JSX.Element {
  const [form, setForm] = useState(() => ({
    branch: view.branch,
    autoDeploy: view.autoDeploy,
    replicas: String(view.replicas),
    sleeps: view.sleepAfterSeconds !== null,
    sleepAfter: String(view.sleepAfterSeconds ?? 900),
    hostLabels: labelsText(view.hostLabels),
    memoryMb: String(view.limits.memoryMb),
    cpus: String(view.limits.cpus),
    pids: String(view.limits.pids),
  }));
  const [https, setHttps] = useState<HttpsForm>(() => httpsForm(view.https));
  const [errors, setErrors] = useState<FormErrors>({ fields: {} });
  const [saved, setSaved] = useState<Saved | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const set = (k: keyof typeof form) => (e: Event) => {
    const t = e.currentTarget as HTMLInputElement;
    setForm((f) => ({ ...f, [k]: t.type === "checkbox" ? t.checked : t.value }));
  };
  // Numbers as typed: the API judges them (an empty field is sent as it is and refused with its message).
  const num = (s: string): number => (s.trim() === "" ? NaN : Number(s));

  const submit = async (e: Event) => {
    e.preventDefault();
    setErrors({ fields: {} });
    const patch: EnvironmentPatch = {};
    if (form.branch !== view.branch) patch.branch = form.branch.trim();
    if (form.autoDeploy !== view.autoDeploy) patch.autoDeploy = form.autoDeploy;
    if (form.replicas !== String(view.replicas)) patch.replicas = num(form.replicas);
    const sleep = form.sleeps ? num(form.sleepAfter) : null;
    // null means "never sleeps" to the API (and 0 would be read as null): a ticked box with no
    // seconds is refused here, next to the field, rather than saved as "never".
    if (sleep !== null && !(Number.isInteger(sleep) && sleep >= 1)) {
      setErrors({ fields: { sleepAfterSeconds: "enter whole seconds, at least 1, or untick “Sleep when idle”" } });
      return;
    }
    if (sleep !== view.sleepAfterSeconds) patch.sleepAfterSeconds = sleep;
    const labels = parseLabelLines(form.hostLabels);
    if (typeof labels === "string") {
      setErrors({ fields: { hostLabels: labels } });
      return;
    }
    if (labelsText(labels) !== labelsText(view.hostLabels)) patch.hostLabels = labels;
    const limits: Record<string, number> = {};
    for (const k of ["memoryMb", "cpus", "pids"] as const) if (form[k] !== String(view.limits[k])) limits[k] = num(form[k]);
    if (Object.keys(limits).length > 0) patch.limits = limits;
    const httpsChange = httpsPatch(https, view.https, num);
    if (httpsChange) patch.https = httpsChange;
    const changed = Object.keys(patch);
    if (changed.length === 0) {
      setSaved({ text: "Nothing changed", pending: false });
      return;
    }
    // A field left empty or not a number goes as null (JSON has no NaN): the API refuses it next to the field.
    setBusy(true);
    try {
      onChange(await settingsApi.patchEnvironment(app, env, patch));
      const later = changed.filter((k) => ["branch", "replicas", "hostLabels", "limits"].includes(k));
      setSaved({ text: `Saved ${changed.map((k) => (k === "https" ? "HTTPS" : k)).join(", ")}`, pending: later.length > 0 });
    } catch (err) {
      setErrors(settingsErrors(err, DEPLOY_FIELDS));
    } finally {
      setBusy(false);
    }
  };

  const e = errors.fields;
  const limitsHint = view.limitsDefault ? "The platform's defaults" : "Its own limits (the platform's defaults elsewhere)";
  const dis = !canChange;
  return (
    <Section id="deployment-title" title="Deployment and resources">
      <form onSubmit={submit} noValidate aria-label="Deployment and resources">
        <Field id="set-branch" label="Branch" error={e.branch}>
          {(aria) => <input {...aria} disabled={dis} autocomplete="off" spellcheck={false} value={form.branch} onInput={set("branch")} />}
        </Field>
        <label class="choice">
          <input type="checkbox" disabled={dis} checked={form.autoDeploy} onChange={set("autoDeploy")} aria-invalid={e.autoDeploy ? "true" : undefined} /> Deploy on every push to the branch
        </label>
        {e.autoDeploy && <p class="field-error">{e.autoDeploy}</p>}
        <Field id="set-replicas" label="Replicas" error={e.replicas} hint="Containers serving it (more than 1 only in live)">
          {(aria) => <input {...aria} disabled={dis} type="number" inputMode="numeric" value={form.replicas} onInput={set("replicas")} />}
        </Field>
        <fieldset class="settings-group">
          <legend>Sleep</legend>
          <label class="choice">
            <input type="checkbox" disabled={dis} checked={form.sleeps} onChange={set("sleeps")} /> Sleep when idle (woken by the next request)
          </label>
          {form.sleeps && (
            <Field id="set-sleep" label="Sleep after (seconds without a request)" error={e.sleepAfterSeconds} hint="900 = 15 minutes; live never sleeps">
              {(aria) => <input {...aria} disabled={dis} type="number" inputMode="numeric" value={form.sleepAfter} onInput={set("sleepAfter")} />}
            </Field>
          )}
          {!form.sleeps && e.sleepAfterSeconds && <p class="field-error">{e.sleepAfterSeconds}</p>}
        </fieldset>
        <Field id="set-labels" label="Host labels" error={e.hostLabels} hint="One key=value a line: it runs only on hosts that have these labels">
          {(aria) => <textarea {...aria} disabled={dis} rows={2} spellcheck={false} value={form.hostLabels} onInput={set("hostLabels")} />}
        </Field>
        <fieldset class="settings-group">
          <legend>Limits per container</legend>
          <p class="hint">{limitsHint}</p>
          <Field id="set-memory" label="Memory (MiB)" error={e["limits.memoryMb"] ?? e.limits}>
            {(aria) => <input {...aria} disabled={dis} type="number" inputMode="numeric" value={form.memoryMb} onInput={set("memoryMb")} />}
          </Field>
          <Field id="set-cpus" label="CPU (cores)" error={e["limits.cpus"]}>
            {(aria) => <input {...aria} disabled={dis} type="number" inputMode="decimal" step="0.01" value={form.cpus} onInput={set("cpus")} />}
          </Field>
          <Field id="set-pids" label="Processes" error={e["limits.pids"]}>
            {(aria) => <input {...aria} disabled={dis} type="number" inputMode="numeric" value={form.pids} onInput={set("pids")} />}
          </Field>
        </fieldset>
        <HttpsFields form={https} onChange={setHttps} disabled={dis} errors={e} />
        {errors.form && <Alert>{errors.form}</Alert>}
        {canChange && (
          <button type="submit" class="primary" disabled={busy}>
            Save deployment settings
          </button>
        )}
      </form>
      <SavedNote saved={saved} app={app} env={env} />
    </Section>
  );
}
