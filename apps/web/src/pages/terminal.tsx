import { useEffect, useRef, useState } from "preact/hooks";
import type { JSX } from "preact";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import type { Principal } from "../api";
import { Frame, FrameReader, encodeFrame, shellSocketUrl } from "../api/logs-terminal";
import { EnvNav } from "../env-nav";
import { principal } from "../session";
import { Alert, PageTitle } from "../ui";

/** Why this token may not open a shell here, as the API would refuse it; undefined = it may. */
export function shellRefusal(p: Principal | undefined, app: string, env: string): string | undefined {
  if (!p) return "Sign in to open a terminal.";
  if (p.role === "admin") return undefined;
  if (!p.apps.includes(app)) return `Your token may not act on app ${app}.`;
  if (p.role === "viewer") return "Your token is a viewer's: it reads, and a terminal can change things. Ask an admin or a deployer of this app.";
  if (env === "live") return "A deployer's token opens no terminal in live (it would read every secret there). Ask an admin.";
  return undefined;
}

/**
 * xterm's DOM renderer writes its measured sizes and colours into <style> elements, which the
 * dashboard's Content-Security-Policy (no 'unsafe-inline') refuses. While the terminal is built,
 * a <style> it asks for is an inert element whose text goes into a constructable style sheet
 * adopted by the document instead (CSSOM, which CSP does not govern, as for Preact's styles).
 */
function withAdoptedStyles<T>(build: () => T): T {
  const doc = document;
  const create = doc.createElement;
  doc.createElement = function (this: Document, tag: string, options?: ElementCreationOptions): HTMLElement {
    if (String(tag).toLowerCase() !== "style") return create.call(doc, tag, options);
    const el = create.call(doc, "template");
    const sheet = new CSSStyleSheet();
    let text = "";
    doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
    Object.defineProperty(el, "textContent", {
      get: () => text,
      set: (v: string | null) => {
        text = v ?? "";
        sheet.replaceSync(text);
      },
    });
    const remove = el.remove.bind(el);
    el.remove = () => {
      doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet);
      remove();
    };
    return el;
  } as typeof doc.createElement;
  try {
    return build();
  } finally {
    doc.createElement = create;
  }
}

type Status =
  | { kind: "connecting" }
  | { kind: "open"; container: string }
  | { kind: "ended"; code: number | undefined }
  | { kind: "refused"; message: string }
  | { kind: "lost" };

/**
 * A terminal in a running container of the environment: /bin/sh with a tty over the shell's
 * WebSocket (GET …/shell/ws), sized to the page and resized with it. The session's end is shown
 * with a Reconnect button; a refusal shows the API's message.
 */
export function TerminalPage({ app, env }: { app: string; env: string }): JSX.Element {
  const refusal = shellRefusal(principal.value, app, env);
  const [round, setRound] = useState(0);
  const [status, setStatus] = useState<Status>({ kind: "connecting" });
  const host = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const el = host.current;
    if (refusal || !el) return;
    setStatus({ kind: "connecting" });
    const term = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      scrollback: 5000,
      theme: { background: "#0d1117", foreground: "#e6edf3", cursor: "#e6edf3" },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    withAdoptedStyles(() => term.open(el));
    const refit = () => {
      try {
        fit.fit();
      } catch {
        // not laid out (yet): the next resize fits it
      }
    };
    refit();
    let ended = false;
    const ws = new WebSocket(shellSocketUrl(app, env));
    ws.binaryType = "arraybuffer";
    const send = (frame: Uint8Array<ArrayBuffer>) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(frame);
    };
    const reader = new FrameReader();
    const text = new TextDecoder();
    ws.onopen = () => send(encodeFrame(Frame.Open, JSON.stringify({ tty: true, rows: term.rows, cols: term.cols })));
    ws.onmessage = (ev: MessageEvent<ArrayBuffer>) => {
      for (const f of reader.push(new Uint8Array(ev.data))) {
        if (f.type === Frame.Started) {
          const { container } = JSON.parse(text.decode(f.payload)) as { container: string };
          setStatus({ kind: "open", container });
          term.focus();
        } else if (f.type === Frame.Stdout || f.type === Frame.Stderr) {
          term.write(f.payload);
        } else if (f.type === Frame.Exit) {
          ended = true;
          const { code } = JSON.parse(text.decode(f.payload)) as { code?: number };
          setStatus({ kind: "ended", code });
        } else if (f.type === Frame.Error) {
          ended = true;
          setStatus({ kind: "refused", message: text.decode(f.payload) });
        }
      }
    };
    ws.onclose = () => {
      if (!ended) setStatus({ kind: "lost" });
      ended = true;
    };
    const input = term.onData((d) => send(encodeFrame(Frame.Stdin, d)));
    const resized = term.onResize(({ rows, cols }) => send(encodeFrame(Frame.Resize, JSON.stringify({ rows, cols }))));
    const observer = new ResizeObserver(() => refit());
    observer.observe(el);
    window.addEventListener("resize", refit);
    return () => {
      window.removeEventListener("resize", refit);
      observer.disconnect();
      input.dispose();
      resized.dispose();
      ended = true;
      ws.close();
      term.dispose();
    };
  }, [app, env, round, refusal]);

  const over = status.kind === "ended" || status.kind === "refused" || status.kind === "lost";
  return (
    <>
      <EnvNav app={app} env={env} />
      <PageTitle title={`Terminal · ${app}/${env}`}>Terminal</PageTitle>
      {refusal ? (
        <p class="panel">{refusal}</p>
      ) : (
        <>
          <p class="muted">A shell (/bin/sh) in a running container of {env}. What you run there is recorded in the activity feed.</p>
          <div class="term-status" role="status">
            {status.kind === "connecting" && "Connecting…"}
            {status.kind === "open" && `Connected to ${status.container}`}
            {status.kind === "ended" && `The session ended (exit ${status.code ?? "unknown"}).`}
            {status.kind === "lost" && "The connection was lost or refused."}
          </div>
          {status.kind === "refused" && <Alert>{status.message}</Alert>}
          {over && (
            <div class="actions">
              <button type="button" class="primary" onClick={() => setRound((r) => r + 1)}>
                Reconnect
              </button>
            </div>
          )}
          <div class="term" ref={host} aria-label={`Terminal of ${app}/${env}`} role="region" />
        </>
      )}
    </>
  );
}
