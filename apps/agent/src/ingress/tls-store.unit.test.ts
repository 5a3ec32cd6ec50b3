// TlsStore's input checks and runtime conversation, with a small fake of HAProxy's admin socket.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { payloadProblem } from "./haproxy-runtime.js";
import { X509Certificate } from "node:crypto";
import { ensureTlsFiles, normalizeSerial, parseCrtList, parseShowSslCert, TlsStore, validateCertificate, type TlsRuntime } from "./tls-store.js";

const run = promisify(execFile);

interface Leaf {
  certPem: string;
  keyPem: string;
}

/** Records commands; answers like HAProxy 2.6 unless `refuse` names a command prefix. */
class FakeRuntime implements TlsRuntime {
  readonly calls: string[] = [];
  readonly payloads: string[] = [];
  serials = new Map<string, string>();
  refuse: string | undefined;
  private pending = new Map<string, string>();

  async command(cmd: string): Promise<string> {
    this.calls.push(cmd);
    if (this.refuse && cmd.startsWith(this.refuse)) return "Refused for the test.\n";
    const [verb, , , file] = cmd.split(" ");
    if (cmd.startsWith("new ssl cert")) return `New empty certificate store '${file}'!\n`;
    if (cmd.startsWith("commit ssl cert")) {
      this.serials.set(file!, this.pending.get(file!)!);
      return `Committing ${file}\nSuccess!\n`;
    }
    if (cmd.startsWith("show ssl cert")) {
      const serial = this.serials.get(file!);
      return serial ? `Filename: ${file}\nSerial: ${serial}\nnotAfter: Jan  1 00:00:00 2099 GMT\n` : "Can't display the certificate: Not found!\n";
    }
    if (cmd.startsWith("del ssl crt-list")) return "Entry deleted in crtlist!\n";
    if (cmd.startsWith("del ssl cert")) return "Certificate deleted!\n";
    return verb === "abort" ? "Transaction aborted!\n" : "Unknown command.\n";
  }

  async commandWithPayload(cmd: string, payload: string): Promise<string> {
    this.calls.push(`${cmd} <<`);
    this.payloads.push(payload);
    if (this.refuse && cmd.startsWith(this.refuse)) return "Refused for the test.\n";
    if (cmd.startsWith("set ssl cert")) {
      const { X509Certificate } = await import("node:crypto");
      this.pending.set(cmd.split(" ")[3]!, normalizeSerial(new X509Certificate(payload).serialNumber));
      return `Transaction created for certificate ${cmd.split(" ")[3]}!\n`;
    }
    return "Inserting certificate in crt-list.\nSuccess!\n";
  }
}

