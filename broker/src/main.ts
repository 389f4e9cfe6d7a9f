/** `npm start`: the HTTP broker. A bad setting is one line on stderr and exit 1. */
import { ConfigError } from './config.js';
import { startBroker } from './server.js';

try {
  const broker = await startBroker();
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    broker.drain().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} catch (e) {
  if (e instanceof ConfigError) {
    console.error(`parley: ${e.message}`);
    process.exit(1);
  }
  const err = e as NodeJS.ErrnoException;
  console.error(`parley: cannot start: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' '));
  process.exit(1);
}
