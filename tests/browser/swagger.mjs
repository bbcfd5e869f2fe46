// Opens Skein's Swagger UI in headless Chromium, authorizes with an API key
// and runs "Try it out" on POST /v1/threads with its prefilled body.
// Usage: SKEIN_BASE_URL=http://127.0.0.1:8080 SKEIN_API_KEY=sk_... node swagger.mjs
// Prints "status <code>" and the answer's body; exits non-zero on any failure.
import { chromium } from 'playwright-core';

const base = process.env.SKEIN_BASE_URL;
const key = process.env.SKEIN_API_KEY;
if (!base || !key) {
  console.error('set SKEIN_BASE_URL and SKEIN_API_KEY');
  process.exit(2);
}
// A hard deadline for the whole run, whatever hangs.
setTimeout(() => {
  console.error('timed out');
  process.exit(3);
}, 90_000).unref();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // This machine's network is closed: no background connections.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20_000);
  await page.goto(`${base}/docs/`);
  // Authorize: the X-API-Key scheme.
  await page.locator('button.authorize').first().click();
  const scheme = page.locator('.auth-container').filter({ hasText: 'api_key' });
  await scheme.locator('input').fill(key);
  await scheme.locator('button.authorize').click();
  await page.locator('button.btn-done').first().click();
  // Try it out on create_thread, with the body the UI prefilled.
  const op = page.locator('#operations-threads-create_thread');
  await op.locator('.opblock-summary').click();
  await op.locator('button.try-out__btn').click();
  await op.locator('button.execute').click();
  const status = op.locator('.live-responses-table tr.response .response-col_status').first();
  await status.waitFor();
  console.log(`status ${(await status.innerText()).trim()}`);
  console.log((await op.locator('.live-responses-table tr.response .response-col_description pre').first().innerText()).trim());
} finally {
  await browser.close();
}
