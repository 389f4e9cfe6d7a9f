/**
 * The life of a server process, shared by the HTTP and SSH brokers: a bad setting (or a port
 * already taken) is one line on stderr and exit 1; SIGTERM or SIGINT stops it once, then exit 0.
 */
import { ConfigError } from './config.js';

export async function runProcess(name: string, start: () => Promise<() => Promise<void>>, options: { graceMs?: number } = {}): Promise<void> {
  let stop: () => Promise<void>;
  try {
    stop = await start();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    console.error(e instanceof ConfigError ? `${name}: ${err.message}` : `${name}: cannot start: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' '));
    process.exit(1);
  }
  let stopping = false;
  const onSignal = () => {
    if (stopping) return;
    stopping = true;
    stop().then(() => process.exit(0));
    if (options.graceMs) setTimeout(() => process.exit(0), options.graceMs).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
