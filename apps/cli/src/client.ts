/** What the API answered when it refused a request (its error body: `{error: {code, message, details}}`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** The ApiError of a refusal's status and body text (the API's error body, or whatever the server sent). */
export function apiErrorOf(status: number, text: string): ApiError {
  let parsed: { error?: { code?: string; message?: string; details?: unknown } } | undefined;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return new ApiError(status, parsed?.error?.code ?? `http_${status}`, parsed?.error?.message ?? (text.trim() || `HTTP ${status}`), parsed?.error?.details);
}

/** The control plane could not be reached at all. */
export class UnreachableError extends Error {
  constructor(url: string, cause: unknown) {
    const inner = (cause as { cause?: { code?: string; message?: string } }).cause;
    super(`cannot reach the control plane at ${url}: ${inner?.code ?? inner?.message ?? (cause as Error).message}`);
    this.name = "UnreachableError";
  }
}

/** A small client of the REST API (`/v1`), with the bearer token of `slipway login`. */
export class Client {
  constructor(
    readonly baseUrl: string,
    readonly token: string,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  private async request(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const url = `${this.baseUrl.replace(/\/+$/, "")}/v1${path}`;
    let res: Response;
    try {
      res = await this.fetchImpl(url, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if ((err as Error).name === "AbortError") throw err;
      throw new UnreachableError(this.baseUrl, err);
    }
    if (res.status >= 400) throw apiErrorOf(res.status, await res.text());
    return res;
  }

  async call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body);
    const text = await res.text();
    return (text && res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text) as T;
  }

  /** The answer to a GET as it comes (a download); an API refusal throws ApiError. */
  open(path: string, signal?: AbortSignal): Promise<Response> {
    return this.request("GET", path, undefined, signal);
  }

  /** Streams a text/plain answer (logs), chunk by chunk, until the server ends it or `signal` aborts. */
  async stream(path: string, onText: (text: string) => void, signal?: AbortSignal): Promise<void> {
    const res = await this.request("GET", path, undefined, signal);
    if (!res.body) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) onText(decoder.decode(chunk, { stream: true }));
    } catch (err) {
      if ((err as Error).name !== "AbortError" && !signal?.aborted) throw err;
    }
    const rest = decoder.decode();
    if (rest) onText(rest);
  }
}
