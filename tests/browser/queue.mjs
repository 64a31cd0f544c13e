// The landing gate's queue on the status page, in a real browser: a row per request with
// its candidate, CI state and the window; an operator moves a waiting request to the front.
// Usage: node queue.mjs BASE_URL OPERATOR_TOKEN SCREENSHOT_DIR TESTING_IDS WAITING_ID
import { launch } from './launch.mjs';

const [base, token, shots, testing, waiting] = process.argv.slice(2);
const { browser, fail } = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  await page.goto(`${base}/`);
  if (await page.locator('#gate-central').count() !== 1) await fail('no queue view for central');
  const summary = (await page.textContent('.gate-summary')) ?? '';
  if (!summary.includes('speculative') || !summary.includes('window 2')) {
    await fail(`the gate's summary does not show the window: ${summary}`);
  }
  const rows = page.locator('table.gate tr[data-request]');
  if (await rows.count() !== 3) await fail(`expected 3 rows, got ${await rows.count()}`);
  for (const id of testing.split(',')) {
    const row = (await page.textContent(`table.gate tr[data-request="${id}"]`)) ?? '';
    if (!row.includes('testing') || !row.includes('run ')) await fail(`request ${id} is not shown under test: ${row}`);
  }
  const second = testing.split(',')[1];
  const first = testing.split(',')[0];
  const withWhom = (await page.textContent(`table.gate tr[data-request="${second}"] td:nth-child(6)`)) ?? '';
  if (!withWhom.includes(first)) await fail(`request ${second} should be tested with ${first}: ${withWhom}`);
  const queued = (await page.textContent(`table.gate tr[data-request="${waiting}"]`)) ?? '';
  if (!queued.includes('waiting')) await fail(`request ${waiting} should be waiting: ${queued}`);
  await page.screenshot({ path: `${shots}/gate.png`, fullPage: true });

  // Anonymous visitors get no controls; an operator moves the waiting request up.
  if (await page.locator('table.gate button').count() !== 0) await fail('controls shown before logging in');
  await page.goto(`${base}/login`);
  await page.fill('input[name="token"]', token);
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/login') && r.request().method() === 'POST'),
    page.click('button[type="submit"]'),
  ]);
  await page.goto(`${base}/`);
  // Wait for the server's answer to the form's POST itself, then look at the page afresh:
  // the status page's own refresh (every 10 s) may race the redirect's navigation.
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/ops/requests/${waiting}/promote`), { timeout: 30000 }),
    page.click(`table.gate tr[data-request="${waiting}"] button`),
  ]);
  await page.goto(`${base}/`);
  const moved = (await page.textContent(`table.gate tr[data-request="${waiting}"]`)) ?? '';
  if (!moved.includes('⇡')) await fail(`request ${waiting} is not marked as moved to the front: ${moved}`);
  await page.screenshot({ path: `${shots}/gate-promoted.png`, fullPage: true });
  console.log(`queue shown; request ${waiting} moved to the front`);
} finally {
  await browser.close();
}
