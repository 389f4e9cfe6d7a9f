/**
 * The room rules through the console: a person in the page opens each room and an agent on curl
 * redeems the code. (Not console ↔ console: the shared forgery rule checks the `│ ` framing of a
 * received text body; the console keeps a partner's lines inside the partner's entry instead, which
 * safety.test.ts checks.)
 */
import { broker } from '../helpers.js';
import { httpDriver } from '../conformance/http-driver.js';
import { roomRules } from '../conformance/rules.js';
import { consoleDriver } from './console-driver.js';
import { useBrowser } from './browser.js';

const browser = useBrowser();

roomRules('console ↔ HTTP', async () => {
  const b = await broker();
  return { creator: consoleDriver(browser(), b.url), redeemer: httpDriver(b.url) };
});
