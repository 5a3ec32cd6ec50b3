/**
 * Runs `pass` again and again with a pause of `interval()` between the end of
 * one pass and the start of the next: one pass at a time, a failing pass only
 * delays the next one, `stop()` waits for a pass in progress. Timers are
 * unref'd so a loop never keeps the process alive.
 */
export class PeriodicTask {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private halted = true;

  constructor(
    private readonly pass: () => Promise<unknown>,
    private readonly interval: () => number,
  ) {}

  /** True before start and after stop: a long pass checks it to end early. */
  get stopped(): boolean {
    return this.halted;
  }

  start(): void {
    this.halted = false;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.halted = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.halted) return;
    this.timer = setTimeout(() => {
      this.running = this.pass()
        .then(() => undefined, () => undefined)
        .finally(() => {
          this.running = undefined;
          this.schedule();
        });
    }, this.interval());
    this.timer.unref();
  }
}
