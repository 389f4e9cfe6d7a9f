/** The SSH broker's process (`node broker/dist/ssh/main.js`): a bad setting is one line on stderr and exit 1. */
import { ConfigError } from '../config.js';
import { startSshBroker } from './server.js';

try {
  const ssh = await startSshBroker();
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    ssh.close().then(() => process.exit(0));
    // Sessions get a moment to say goodbye and leave their rooms; no longer.
    setTimeout(() => process.exit(0), 8000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} catch (e) {
  const err = e as NodeJS.ErrnoException;
  console.error(e instanceof ConfigError ? `parley-ssh: ${err.message}` : `parley-ssh: cannot start: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' '));
  process.exit(1);
}
