// Loads ipguard's `/status` page in headless Debian Chromium as a person would: open the URL,
// get the sign-in form, sign in with the admin token, read the page, sign out.
//
//   node tests/browser/status-page.mjs <base-url> <out-dir>
//
// IPGUARD_PHASE says what the org went through and what the page must show:
//   remediated  — in sync after a remediation (also tries a wrong token first);
//   locked-out  — ipguard is locked out: banner, every profile "unknown since" its last read;
//   recovered   — the lock-out was fixed in the org but the page still says locked out; the
//                 "Check now" button must run at once and show every profile in sync.
// Screenshots (desktop 1280 wide and phone 390×844, full page) go to <out-dir> as
// status-<phase>-{desktop,phone}.png, and signin-{desktop,phone}.png in the first phase.
//
// The admin token comes from the environment (IPGUARD_ADMIN_TOKEN), never from argv, so it
// does not show up in `ps` or in a test's failure message; it is typed into the form only and
// must never appear in a URL. Exits non-zero on the first failed check.

import { join } from 'node:path';
import { check, launch, run, submit } from './browser.mjs';

const [base, outDir] = process.argv.slice(2);
const token = process.env.IPGUARD_ADMIN_TOKEN;
if (!base || !outDir || !token) {
  console.error('usage: IPGUARD_ADMIN_TOKEN=… node status-page.mjs <base-url> <out-dir>');
  process.exit(2);
}
const statusUrl = new URL('/status', base).toString();
const phase = process.env.IPGUARD_PHASE || 'remediated';
const shot = (device) => join(outDir, `status-${phase}-${device}.png`);

const browser = await launch(outDir);
const { context } = browser;

const sessionCookie = async () =>
  (await context.cookies(base)).find((c) => c.name === '__Host-ipguard_session');

