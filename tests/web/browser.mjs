// browser.mjs: drive Debian's Chromium (headless, through playwright-core)
// over the operator web view served by opweb_serve.
//
//   node browser.mjs BASE_URL SCREENSHOT FORBIDDEN_WORDS_FILE
//
// From the overview: the gaps come first (held, failed, late, then states,
// then notices); the stylesheet applies under the Content-Security-Policy
// (no violation reported); no script element exists, the hostile reason is
// plain text; click the late notice, then one of its messages: attempts
// and the receipt are shown. No page's text holds any forbidden word (the
// demo notices' nins and names). A full-page screenshot of the overview is
// written to SCREENSHOT. Exits non-zero on the first failed check.
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, screenshot, forbiddenFile] = process.argv.slice(2);
const forbidden = readFileSync(forbiddenFile, 'utf8').split('\n').filter((w) => w.length > 0);
const profile = mkdtempSync(join(tmpdir(), 'opweb-chromium-'));
let passes = 0;

function check(what, ok, detail = '') {
  if (!ok) throw new Error(`FAIL: ${what} ${detail}`);
  passes++;
  console.log(`ok: ${what}`);
}

const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
  javaScriptEnabled: true, // for the checks below; the pages themselves have none
});
const problems = [];
try {
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));

  async function noPersonalData(where) {
    const text = await page.evaluate(() => document.documentElement.innerText);
    const html = await page.content();
    const hit = forbidden.find((w) => text.includes(w) || html.includes(w));
    check(`${where}: no nin or name on the page`, hit === undefined, hit ? `(${hit})` : '');
  }

  const response = await page.goto(`${base}/`, { waitUntil: 'load' });
  check('overview answers 200', response.status() === 200);
  check('overview carries the CSP header',
    (response.headers()['content-security-policy'] || '').startsWith("default-src 'none'; style-src 'self'"));
  const order = await page.evaluate(() =>
    ['held', 'failed', 'late', 'states', 'notices'].map((id) => {
      const el = document.getElementById(id);
      return el ? el.getBoundingClientRect().top + window.scrollY : -1;
    }));
  check('sections present', order.every((y) => y >= 0), JSON.stringify(order));
  check('gaps first: held, failed, late, then states, then notices',
    order.every((y, i) => i === 0 || order[i - 1] < y), JSON.stringify(order));
  const collapse = await page.evaluate(() => getComputedStyle(document.querySelector('table')).borderCollapse);
  check('the stylesheet applies under the CSP', collapse === 'collapse', collapse);
  check('no script element on the page', (await page.locator('script').count()) === 0);
  check('the hostile reason shows as text',
    (await page.getByText('<script>alert(1)</script>', { exact: false }).count()) >= 1);
  check('the nin-shaped number in it is masked',
    (await page.getByText('***********', { exact: false }).count()) >= 1);
  const heldText = await page.locator('#held + table').innerText();
  check('held row says no consent', heldText.includes('held: no consent'));
  await noPersonalData('overview');

  // the overview's screenshot, before navigating on
  await page.screenshot({ path: screenshot, fullPage: true });
  check('screenshot written', readFileSync(screenshot).length > 10000);

  // drill down: the late notice, then one of its messages
  const lateLink = page.locator('#late + table a[href^="/notice/"]').first();
  const noticeId = (await lateLink.innerText()).trim();
  await Promise.all([page.waitForURL(`**/notice/${noticeId}`), lateLink.click()]);
  check('notice page opened by a click', (await page.locator('h2').first().innerText()).includes(noticeId));
  const rows = await page.locator('#notice table tbody tr').count();
  check('notice page lists its recipients', rows >= 1, `rows=${rows}`);
  await noPersonalData('notice page');

  const messageLink = page.locator('#notice table tbody a[href^="/message/"]').first();
  const messageId = (await messageLink.innerText()).trim();
  await Promise.all([page.waitForURL(`**/message/${messageId}`), messageLink.click()]);
  check('message page opened by a click', (await page.locator('h2').first().innerText()).includes(messageId));
  check('message page shows attempts', (await page.locator('#attempts').count()) === 1);
  check('message page shows the receipt section', (await page.locator('#receipt').count()) === 1);
  const receipt = await page.locator('#receipt-xml').count();
  if (receipt) {
    const xml = await page.locator('#receipt-xml').innerText();
    check('receipt XML shown as text', xml.includes('<Receipt') || xml.includes(':Receipt'));
  }
  await noPersonalData('message page');

  // every message of the store, through the overview's links
  await page.goto(`${base}/`);
  const hrefs = await page.locator('a[href^="/notice/"]').evaluateAll((as) => [...new Set(as.map((a) => a.getAttribute('href')))]);
  for (const href of hrefs) {
    await page.goto(`${base}${href}`);
    await noPersonalData(href);
    const messages = await page.locator('a[href^="/message/"]').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    for (const m of messages) {
      await page.goto(`${base}${m}`);
      await noPersonalData(m);
    }
  }
  check('no console errors or CSP violations', problems.length === 0, JSON.stringify(problems));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`${passes} passed`);
