import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";

const VERSION = "v1";

/**
 * Encrypts secrets at rest with AES-256-GCM. Output: `v1:<base64(iv | tag | ciphertext)>`.
 * A fresh 96-bit IV per value; the tag authenticates, so a tampered value fails to decrypt.
 */
export class SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error("the secret key must be 32 bytes");
  }

  encrypt(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv);
    const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
    return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64")}`;
  }

  decrypt(sealed: string): string {
    const [version, b64] = sealed.split(":", 2);
    if (version !== VERSION || !b64) throw new Error("not a sealed secret");
    const raw = Buffer.from(b64, "base64");
    const decipher = createDecipheriv("aes-256-gcm", this.key, raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
  }
}

/**
 * The encryption key: `SLIPWAY_SECRET_KEY` (base64 of 32 bytes) when configured,
 * else `<dataDir>/secret.key`, generated on first start with mode 0600.
 */
export async function loadSecretKey(opts: { configured?: string; dataDir: string }): Promise<Buffer> {
  if (opts.configured) return Buffer.from(opts.configured, "base64");
  const file = path.join(opts.dataDir, "secret.key");
  try {
    return Buffer.from((await readFile(file, "utf8")).trim(), "base64");
  } catch {
    const key = randomBytes(32);
    await mkdir(opts.dataDir, { recursive: true });
    await writeFile(file, key.toString("base64") + "\n", { mode: 0o600, flag: "wx" }).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
    await chmod(file, 0o600);
    return Buffer.from((await readFile(file, "utf8")).trim(), "base64");
  }
}
