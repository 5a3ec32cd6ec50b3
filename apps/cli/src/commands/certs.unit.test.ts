import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { run, type Io } from "../cli.js";

function io(): Io & { stdout: string; stderr: string } {
  const o = { stdout: "", stderr: "", env: { SLIPWAY_CONFIG: "/nonexistent/slipway.json", SLIPWAY_URL: "http://cp.test:7700", SLIPWAY_TOKEN: "admin-token" }, out: (t: string) => void (o.stdout += t), err: (t: string) => void (o.stderr += t) };
  return o;
}

/** A fake of the one global the client uses: records each request and answers with `answer`. */
function fakeApi(answer: (method: string, url: string) => { status: number; body: unknown }) {
  const calls: Array<{ method: string; url: string; body: unknown }> = [];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
    const method = init.method ?? "GET";
    calls.push({ method, url, body: init.body ? JSON.parse(init.body as string) : undefined });
    const a = answer(method, url);
    return new Response(JSON.stringify(a.body), { status: a.status, headers: { "content-type": "application/json" } });
  });
  return calls;
}

const view = { id: "5b8a8a4e-1c1e-4a4a-9c1e-3c2b1a0f9e8d", hostnames: ["*.example.test", "example.test"], source: "uploaded", serial: "0ABC01", notBefore: "2026-12-01T00:00:00.000Z", notAfter: "2027-03-01T00:00:00.000Z", status: "valid", lastError: null, uploadedBy: "bootstrap-admin", updatedAt: "2026-12-07T00:00:00.000Z" };
const acme = { ...view, id: "77a0e5b2-0000-4000-8000-000000000001", hostnames: ["shop.example.com"], source: "acme", serial: null, notBefore: null, notAfter: null, status: "failed", lastError: "shop.example.com has no DNS record (ENOTFOUND)", uploadedBy: null };

const dir = mkdtempSync(path.join(tmpdir(), "slipway-certs-cli-"));
const certFile = path.join(dir, "chain.pem");
const keyFile = path.join(dir, "key.pem");
writeFileSync(certFile, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
writeFileSync(keyFile, "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n");

afterEach(() => {
  vi.unstubAllGlobals();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("slipway certs", () => {
  it("exits 2 on wrong usage and 1 on a file it cannot read, saying which, without calling the API", async () => {
    const calls = fakeApi(() => ({ status: 200, body: {} }));
    for (const [args, status, message] of [
      [["certs", "upload"], 2, /certs upload needs --cert <file> and --key <file> \(missing: --cert, --key\)/],
      [["certs", "upload", "--cert", certFile], 2, /missing: --key/],
      [["certs", "remove"], 2, /missing <id>/],
      [["certs", "extra"], 2, /too many arguments/],
      [["certs", "upload", "--cert", path.join(dir, "missing.pem"), "--key", keyFile], 1, new RegExp(`cannot read the certificate file ${path.join(dir, "missing.pem")}: no such file; nothing was uploaded`)],
      [["certs", "upload", "--cert", certFile, "--key", dir], 1, /cannot read the key file .*: it is a folder; nothing was uploaded/],
    ] as Array<[string[], number, RegExp]>) {
      const o = io();
      expect(await run(args, o), args.join(" ")).toBe(status);
      expect(o.stderr).toMatch(message);
    }
    expect(calls).toEqual([]);
  });

  it("uploads the two files as the API's body and says whether it replaced one; lists as a table; removes", async () => {
    let replaced = false;
    const calls = fakeApi((method) =>
      method === "POST" ? { status: replaced ? 200 : 201, body: { certificate: view, replaced, replacedSerial: replaced ? "01" : null, jobsQueued: 2 } } : method === "DELETE" ? { status: 200, body: view } : { status: 200, body: [view, acme] },
    );
    const up = io();
    expect(await run(["certs", "upload", "--cert", certFile, "--key", keyFile], up), up.stderr).toBe(0);
    expect(up.stdout).toBe(`uploaded certificate ${view.id} for *.example.test, example.test: serial 0ABC01, valid until 2027-03-01T00:00:00Z\n2 host update(s) queued: served without a redeploy\n`);
    replaced = true;
    const again = io();
    expect(await run(["certs", "upload", "--key", keyFile, "--cert", certFile], again)).toBe(0);
    expect(again.stdout).toMatch(/^replaced certificate .* \(it replaces serial 01\)\n/);

    const listed = io();
    expect(await run(["certs"], listed)).toBe(0);
    expect(listed.stdout).toBe(
      [
        "ID                                    NAMES                        SOURCE    STATUS                                                  VALID UNTIL           SERIAL",
        `${view.id}  *.example.test,example.test  uploaded  valid                                                   2027-03-01T00:00:00Z  0ABC01`,
        `${acme.id}  shop.example.com             acme      failed: shop.example.com has no DNS record (ENOTFOUND)  -                     -`,
        "",
      ].join("\n"),
    );
    const json = io();
    expect(await run(["certs", "--json"], json)).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual([view, acme]);

    const removed = io();
    expect(await run(["certs", "remove", view.id], removed)).toBe(0);
    expect(removed.stdout).toMatch(new RegExp(`^removed certificate ${view.id} for \\*\\.example\\.test, example\\.test \\(serial 0ABC01\\)`));

    const body = { certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", privateKey: "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n" };
    expect(calls.map((c) => [c.method, c.url, c.body])).toEqual([
      ["POST", "http://cp.test:7700/v1/certificates", body],
      ["POST", "http://cp.test:7700/v1/certificates", body],
      ["GET", "http://cp.test:7700/v1/certificates", undefined],
      ["GET", "http://cp.test:7700/v1/certificates", undefined],
      ["DELETE", `http://cp.test:7700/v1/certificates/${view.id}`, undefined],
    ]);
  });

  it("shows the API's refusal and the field it names (exit 1)", async () => {
    fakeApi(() => ({ status: 400, body: { error: { code: "invalid_request", message: "privateKey: the key does not match the certificate (the first one of the chain)", details: { privateKey: "the key does not match the certificate (the first one of the chain)" } } } }));
    const o = io();
    expect(await run(["certs", "upload", "--cert", certFile, "--key", keyFile], o)).toBe(1);
    expect(o.stderr).toMatch(/slipway: privateKey: the key does not match the certificate .* \(400 invalid_request\)\n {2}\{"privateKey":/);
  });
});
