import { directory } from "acme-client";
import { InvalidRequestError } from "@slipway/core";

/**
 * Where and as whom the control plane orders certificates. Parsed from the environment by
 * `acmeSettingsFromEnv` (meant to be called from loadConfig once this is wired; nothing reads
 * process.env here):
 * - SLIPWAY_ACME_DIRECTORY: the ACME directory URL; default Let's Encrypt production
 *   (https://acme-v02.api.letsencrypt.org/directory). Let's Encrypt staging for a trial:
 *   https://acme-staging-v02.api.letsencrypt.org/directory.
 * - SLIPWAY_ACME_EMAIL: the account's contact (expiry and policy mail from the CA). Setting it
 *   means the operator agrees to the CA's terms of service.
 */
export interface AcmeSettings {
  directoryUrl: string;
  email?: string;
}

export const LETS_ENCRYPT_PRODUCTION = directory.letsencrypt.production;

export function acmeSettingsFromEnv(env: Record<string, string | undefined>): AcmeSettings {
  const directoryUrl = env.SLIPWAY_ACME_DIRECTORY?.trim() || LETS_ENCRYPT_PRODUCTION;
  let url: URL;
  try {
    url = new URL(directoryUrl);
  } catch {
    throw new InvalidRequestError(`SLIPWAY_ACME_DIRECTORY is not a URL: ${directoryUrl}`);
  }
  if (url.protocol !== "https:") throw new InvalidRequestError(`SLIPWAY_ACME_DIRECTORY must be an https URL (ACME requires TLS): ${directoryUrl}`);
  const email = env.SLIPWAY_ACME_EMAIL?.trim();
  if (email && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) throw new InvalidRequestError(`SLIPWAY_ACME_EMAIL is not an e-mail address: ${email}`);
  return Object.freeze({ directoryUrl, ...(email ? { email } : {}) });
}
