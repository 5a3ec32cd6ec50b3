import { useEffect, useRef, useState } from "preact/hooks";

export type StreamState = "connecting" | "live" | "reconnecting" | "closed";

type Handlers = Record<string, (ev: MessageEvent<string>) => void>;

/**
 * Subscribes to a Server-Sent Events stream of the API while the component is shown. The browser
 * reconnects by itself after a drop and sends Last-Event-ID, so the server resumes where the
 * stream stopped; nothing here polls. `handlers` may change between renders (the latest ones are
 * called); `url` undefined = no subscription. A handler may call `close()` (e.g. on a final event)
 * so the browser does not reconnect to a stream that has ended.
 */
export function useEventStream(url: string | undefined, handlers: Handlers): { state: StreamState; close: () => void } {
  const latest = useRef(handlers);
  latest.current = handlers;
  const source = useRef<EventSource | undefined>(undefined);
  const [state, setState] = useState<StreamState>("connecting");
  const names = Object.keys(handlers).sort().join(",");

  useEffect(() => {
    if (!url) return;
    const es = new EventSource(url);
    source.current = es;
    setState("connecting");
    es.onopen = () => setState("live");
    es.onerror = () => setState(es.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
    for (const name of names.split(",").filter(Boolean)) {
      es.addEventListener(name, (ev) => latest.current[name]?.(ev as MessageEvent<string>));
    }
    return () => {
      es.close();
      source.current = undefined;
    };
  }, [url, names]);

  return {
    state,
    close: () => {
      source.current?.close();
      setState("closed");
    },
  };
}
