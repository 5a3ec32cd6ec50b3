import net from "node:net";

/**
 * A TCP proxy in front of a server whose network the test can cut: `cut()` drops every open
 * connection (both ways at once, as a pulled cable would look to the browser once it notices) and
 * refuses new ones until `restore()`. Loopback only; `close()` stops it (call it in afterAll).
 */
export class CutProxy {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private down = false;
  /** Connections refused while cut: the test can tell the browser tried again meanwhile. */
  refused = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<string> {
    this.server = net.createServer((client) => {
      if (this.down) {
        this.refused++;
        client.resetAndDestroy();
        return;
      }
      const upstream = net.connect(this.target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => undefined); // a cut connection errors on both sides: expected
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(0, "127.0.0.1", resolve);
    });
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  /** Drops every connection now and refuses new ones until restore(). */
  cut(): void {
    this.down = true;
    for (const s of this.sockets) s.resetAndDestroy();
  }

  restore(): void {
    this.down = false;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
