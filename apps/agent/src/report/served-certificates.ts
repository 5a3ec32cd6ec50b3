import type { ServedCertificate } from "@slipway/proto";
import type { IngressTls } from "../ingress/ingress.js";

/** What a heartbeat carries of the served certificates (HeartbeatRequest fields 11 and 12). */
export interface ServedCertificatesPart {
  servedCertificates: ServedCertificate[];
  servedCertificatesReported: boolean;
}

const NOT_REPORTED: ServedCertificatesPart = Object.freeze({ servedCertificates: [], servedCertificatesReported: false });

/**
 * Tells the control plane which certificates this host's ingress serves (issue 15: "reports the
 * serial and expiry it serves"), as HAProxy reports them: read again when the store changed or
 * `refreshMs` passed (a restarted proxy, a file changed by hand), and sent only when different
 * from what the last answered beat carried, or after the stream was reopened. Keys never leave.
 */
export class ServedCertificatesReport {
  private listed?: { at: number; generation: number; part: ServedCertificate[]; fingerprint: string };
  private answered?: string;
  private inFlight?: string;

  constructor(
    private readonly tls: Pick<IngressTls, "list" | "generation"> | undefined,
    private readonly opts: { refreshMs: number; now?: () => number },
  ) {}

  /** The heartbeat's part: the list when it changed since the last answered beat, else nothing. */
  async take(): Promise<ServedCertificatesPart> {
    if (!this.tls) return NOT_REPORTED;
    const now = this.opts.now?.() ?? Date.now();
    const l = this.listed;
    if (!l || l.generation !== this.tls.generation || now - l.at >= this.opts.refreshMs) {
      const generation = this.tls.generation;
      const part = (await this.tls.list())
        .map((c) => ({ hostnames: [...c.hostnames].sort(), serial: c.serial, notAfter: c.notAfter }))
        .sort((a, b) => (a.hostnames.join(",") < b.hostnames.join(",") ? -1 : 1));
      this.listed = { at: now, generation, part, fingerprint: JSON.stringify(part) };
    }
    const { part, fingerprint } = this.listed!;
    if (fingerprint === this.answered) return NOT_REPORTED;
    this.inFlight = fingerprint;
    return { servedCertificates: part, servedCertificatesReported: true };
  }

  /** A beat was answered: what it carried is known to the control plane. */
  answeredBeat(): void {
    if (this.inFlight !== undefined) this.answered = this.inFlight;
    this.inFlight = undefined;
  }

  /** The stream was reopened: send the list again. */
  reset(): void {
    this.answered = undefined;
    this.inFlight = undefined;
  }
}
