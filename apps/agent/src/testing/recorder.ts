// Call recording and failure injection shared by the fakes in fakes.ts.

export interface Call<M extends string> {
  method: M;
  args: unknown[];
}

interface Injected {
  error: unknown;
  skip: number;
  left: number;
}

/**
 * Records every call and throws injected failures. A hook runs inside the call
 * (after recording, before the fake acts): it can change the world mid-step,
 * e.g. request a cancel, or throw.
 */
export class Recorder<M extends string> {
  readonly calls: Call<M>[] = [];
  private readonly failures = new Map<M, Injected[]>();
  private readonly hooks = new Map<M, (...args: unknown[]) => void | Promise<void>>();

  /** The next `times` (default 1) calls of `method`, after skipping `after` (default 0), throw `error`; the state stays as it was. */
  fail(method: M, error: unknown, opts: { after?: number; times?: number } = {}): this {
    const q = this.failures.get(method) ?? [];
    q.push({ error, skip: opts.after ?? 0, left: opts.times ?? 1 });
    this.failures.set(method, q);
    return this;
  }

  /** Runs `fn` with the arguments of every later call of `method`. */
  on(method: M, fn: (...args: unknown[]) => void | Promise<void>): this {
    this.hooks.set(method, fn);
    return this;
  }

  /** The arguments of each call of `method`, in order. */
  callsOf(method: M): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  /** The methods called, in order. */
  methods(): M[] {
    return this.calls.map((c) => c.method);
  }

  protected enterSync(method: M, args: unknown[]): void {
    this.calls.push({ method, args });
    const q = this.failures.get(method);
    const f = q?.find((x) => x.left > 0);
    if (f) {
      if (f.skip > 0) f.skip--;
      else {
        f.left--;
        throw f.error;
      }
    }
  }

  protected async enter(method: M, args: unknown[]): Promise<void> {
    this.enterSync(method, args);
    await this.hooks.get(method)?.(...args);
  }
}
