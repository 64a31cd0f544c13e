// An operator's visit, in a real browser: the status page shows the verdict, the queue and
// a failed request; the operator logs in and retries it with a click.
// Usage: node retry.mjs BASE_URL REQUEST_ID OPERATOR_TOKEN SCREENSHOT_DIR
import { launch } from './launch.mjs';

const [base, id, token, shots] = process.argv.slice(2);
const { browser, fail } = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 412, height: 900 } });
  await page.goto(`${base}/`);
  const verdict = (await page.textContent('.verdict'))?.trim();
  if (!['UP', 'DEGRADED', 'DOWN'].includes(verdict)) await fail(`no verdict: ${verdict}`);
  const outcomes = await page.textContent('body');
  if (!outcomes.includes('try_failed')) await fail('the failed request is not on the status page');
  await page.screenshot({ path: `${shots}/status.png`, fullPage: true });

  await page.click(`a[href="/requests/${id}"]`);
  if (await page.locator('#retry').count() !== 0) await fail('retry offered before logging in');
  await page.goto(`${base}/login`);
  await page.fill('input[name="token"]', token);
  await page.click('button[type="submit"]');
  await page.goto(`${base}/requests/${id}`);
  await page.click('#retry');
  await page.waitForURL(`${base}/requests/${id}`);
  await page.screenshot({ path: `${shots}/after-retry.png`, fullPage: true });
  const body = await page.textContent('body');
  if (!body.includes('retried by')) await fail('the request page does not show the retry');
  console.log(`verdict ${verdict}; retried request ${id}`);
} finally {
  await browser.close();
}
