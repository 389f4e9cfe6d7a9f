/**
 * Values Redis must hold but never in clear (a door session's token): AES-256-GCM under a key
 * derived from the shared PARLEY_SECRET, so every broker can open them and a dump of Redis cannot.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';

export function sealer(secret: string) {
  const key = createHmac('sha256', secret).update('parley sealed values v1').digest();
  return {
    seal(value: string): string {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([c.update(value, 'utf8'), c.final()]);
      return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64');
    },
    /** The value, or undefined for anything this secret did not seal. */
    open(sealed: string): string | undefined {
      try {
        const b = Buffer.from(sealed, 'base64');
        const d = createDecipheriv('aes-256-gcm', key, b.subarray(0, 12));
        d.setAuthTag(b.subarray(12, 28));
        return Buffer.concat([d.update(b.subarray(28)), d.final()]).toString('utf8');
      } catch {
        return undefined;
      }
    },
  };
}
