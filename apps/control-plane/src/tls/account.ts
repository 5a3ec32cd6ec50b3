import { createHash } from "node:crypto";
import * as acme from "acme-client";
import type { Logger } from "@slipway/core";
import type { Db } from "../db/database.js";
import type { SecretBox } from "../services/secret-box.js";
import { insertAccountIfAbsent, setAccountUrl } from "../repositories/certificates.repository.js";
import type { AcmeSettings } from "./acme-settings.js";

/**
 * RFC 7638 thumbprint of a public JWK: base64url(SHA-256(the required members, in
 * lexicographic order, without whitespace)). HTTP-01 answers are `<token>.<thumbprint>`.
 */
export function jwkThumbprint(jwk: Record<string, unknown>): string {
  const required: Record<string, string[]> = { EC: ["crv", "kty", "x", "y"], RSA: ["e", "kty", "n"], OKP: ["crv", "kty", "x"] };
  const members = required[String(jwk.kty)];
  if (!members) throw new Error(`unsupported account key type ${String(jwk.kty)}`);
  const canonical = `{${members.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(",")}}`;
  return createHash("sha256").update(canonical).digest("base64url");
}

export interface AcmeAccount {
  client: acme.Client;
  thumbprint: string;
  directoryUrl: string;
}

/**
 * The installation's one ACME account per directory URL. `get()` is idempotent and safe to call
 * concurrently, on any number of replicas: the key is generated and stored (sealed) before the
 * account is registered, and the first stored key wins, so every replica registers the same key
 * (registering an existing key returns the existing account).
 */
export class AcmeAccounts {
  private current?: Promise<AcmeAccount>;

  constructor(
    private readonly db: Db,
    private readonly box: SecretBox,
    private readonly settings: AcmeSettings,
    private readonly log: Logger,
    /** acme-client's polling backoff while an order is processed (its default 5 s floor is for slow CAs). */
    private readonly pollMinMs = 1000,
  ) {}

  get directoryUrl(): string {
    return this.settings.directoryUrl;
  }

  /** The registered account, registering it at the CA the first time. A failure is not cached. */
  get(): Promise<AcmeAccount> {
    this.current ??= this.load().catch((err: unknown) => {
      this.current = undefined;
      throw err;
    });
    return this.current;
  }

  /** The thumbprint agents answer HTTP-01 with (stored: no call to the CA once created). */
  async thumbprint(): Promise<string> {
    return (await this.get()).thumbprint;
  }

  /**
   * The thumbprint without a call to the CA: the account key is created and stored when absent
   * (registration waits for the first order). What GetJobSpec hands to agents, so a deploy or a
   * routes job never waits on (or fails with) the CA.
   */
  async storedThumbprint(): Promise<string> {
    this.stored ??= this.storeKey().catch((err: unknown) => {
      this.stored = undefined;
      throw err;
    });
    return (await this.stored).thumbprint;
  }

  private stored?: Promise<{ thumbprint: string }>;

  private async storeKey() {
    const fresh = await acme.crypto.createPrivateEcdsaKey("P-256");
    return insertAccountIfAbsent(this.db, {
      directory_url: this.settings.directoryUrl,
      key_encrypted: this.box.encrypt(fresh.toString("utf8")),
      contact: this.settings.email ?? null,
      thumbprint: jwkThumbprint(acme.crypto.getJwk(fresh) as unknown as Record<string, unknown>),
    });
  }

  private async load(): Promise<AcmeAccount> {
    const { directoryUrl } = this.settings;
    const stored = await this.storeKey();
    const accountKey = this.box.decrypt(stored.key_encrypted);
    const client = new acme.Client({ directoryUrl, accountKey, backoffMin: this.pollMinMs, backoffMax: 10_000, ...(stored.account_url ? { accountUrl: stored.account_url } : {}) });
    // The JWK acme-client signs with (what its `client.http.getJwk()` returns).
    const thumbprint = jwkThumbprint(acme.crypto.getJwk(accountKey) as unknown as Record<string, unknown>);
    if (thumbprint !== stored.thumbprint) throw new Error("the stored ACME account key does not match its thumbprint");
    if (!stored.account_url) {
      await client.createAccount({ termsOfServiceAgreed: true, ...(stored.contact ? { contact: [`mailto:${stored.contact}`] } : {}) });
      await setAccountUrl(this.db, stored.id, client.getAccountUrl());
      this.log.info({ directoryUrl, accountUrl: client.getAccountUrl() }, "ACME account registered");
    }
    return { client, thumbprint, directoryUrl };
  }
}
