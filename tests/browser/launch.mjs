// Debian's headless Chromium as the browser tests drive it (playwright-core), and a way
// to fail a script with a message. CHROMIUM overrides the executable.
import { chromium } from 'playwright-core';

export async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const fail = async (message) => { console.error(message); await browser.close(); process.exit(1); };
  return { browser, fail };
}
