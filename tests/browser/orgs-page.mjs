// Loads ipguard's `/status` for several orgs in headless Debian Chromium: sign in, read every
// org at a glance, open one org's page, press its "Check … now", sign out.
//
//   node tests/browser/orgs-page.mjs <base-url> <out-dir>
//
// IPGUARD_ORG_KEYS lists the org keys the page must show (comma-separated, in order), each
// expected in sync. Screenshots (desktop 1280 wide, phone 390×844, full page) go to <out-dir>
// as orgs-{desktop,phone}.png and org-<key>-desktop.png. The admin token comes from the
// environment (IPGUARD_ADMIN_TOKEN), never from argv. Exits non-zero on the first failed check.

import { join } from 'node:path';
import { check, launch, run, submit } from './browser.mjs';

const [base, outDir] = process.argv.slice(2);
const token = process.env.IPGUARD_ADMIN_TOKEN;
const keys = (process.env.IPGUARD_ORG_KEYS || '').split(',').filter(Boolean);
if (!base || !outDir || !token || keys.length < 2) {
  console.error('usage: IPGUARD_ADMIN_TOKEN=… IPGUARD_ORG_KEYS=a,b node orgs-page.mjs <base-url> <out-dir>');
  process.exit(2);
}
const statusUrl = new URL('/status', base).toString();

const browser = await launch(outDir);
const { context } = browser;

// Every table captioned with scoped header cells, headings in order, no script.
async function structure(page, what) {
  const levels = await page.$$eval('h1,h2,h3,h4,h5,h6', (hs) => hs.map((h) => Number(h.tagName[1])));
  check(levels[0] === 1 && !levels.some((l, i) => i > 0 && l > levels[i - 1] + 1),
    `${what}: headings are in order`, levels.join(','));
  const tables = await page.$$eval('table', (ts) => ts.map((t) => ({
    caption: t.caption?.textContent?.trim() ?? '',
    unscoped: [...t.querySelectorAll('th')].filter((th) => !th.getAttribute('scope')).length,
  })));
  check(tables.length >= 1 && tables.every((t) => t.caption && t.unscoped === 0),
    `${what}: every table has a caption and scoped <th>`, JSON.stringify(tables));
  check((await page.locator('script').count()) === 0, `${what}: no JavaScript`);
}

await run(browser, async () => {
  const page = context.pages()[0] ?? (await context.newPage());
  const urls = [];
  page.on('request', (r) => urls.push(r.url()));
  await page.goto(statusUrl);
  await page.getByLabel('Admin token').fill(token);
  await submit(page, page.getByRole('button', { name: 'Sign in' }));
  check(new URL(page.url()).pathname === '/status', 'signing in shows the status page', page.url());
  await structure(page, 'every org');

  // At a glance: one row per org, in IPGUARD_ORGS order, each in sync, each a link.
  const orgs = page.getByRole('table', { name: /guarded org/i });
  const rows = orgs.locator('tbody tr');
  check((await rows.count()) === keys.length, 'one row per org', `${await rows.count()} rows`);
  const names = await rows.locator('td:nth-of-type(1)').allInnerTexts();
  check(JSON.stringify(names.map((n) => n.trim())) === JSON.stringify(keys), 'the orgs in IPGUARD_ORGS order',
    names.join(', '));
  const badges = await rows.locator('.badge').allInnerTexts();
  check(badges.length === keys.length && badges.every((b) => /in sync/.test(b)), 'every org is in sync',
    badges.join(' | '));
  await page.screenshot({ path: join(outDir, 'orgs-desktop.png'), fullPage: true });

  // One org's own page, from its link.
  const key = keys[keys.length - 1];
  await Promise.all([page.waitForEvent('framenavigated'), orgs.getByRole('link', { name: key }).click()]);
  await page.waitForLoadState('load');
  check(new URL(page.url()).search === `?org=${key}`, `the link opens ${key}'s page`, page.url());
  check((await page.title()) === `ipguard status · ${key}`, 'the org page names its org', await page.title());
  await structure(page, `${key}'s page`);
  const profiles = page.getByRole('table', { name: /profiles/i });
  const states = await profiles.locator('tbody tr td:nth-of-type(1)').allInnerTexts();
  check(states.length > 0 && states.every((s) => /in sync/.test(s)), `${key}'s profiles are in sync`,
    states.join(' | '));

  const back = page.getByRole('link', { name: 'Every org' });
  check((await back.count()) === 1 && (await back.getAttribute('href')) === '/status',
    'the org page links back to every org');

  // Its button asks this org only, and comes back to this org's page.
  const started = Date.now();
  await submit(page, page.getByRole('button', { name: `Check ${key} now` }));
  check(new URL(page.url()).search === `?org=${key}`, `"Check ${key} now" comes back to ${key}'s page`, page.url());
  check((Date.now() - started) / 1000 < 10, `"Check ${key} now" answers at once`);
  const newest = await page.getByRole('table', { name: /runs/i }).locator('tbody tr').first().innerText();
  check(/admin/.test(newest), 'the newest run of this org is the admin\'s', newest.replace(/\s+/g, ' '));
  await page.screenshot({ path: join(outDir, `org-${key}-desktop.png`), fullPage: true });

  // A phone: the body never scrolls sideways.
  await page.goto(statusUrl);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth);
  check(overflow, 'no horizontal overflow of the orgs page at 390×844');
  await page.screenshot({ path: join(outDir, 'orgs-phone.png'), fullPage: true });

  await submit(page, page.getByRole('button', { name: 'Sign out' }));
  check(new URL(page.url()).pathname === '/signin', 'signing out shows the sign-in form', page.url());
  check(urls.every((u) => !u.includes(token)), 'the token never appears in a URL');
}, 'all orgs page checks passed');