await run(browser, async () => {
  const page = context.pages()[0] ?? (await context.newPage());
  const urls = [];
  page.on('request', (r) => urls.push(r.url()));

  // A person types the page's address: without a session the browser lands on the form.
  await page.goto(statusUrl);
  check(new URL(page.url()).pathname === '/signin', 'opening /status without a session shows the sign-in form',
    page.url());
  check((await page.title()) === 'Sign in · ipguard', 'the sign-in page is titled', await page.title());
  const tokenField = page.getByLabel('Admin token');
  check((await tokenField.getAttribute('type')) === 'password', 'the token field is a password field');

  if (phase === 'remediated') {
    await page.screenshot({ path: join(outDir, 'signin-desktop.png'), fullPage: true });
    // A mistyped token: the form again, with the reason, and no session.
    await tokenField.fill('not-the-admin-token');
    await submit(page, page.getByRole('button', { name: 'Sign in' }));
    check(new URL(page.url()).pathname === '/signin', 'a wrong token stays on the sign-in form', page.url());
    const refusal = page.getByRole('alert');
    check((await refusal.count()) === 1 && /not the admin token/.test(await refusal.innerText()),
      'a wrong token is refused in words');
    check(!(await sessionCookie()), 'a wrong token sets no session cookie');
  }

  await page.getByLabel('Admin token').fill(token);
  await submit(page, page.getByRole('button', { name: 'Sign in' }));
  check(new URL(page.url()).pathname === '/status', 'signing in shows the status page', page.url());
  const cookie = await sessionCookie();
  check(Boolean(cookie) && cookie.httpOnly && cookie.secure && cookie.sameSite === 'Strict',
    'the session cookie is Secure, HttpOnly, SameSite=Strict',
    cookie ? `httpOnly=${cookie.httpOnly} secure=${cookie.secure} sameSite=${cookie.sameSite}` : 'no cookie');
  check(!cookie?.value.includes(token), 'the cookie does not carry the token');

  check((await page.title()) === 'ipguard status', 'title is "ipguard status"',
    JSON.stringify(await page.title()));
  check((await page.getAttribute('html', 'lang')) === 'en', '<html lang="en">');
  check((await page.locator('script').count()) === 0, 'the page has no JavaScript');

  const h1 = page.getByRole('heading', { level: 1 });
  check((await h1.count()) === 1, 'exactly one h1');

  // Headings never skip a level (h1 → h3 would confuse a screen reader's outline).
  const levels = await page.$$eval('h1,h2,h3,h4,h5,h6', (hs) => hs.map((h) => Number(h.tagName[1])));
  const skips = levels.some((l, i) => i > 0 && l > levels[i - 1] + 1);
  check(levels[0] === 1 && !skips, 'headings are in order', levels.join(','));

  // Every table has a caption and scoped header cells.
  const tables = await page.$$eval('table', (ts) => ts.map((t) => ({
    caption: t.caption?.textContent?.trim() ?? '',
    unscoped: [...t.querySelectorAll('th')].filter((th) => !th.getAttribute('scope')).length,
  })));
  check(tables.length >= 2, 'at least the profiles and runs tables', `${tables.length} tables`);
  check(tables.every((t) => t.caption && t.unscoped === 0), 'every table has a caption and scoped <th>',
    JSON.stringify(tables));

  const profiles = page.getByRole('table', { name: /profiles/i });
  const runs = page.getByRole('table', { name: /runs/i });
  const banner = page.getByRole('alert');
  const stateCells = () => profiles.locator('tbody tr td:nth-of-type(1)').allInnerTexts();
  const profileRows = await profiles.locator('tbody tr').count();
  check(profileRows >= 1, 'the profiles table lists the profiles', `${profileRows} rows`);
  const profileText = await profiles.innerText();
  check(/Admin/.test(profileText), 'the profiles table names "Admin"');
  check(/Custom: Support/.test(profileText), 'percent-encoded profile names are shown decoded');

  if (phase === 'recovered') {
    // The org is fixed, but nothing has looked yet: the page still says locked out.
    check((await banner.count()) === 1, 'before "Check now" the page still says locked out');
    const started = Date.now();
    await submit(page, page.getByRole('button', { name: 'Check now' }));
    const took = (Date.now() - started) / 1000;
    check(took < 10, '"Check now" runs at once despite the lock-out backoff', `${took.toFixed(1)} s`);
  }

  const states = await stateCells();
  if (phase === 'locked-out') {
    // Locked out: the banner is the first thing after the summary, with the fix in words.
    check((await banner.count()) === 1 && (await banner.isVisible()), 'the lock-out banner shows');
    const said = await banner.innerText();
    check(/Locked out since/.test(said) && /Login IP Ranges/.test(said),
      'the banner says since when, what happened and what to do', said.replace(/\s+/g, ' '));
    check(states.every((s) => /unknown/.test(s) && /since/.test(s) && !/in sync/.test(s)),
      'every profile is "unknown since" its last read, none "in sync"', states.join(' | '));
    check((await runs.locator('tbody tr', { hasText: 'locked out' }).count()) >= 1,
      'a run row says "locked out" in words');
  } else {
    check((await banner.count()) === 0, 'no lock-out banner when not locked out');
    check(states.length > 0 && states.every((s) => /in sync/.test(s)), 'every profile is shown in sync',
      states.join(' | '));
  }
  if (phase === 'remediated') {
    // Runs: the start-up run remediated the org, with a text label (not colour alone).
    const remediated = runs.locator('tbody tr', { hasText: 'remediated' });
    check((await remediated.count()) >= 1, 'a run row shows "remediated"');
    if ((await remediated.count()) >= 1) {
      const row = await remediated.first().innerText();
      check(/\d+(\.\d+)?\s*(ms|s)\b/.test(row), 'the remediated run shows its duration', row.replace(/\s+/g, ' '));
    }
    // Attribution: the run the admin's edit caused names the admin under "Changed by".
    const expectChangedBy = process.env.IPGUARD_EXPECT_CHANGED_BY;
    if (expectChangedBy) {
      const blamed = runs.locator('tbody tr', { hasText: expectChangedBy });
      check((await blamed.count()) >= 1, `a run row names ${expectChangedBy} under "Changed by"`);
    }
  }
  if (phase === 'recovered') {
    const newest = await runs.locator('tbody tr').first().innerText();
    check(/in sync|remediated/.test(newest), 'the newest run says "in sync" or "remediated"',
      newest.replace(/\s+/g, ' '));
  }
  // Outcomes read as words, like the profile states; the codes stay for machines.
  const outcomes = await runs.locator('.badge').allInnerTexts();
  check(outcomes.every((o) => !/_/.test(o)), 'run outcomes are words ("in sync", not "in_sync")',
    outcomes.join(' | '));

  // Text contrast: every text element meets WCAG AA (4.5:1) against its effective background.
  const lowContrast = await page.evaluate(() => {
    const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const bg = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const bad = [];
    for (const el of document.querySelectorAll('body *')) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own) continue;
      const a = lum(rgb(getComputedStyle(el).color).slice(0, 3));
      const b = lum(bg(el));
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      if (ratio < 4.5) bad.push(`${el.tagName.toLowerCase()}.${el.className}: ${ratio.toFixed(2)}`);
    }
    return bad;
  });
  check(lowContrast.length === 0, 'text contrast is at least 4.5:1', lowContrast.slice(0, 5).join('; '));

  await page.screenshot({ path: shot('desktop'), fullPage: true });

  // A phone: the body never scrolls sideways; wide tables scroll inside their own wrapper,
  // and a table cut at the screen's edge says so in words.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  const overflow = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  check(overflow.scroll <= overflow.client, 'no horizontal overflow of the body at 390×844',
    overflow.scroll <= overflow.client ? '' : `scrollWidth ${overflow.scroll} > clientWidth ${overflow.client}`);
  const region = page.getByRole('region', { name: /profiles/i });
  const cut = await region.evaluate((r) => r.scrollWidth > r.clientWidth);
  const hint = profiles.locator('caption .scroll-hint');
  const hintShown = (await hint.count()) === 1 && (await hint.isVisible());
  check(cut, 'at 390 px the profiles table is wider than the screen (so it must say so)');
  check(hintShown && /scroll sideways/.test(await hint.innerText()),
    'at 390 px the profiles table says it scrolls sideways');
  await page.screenshot({ path: shot('phone'), fullPage: true });
  if (phase === 'remediated') {
    await page.setViewportSize({ width: 1280, height: 900 });
  }

  // Sign out: back to the form, the session gone; /status asks to sign in again.
  await submit(page, page.getByRole('button', { name: 'Sign out' }));
  check(new URL(page.url()).pathname === '/signin', 'signing out shows the sign-in form', page.url());
  check(!(await sessionCookie()), 'signing out removes the session cookie');
  if (phase === 'remediated') {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(outDir, 'signin-phone.png'), fullPage: true });
  }
  await page.goto(statusUrl);
  check(new URL(page.url()).pathname === '/signin', 'after signing out /status asks to sign in again',
    page.url());

  check(urls.every((u) => !u.includes(token)), 'the token never appears in a URL');
  console.log(`screenshots: ${shot('desktop')}, ${shot('phone')}`);
}, 'all status page checks passed');
