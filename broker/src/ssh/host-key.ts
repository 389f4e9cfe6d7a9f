/**
 * The SSH host key: loaded from disk, or generated (ed25519, OpenSSH format) on first start and
 * kept there, so clients' known_hosts stay valid across restarts and upgrades (a volume in compose).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import ssh2 from 'ssh2';

export function loadOrCreateHostKey(path: string): { key: string; fingerprint: string; created: boolean } {
  let created = false;
  if (!existsSync(path)) {
    const pair = generateParseableKey();
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // 'wx': never overwrite a key another process wrote in the meantime.
    writeFileSync(path, pair.private, { mode: 0o600, flag: 'wx' });
    writeFileSync(`${path}.pub`, `${pair.public}\n`, { mode: 0o644 });
    created = true;
  }
  const key = readFileSync(path, 'utf8');
  const parsed = ssh2.utils.parseKey(key);
  if (parsed instanceof Error) throw new Error(`cannot read the SSH host key at ${path}: ${parsed.message}`);
  const pub = (Array.isArray(parsed) ? parsed[0] : parsed).getPublicSSH();
  // The same "SHA256:…" form `ssh-keygen -lf` and OpenSSH's first-connection prompt show.
  const fingerprint = `SHA256:${createHash('sha256').update(pub).digest('base64').replace(/=+$/, '')}`;
  return { key, fingerprint, created };
}

/** ssh2 generates, about once in 300, an ed25519 key its own parser then rejects: make another. */
function generateParseableKey(): { private: string; public: string } {
  for (let i = 0; ; i++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519');
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error) || i >= 20) return pair;
  }
}
