// Loads ipguard's `/status` page in headless Debian Chromium and checks what an operator sees.
//
//   node tests/browser/status-page.mjs <base-url> <out-dir>
//
// With IPGUARD_EXPECT_LOCKED_OUT=1 the org is expected to have locked ipguard out: the banner
// must show, a run must say `locked_out`, and the screenshots are named status-locked-out-*.
//
// The admin token comes from the environment (IPGUARD_ADMIN_TOKEN), never from argv, so it
// does not show up in `ps` or in a test's failure message. Screenshots (desktop and phone,
// full page) are written to <out-dir>. Exits non-zero on the first failed check.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, outDir] = process.argv.slice(2);
const token = process.env.IPGUARD_ADMIN_TOKEN;
if (!base || !outDir || !token) {
  console.error('usage: IPGUARD_ADMIN_TOKEN=… node status-page.mjs <base-url> <out-dir>');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const statusUrl = new URL('/status', base).toString();
const lockedOut = Boolean(process.env.IPGUARD_EXPECT_LOCKED_OUT);
const shot = (device) => join(outDir, `status-${lockedOut ? 'locked-out-' : ''}${device}.png`);

let failures = 0;
function check(ok, what, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? ` — ${detail}` : ''}`);
  if (!ok) failures += 1;
}

mkdirSync(outDir, { recursive: true });
// A fresh profile every run: no state leaks between runs, nothing written to $HOME.
const userDataDir = mkdtempSync(join(tmpdir(), 'ipguard-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 1280, height: 900 },
});

try {
  const page = context.pages()[0] ?? (await context.newPage());

  // Without the token: the service refuses, and the page is not shown.
  const anonymous = await page.goto(statusUrl);
  check(anonymous?.status() === 401, 'GET /status without the admin token is refused with 401',
    `got ${anonymous?.status()}`);

  // A browser can't send a bearer token on a plain navigation; tests (and operators, with an
  // extension or a proxy) add it as a header. Accept asks for the HTML rendering.
  await page.setExtraHTTPHeaders({ Authorization: `Bearer ${token}`, Accept: 'text/html' });
  const response = await page.goto(statusUrl);
  check(response?.status() === 200, 'GET /status with the admin token answers 200',
    `got ${response?.status()}`);
  check((response?.headers()['content-type'] ?? '').startsWith('text/html'),
    'the answer is HTML', response?.headers()['content-type']);

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

  // Profiles: the table lists every guarded profile of the simulated org.
  const profiles = page.getByRole('table', { name: /profiles/i });
  const profileRows = await profiles.locator('tbody tr').count();
  check(profileRows >= 1, 'the profiles table lists the profiles', `${profileRows} rows`);
  const profileText = await profiles.innerText();
  check(/Admin/.test(profileText), 'the profiles table names "Admin"');
  check(/in sync/.test(profileText), 'a profile is shown in sync');
  check(/Custom: Support/.test(profileText), 'percent-encoded profile names are shown decoded');

  // Runs: the start-up run remediated the org, with a text label (not colour alone).
  const runs = page.getByRole('table', { name: /runs/i });
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

  const banner = page.getByRole('alert');
  if (lockedOut) {
    // Locked out: the banner is the first thing after the summary, with the fix in words.
    check((await banner.count()) === 1 && (await banner.isVisible()), 'the lock-out banner shows');
    check(/Locked out/.test(await banner.innerText()) && /Login IP Ranges/.test(await banner.innerText()),
      'the banner says what happened and what to do');
    check((await runs.locator('tbody tr', { hasText: 'locked_out' }).count()) >= 1,
      'a run row shows "locked_out"');
  } else {
    check((await banner.count()) === 0, 'no lock-out banner when not locked out');
  }

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

  // A phone: the body never scrolls sideways; wide tables scroll inside their own wrapper.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  const overflow = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  check(overflow.scroll <= overflow.client, 'no horizontal overflow of the body at 390×844',
    overflow.scroll <= overflow.client ? '' : `scrollWidth ${overflow.scroll} > clientWidth ${overflow.client}`);
  await page.screenshot({ path: shot('phone'), fullPage: true });

  console.log(`screenshots: ${shot('desktop')}, ${shot('phone')}`);
} catch (e) {
  console.error(`FAIL ${e?.stack ?? e}`);
  failures += 1;
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}

if (failures) {
  console.error(`${failures} check(s) failed`);
  process.exit(1);
}
console.log('all status page checks passed');
