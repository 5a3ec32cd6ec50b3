import { useState } from "preact/hooks";
import type { JSX } from "preact";
import { api, type AppView, type DeployInput, type EnvironmentView } from "../api";
import { messageOf } from "../errors";
import { navigate } from "../router";
import { useModal } from "../ui";

type Source = "build" | "promote";

/**
 * Deploy with options, in a modal <dialog> (the browser keeps the focus inside and Escape closes
 * it): build auto/force/reuse, or promote another environment's image; the content (database,
 * media) of another environment copied too, after typing `<app>/<env>`. A refusal shows the API's
 * message in the dialog; an accepted deployment opens its page.
 */
export function DeployDialog({ app, env, onClose }: { app: AppView; env: EnvironmentView; onClose: () => void }): JSX.Element {
  const ref = useModal();
  const others = app.environments.filter((e) => e.name !== env.name).map((e) => e.name);
  const [source, setSource] = useState<Source>("build");
  const [build, setBuild] = useState<"auto" | "force" | "reuse">("auto");
  const [promoteFrom, setPromoteFrom] = useState(others[0] ?? "");
  const [withContent, setWithContent] = useState(false);
  const [contentFrom, setContentFrom] = useState(others[0] ?? "");
  const [database, setDatabase] = useState(true);
  const [media, setMedia] = useState(true);
  const [confirm, setConfirm] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const target = `${app.name}/${env.name}`;
  const id = `deploy-${env.name}`;

  const confirmed = !withContent || confirm.trim() === target;
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!confirmed) {
      setError(`type ${target} to confirm that its content is replaced`);
      return;
    }
    const input: DeployInput = source === "promote" ? { promoteFrom } : { build };
    if (withContent) input.content = { from: contentFrom, database, media, confirm: true };
    setBusy(true);
    setError(undefined);
    try {
      const d = await api.deploy(app.name, env.name, input);
      onClose();
      navigate(`/deployments/${encodeURIComponent(d.id)}`);
    } catch (err) {
      setError(messageOf(err));
      setBusy(false);
    }
  };

  return (
    <dialog ref={ref} class="dialog" aria-labelledby={`${id}-title`} onClose={onClose}>
      <form onSubmit={submit} noValidate>
        <h2 id={`${id}-title`}>Deploy {target} with options</h2>
        <fieldset>
          <legend>What to deploy</legend>
          <label class="choice">
            <input type="radio" name={`${id}-source`} checked={source === "build"} onChange={() => setSource("build")} /> Branch {env.branch}
          </label>
          <label class="sub" for={`${id}-build`}>
            Build
          </label>
          <select id={`${id}-build`} class="sub" value={build} disabled={source !== "build"} onChange={(e) => setBuild(e.currentTarget.value as typeof build)}>
            <option value="auto">auto: reuse an image of the same commit, else build</option>
            <option value="force">force: always build</option>
            <option value="reuse">reuse: the image it runs now, with today's settings</option>
          </select>
          {others.length > 0 && (
            <>
              <label class="choice">
                <input type="radio" name={`${id}-source`} checked={source === "promote"} onChange={() => setSource("promote")} /> The image another environment runs
              </label>
              <label class="sub" for={`${id}-promote`}>
                Promote from
              </label>
              <select id={`${id}-promote`} class="sub" value={promoteFrom} disabled={source !== "promote"} onChange={(e) => setPromoteFrom(e.currentTarget.value)}>
                {others.map((o) => (
                  <option key={o} value={o}>
                    {o}
                  </option>
                ))}
              </select>
            </>
          )}
        </fieldset>
        {others.length > 0 && (
          <fieldset>
            <legend>Content</legend>
            <label class="choice">
              <input type="checkbox" checked={withContent} onChange={(e) => setWithContent(e.currentTarget.checked)} /> Replace the content of {target} with another environment's
            </label>
            {withContent && (
              <>
                <label class="sub" for={`${id}-content`}>
                  Content from
                </label>
                <select id={`${id}-content`} class="sub" value={contentFrom} onChange={(e) => setContentFrom(e.currentTarget.value)}>
                  {others.map((o) => (
                    <option key={o} value={o}>
                      {o}
                    </option>
                  ))}
                </select>
                <label class="choice sub">
                  <input type="checkbox" checked={database} onChange={(e) => setDatabase(e.currentTarget.checked)} /> Database
                </label>
                <label class="choice sub">
                  <input type="checkbox" checked={media} onChange={(e) => setMedia(e.currentTarget.checked)} /> Media
                </label>
                <label class="sub" for={`${id}-confirm`}>
                  Type {target} to confirm (a safety backup is taken first)
                </label>
                <input id={`${id}-confirm`} class="sub" autocomplete="off" spellcheck={false} value={confirm} onInput={(e) => setConfirm(e.currentTarget.value)} />
              </>
            )}
          </fieldset>
        )}
        {error && (
          <p class="alert" role="alert">
            {error}
          </p>
        )}
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Deploying…" : "Deploy"}
          </button>
          <button type="button" onClick={() => ref.current?.close()}>
            Close
          </button>
        </div>
      </form>
    </dialog>
  );
}
