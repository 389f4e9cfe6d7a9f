/** The SSH broker's process (`node broker/dist/ssh/main.js`). */
import { runProcess } from '../run-process.js';
import { startSshBroker } from './server.js';

// Sessions get a moment to say goodbye and leave their rooms; no longer.
await runProcess(
  'parley-ssh',
  async () => {
    const ssh = await startSshBroker();
    return () => ssh.close();
  },
  { graceMs: 8000 },
);
