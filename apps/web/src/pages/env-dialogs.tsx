import { useState } from "preact/hooks";
import type { JSX } from "preact";
import type { AppView, EnvironmentView } from "../api";
import { settingsApi, settingsErrors } from "../api/settings";
import { messageOf, type FormErrors } from "../errors";
import { isAdmin, principal } from "../session";
import { Alert, Field, focusPageHeading, useModal } from "../ui";


/**
 * Add an environment: a name, a branch, from scratch or based on another environment (its
 * variables, settings and limits are copied, not its domains). The API's refusal goes next to
 * its field; nothing is created then.
 */
export function AddEnvironmentDialog({ app, onClose, onAdded }: { app: AppView; onClose: () => void; onAdded: (env: EnvironmentView) => void }): JSX.Element {
  const ref = useModal();
  const [name, setName] = useState("");
  const [branch, setBranch] = useState("");
  const [based, setBased] = useState(false);
  // Only an admin may base an environment on live (it copies live's secrets): the API refuses others.
  const bases = app.environments.filter((e) => e.name !== "live" || isAdmin(principal.value));
  const [basedOn, setBasedOn] = useState(bases.find((e) => e.name === "test")?.name ?? bases[0]?.name ?? "");
  const [errors, setErrors] = useState<FormErrors>({ fields: {} });
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErrors({ fields: {} });
    try {
      const env = await settingsApi.addEnvironment(app.name, { name: name.trim(), ...(branch.trim() ? { branch: branch.trim() } : {}), ...(based ? { basedOn } : {}) });
      onAdded(env);
      onClose();
    } catch (err) {
      setErrors(settingsErrors(err, ["name", "branch", "basedOn"]));
      setBusy(false);
    }
  };
  const base = app.environments.find((x) => x.name === basedOn);
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="add-env-title" onClose={onClose}>
      <form onSubmit={submit} noValidate>
        <h2 id="add-env-title">Add an environment to {app.name}</h2>
        <Field id="add-env-name" label="Name" error={errors.fields.name} hint="1-20 of a-z, 0-9 and -; it becomes part of its URL">
          {(aria) => <input {...aria} autocomplete="off" spellcheck={false} value={name} onInput={(ev) => {
            setName(ev.currentTarget.value);
            setErrors({ fields: {} });
          }} />}
        </Field>
        <fieldset>
          <legend>Start from</legend>
          <label class="choice">
            <input type="radio" name="add-env-from" checked={!based} onChange={() => setBased(false)} /> Scratch (no variables, the platform's defaults)
          </label>
          <label class="choice">
            <input type="radio" name="add-env-from" checked={based} onChange={() => setBased(true)} /> Based on another environment (its variables, settings and limits; not its domains)
          </label>
          {based && (
            <>
              <label class="sub" for="add-env-base">
                Based on
              </label>
              <select id="add-env-base" class="sub" value={basedOn} onChange={(ev) => setBasedOn(ev.currentTarget.value)} aria-invalid={errors.fields.basedOn ? "true" : undefined}>
                {bases.map((x) => (
                  <option key={x.name} value={x.name}>
                    {x.name}
                  </option>
                ))}
              </select>
              {errors.fields.basedOn && <p class="field-error sub">{errors.fields.basedOn}</p>}
            </>
          )}
        </fieldset>
        <Field id="add-env-branch" label="Branch" error={errors.fields.branch} hint={based && base ? `Empty: ${base.branch}, as ${base.name}` : "Empty: main"}>
          {(aria) => <input {...aria} autocomplete="off" spellcheck={false} value={branch} onInput={(ev) => setBranch(ev.currentTarget.value)} />}
        </Field>
        {errors.form && <Alert>{errors.form}</Alert>}
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Adding…" : "Add environment"}
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}

/** Remove an environment after its name is typed; the API keeps test and live (the card offers no Remove there). */
export function RemoveEnvironmentDialog({ app, env, onClose, onRemoved }: { app: string; env: string; onClose: () => void; onRemoved: () => void }): JSX.Element {
  const ref = useModal();
  const [typed, setTyped] = useState("");
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (typed.trim() !== env) {
      setError(`type ${env} to confirm`);
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await settingsApi.removeEnvironment(app, env);
      onRemoved();
      onClose();
      focusPageHeading();
    } catch (err) {
      setError(messageOf(err));
      setBusy(false);
    }
  };
  const id = `remove-${env}`;
  return (
    <dialog ref={ref} class="dialog" aria-labelledby={`${id}-title`} onClose={onClose}>
      <form onSubmit={submit} noValidate>
        <h2 id={`${id}-title`}>
          Remove {app} / {env}
        </h2>
        <p>Its containers, database, media and backups are deleted. This cannot be undone.</p>
        <Field id={`${id}-confirm`} label={`Type ${env} to confirm`} error={error}>
          {(aria) => <input {...aria} autocomplete="off" spellcheck={false} value={typed} onInput={(ev) => setTyped(ev.currentTarget.value)} />}
        </Field>
        <div class="actions">
          <button type="submit" class="danger" disabled={busy}>
            {busy ? "Removing…" : `Remove ${env}`}
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}