describe("TlsStore", () => {
  let dir: string;
  let a1: Leaf;
  let a2: Leaf;
  let b: Leaf;
  let ab: Leaf;

  async function leaf(sans: string[], serial: string): Promise<Leaf> {
    const base = path.join(dir, `leaf-${serial}`);
    await run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-set_serial", `0x${serial}`, "-subj", `/CN=${sans[0]}`,
      "-addext", `subjectAltName=${sans.map((s) => `DNS:${s}`).join(",")}`, "-keyout", `${base}.key`, "-out", `${base}.crt`]);
    return { certPem: await fs.readFile(`${base}.crt`, "utf8"), keyPem: await fs.readFile(`${base}.key`, "utf8") };
  }

  function store(runtime: FakeRuntime, name: string): TlsStore {
    const d = path.join(dir, name);
    return new TlsStore({ certsDir: d, crtList: path.join(d, "crt-list.txt"), defaultCert: path.join(d, "_default.pem"), runtime });
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "slw-tls-unit-"));
    [a1, a2, b, ab] = await Promise.all([leaf(["a.test"], "A1"), leaf(["a.test"], "A2"), leaf(["b.test"], "B1"), leaf(["a.test", "*.b.test"], "AB")]);
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("validates before anything is touched", () => {
    expect(() => validateCertificate({ hostnames: [], ...a1 })).toThrow(/at least one host name/);
    expect(() => validateCertificate({ hostnames: ["A_B.test"], ...a1 })).toThrow(/invalid host name/);
    expect(() => validateCertificate({ hostnames: ["a.test"], certPem: "garbage", keyPem: a1.keyPem })).toThrow(/not PEM/);
    expect(() => validateCertificate({ hostnames: ["a.test"], certPem: a1.certPem, keyPem: "garbage" })).toThrow(/not an unencrypted PEM private key/);
    expect(() => validateCertificate({ hostnames: ["a.test"], certPem: a1.certPem, keyPem: b.keyPem })).toThrow(/does not belong/);
    expect(() => validateCertificate({ hostnames: ["a.test"], ...b })).toThrow(/do not cover 'a.test'/);
    expect(() => validateCertificate({ hostnames: ["a.test"], ...a1 }, new Date(Date.now() + 5 * 86_400_000))).toThrow(/expired/);
    // Wildcard SANs cover one label; the CN is never used.
    expect(validateCertificate({ hostnames: ["x.b.test", "a.test"], ...ab }).hostnames).toEqual(["a.test", "x.b.test"]);
    expect(() => validateCertificate({ hostnames: ["b.test"], ...ab })).toThrow(/do not cover 'b.test'/);
  });

  it("normalises to chain + PKCS#8 key with no empty line (HAProxy would end the payload there)", () => {
    const padded = { hostnames: ["a.test"], certPem: `\n${a1.certPem}\n\n`, keyPem: `${a1.keyPem}\n\n` };
    const v = validateCertificate(padded);
    expect(payloadProblem(v.pem)).toBeUndefined();
    expect(v.pem).toMatch(/^-----BEGIN CERTIFICATE-----[\s\S]+-----BEGIN PRIVATE KEY-----[\s\S]+-----END PRIVATE KEY-----\n$/);
    expect(v.serial).toBe("A1");
    expect(payloadProblem("a\n\nb")).toMatch(/empty line/);
    expect(payloadProblem("")).toMatch(/empty/);
  });

  it("adds a new certificate: new, set, commit, then add to the crt-list; writes the file (0600) and the list first", async () => {
    const rt = new FakeRuntime();
    const s = store(rt, "new");
    const got = await s.install({ hostnames: ["a.test"], ...a1 });
    const file = path.join(dir, "new", "a.test.pem");
    const list = path.join(dir, "new", "crt-list.txt");
    expect(rt.calls).toEqual([`new ssl cert ${file}`, `set ssl cert ${file} <<`, `commit ssl cert ${file}`, `add ssl crt-list ${list} <<`, `show ssl cert ${file}`]);
    expect(rt.payloads[1]).toBe(`${file} a.test`);
    expect(got).toMatchObject({ name: "a.test", hostnames: ["a.test"], serial: "A1" });
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect(parseCrtList(await fs.readFile(list, "utf8"))).toEqual([{ path: path.join(dir, "new", "_default.pem"), hostnames: [] }, { path: file, hostnames: ["a.test"] }]);
    // A renewal: set + commit only.
    rt.calls.length = 0;
    expect((await s.install({ hostnames: ["a.test"], ...a2 })).serial).toBe("A2");
    expect(rt.calls).toEqual([`set ssl cert ${file} <<`, `commit ssl cert ${file}`, `show ssl cert ${file}`]);
    expect((await s.list()).map((c) => c.serial)).toEqual(["A2"]);
  });

  it("refuses a host name served by another certificate", async () => {
    const rt = new FakeRuntime();
    const s = store(rt, "clash");
    await s.install({ hostnames: ["a.test"], ...a1 });
    await expect(s.install({ hostnames: ["a.test", "x.b.test"], ...ab })).rejects.toThrow(/served by the certificate for a.test/);
  });

  it("a refused commit leaves the previous certificate: transaction aborted, file restored", async () => {
    const rt = new FakeRuntime();
    const s = store(rt, "fail");
    await s.install({ hostnames: ["a.test"], ...a1 });
    const file = path.join(dir, "fail", "a.test.pem");
    const before = await fs.readFile(file, "utf8");
    rt.refuse = "commit ssl cert";
    await expect(s.install({ hostnames: ["a.test"], ...a2 })).rejects.toThrow(/HAProxy refused 'commit ssl cert/);
    expect(rt.calls).toContain(`abort ssl cert ${file}`);
    expect(await fs.readFile(file, "utf8")).toBe(before);
    // A new certificate that fails is dropped from disk and the crt-list.
    rt.refuse = "add ssl crt-list";
    await expect(s.install({ hostnames: ["b.test"], ...b })).rejects.toThrow(/refused/);
    await expect(fs.stat(path.join(dir, "fail", "b.test.pem"))).rejects.toThrow();
    expect((await fs.readFile(path.join(dir, "fail", "crt-list.txt"), "utf8")).includes("b.test")).toBe(false);
    expect(rt.calls).toContain(`del ssl cert ${path.join(dir, "fail", "b.test.pem")}`);
  });

  it("runs one operation at a time", async () => {
    const rt = new FakeRuntime();
    const s = store(rt, "serial");
    await Promise.all([s.install({ hostnames: ["a.test"], ...a1 }), s.install({ hostnames: ["b.test"], ...b }), s.install({ hostnames: ["a.test"], ...a2 })]);
    const verbs = rt.calls.map((c) => c.split(" ").slice(0, 3).join(" "));
    expect(verbs).toEqual([
      "new ssl cert", "set ssl cert", "commit ssl cert", "add ssl crt-list", "show ssl cert",
      "new ssl cert", "set ssl cert", "commit ssl cert", "add ssl crt-list", "show ssl cert",
      "set ssl cert", "commit ssl cert", "show ssl cert",
    ]);
  });

  it("makes the default certificate (0600) and a crt-list that starts with it, dropping lines whose file is gone", async () => {
    const d = path.join(dir, "files");
    const opts = { certsDir: d, crtList: path.join(d, "crt-list.txt"), defaultCert: path.join(d, "_default.pem") };
    expect(await ensureTlsFiles(opts)).toEqual({ dropped: [] });
    const pem = await fs.readFile(opts.defaultCert, "utf8");
    expect((await fs.stat(opts.defaultCert)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(d)).mode & 0o777).toBe(0o700);
    expect(new X509Certificate(pem).subject).toBe("CN=slipway-default");
    expect(pem).toContain("-----BEGIN PRIVATE KEY-----");
    expect(payloadProblem(pem)).toBeUndefined();
    expect(await fs.readdir(d)).toEqual(["_default.pem", "crt-list.txt"]);
    await fs.writeFile(path.join(d, "a.test.pem"), "x");
    await fs.writeFile(opts.crtList, `${path.join(d, "a.test.pem")} a.test\n${path.join(d, "gone.test.pem")} gone.test\n`);
    expect(await ensureTlsFiles(opts)).toEqual({ dropped: [path.join(d, "gone.test.pem")] });
    expect(await fs.readFile(opts.crtList, "utf8")).toBe(`${opts.defaultCert}\n${path.join(d, "a.test.pem")} a.test\n`);
    // Idempotent: the default certificate is kept.
    await ensureTlsFiles(opts);
    expect(await fs.readFile(opts.defaultCert, "utf8")).toBe(pem);
  });

  it("parses HAProxy's show ssl cert", () => {
    expect(parseShowSslCert("Filename: /x.pem\nSerial: 00A1\nnotAfter: Jan  1 00:00:00 2099 GMT\n")).toEqual({ serial: "A1", notAfter: new Date("2099-01-01T00:00:00Z") });
    expect(parseShowSslCert("Can't display the certificate: Not found!\n")).toBeUndefined();
  });
});
