/** `npm start`: the HTTP broker. On SIGTERM it drains: held waits get the restart notice first. */
import { runProcess } from './run-process.js';
import { startBroker } from './server.js';

await runProcess('parley', async () => {
  const broker = await startBroker();
  return () => broker.drain();
});
