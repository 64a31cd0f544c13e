// Landing from the bug page, in a real browser: Bob (scm_level_1) sees why Autoland would
// refuse to land on central and the refusal when he tries; Alice (scm_level_3) signs in
// with her Bugzilla API key, picks two of the three patches, lands on try + central and
// watches the stages advance without reloading. Bug data holding markup stays text.
// Usage: node land.mjs BASE_URL BUG ATTACHMENT_IDS(comma-separated) SCREENSHOT_DIR
import { launch } from './launch.mjs';

const [base, bug, idList, shots] = process.argv.slice(2);
const ids = idList.split(',');
const { browser, fail } = await launch();
const text = async (page, selector) => ((await page.textContent(selector)) || '').trim();
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 1200 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const signIn = async (key) => {
    await page.goto(`${base}/login?next=/bugs/${bug}`);
    await page.fill('#bugzilla-login input[name="api_key"]', key);
    await page.click('#bugzilla-login button[type="submit"]');
    await page.waitForURL(`${base}/bugs/${bug}`);
  };

  // Markup in the bug's summary and attachment names is shown as text and never runs.
  await page.goto(`${base}/bugs/${bug}`);
  if (!(await text(page, '#summary')).includes('<script>')) await fail('the summary is not shown as text');
  if (!(await page.textContent('#land')).includes('<img src=x')) await fail('the attachment name is not shown as text');
  if (await page.evaluate(() => window.__xss !== undefined)) await fail('markup from the bug ran');

  // Bob may test on try but not land on central: the page says so before he sends.
  await signIn('bob-key');
  if ((await text(page, '#viewer')) !== 'bob@example.com') await fail('Bob is not signed in');
  await page.check('#destination-central');
  const bobPlan = await text(page, '#plan');
  if (!bobPlan.includes('central needs scm_level_3: you do not have it')) await fail(`no reason shown: ${bobPlan}`);
  if (!(await text(page, '#verdict')).includes('would refuse')) await fail('no refusal foreseen');
  await page.screenshot({ path: `${shots}/bug-page-bob.png`, fullPage: true });
  await page.click('#land-button');
  await page.waitForSelector('#notice');
  const notice = await text(page, '#notice');
  if (!notice.includes('does not hold scm_level_3')) await fail(`no refusal: ${notice}`);
  await page.screenshot({ path: `${shots}/bug-page-refused.png`, fullPage: true });
  await page.click('form[action="/logout"] button');
  await page.waitForURL(`${base}/`);

  // Alice lands parts 1 and 3 on try, then central.
  await signIn('alice-key');
  await page.uncheck(`#attachment-${ids[1]}`);
  await page.check('#destination-central');
  const alicePlan = await text(page, '#plan');
  if (!alicePlan.includes(`attachments ${ids[0]}, ${ids[2]}`) || !alicePlan.includes('then land on central')) {
    await fail(`the plan does not say what will happen: ${alicePlan}`);
  }
  if (!(await text(page, '#verdict')).includes('would accept')) await fail(`Alice's landing foreseen refused: ${alicePlan}`);
  await page.click('#land-button');
  await page.waitForURL(`${base}/bugs/${bug}`);
  await page.waitForSelector('#requests tbody tr');
  // The list refreshes itself: watch the stage change without reloading.
  const seen = [];
  const deadline = Date.now() + 120000;
  for (;;) {
    const stage = await text(page, '#requests tbody tr:first-child td:nth-child(2)');
    if (stage && seen[seen.length - 1] !== stage) seen.push(stage);
    if (stage === 'landed' || stage === 'failed' || stage === 'cancelled') break;
    if (Date.now() > deadline) await fail(`the request did not finish: ${seen.join(' → ')}`);
    await page.waitForTimeout(100);
  }
  await page.screenshot({ path: `${shots}/bug-page-landed.png`, fullPage: true });
  if (seen[seen.length - 1] !== 'landed') await fail(`the request did not land: ${seen.join(' → ')}`);
  if (seen.length < 2) await fail(`the stages did not advance on the page: ${seen.join(' → ')}`);
  if (errors.length) await fail(`script errors: ${errors.join('; ')}`);
  console.log(JSON.stringify({ stages: seen, bob: notice }));
} finally {
  await browser.close();
}
