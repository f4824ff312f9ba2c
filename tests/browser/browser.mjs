// What the browser scripts share: headless Debian Chromium in a fresh profile, the check
// log, form submission and the exit status.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

let failures = 0;

// Logs one check; a failed one makes the script exit non-zero at the end.
export function check(ok, what, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? ` — ${detail}` : ''}`);
  if (!ok) failures += 1;
}

// Chromium (CHROMIUM, default /usr/bin/chromium) with a fresh profile: no state leaks
// between runs, nothing written to $HOME. Screenshots go to `outDir`.
export async function launch(outDir) {
  mkdirSync(outDir, { recursive: true });
  const userDataDir = mkdtempSync(join(tmpdir(), 'ipguard-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  return { context, userDataDir };
}

// Clicks a form's button and waits for the page the answer (or its redirect) shows.
export async function submit(page, button) {
  await Promise.all([page.waitForEvent('framenavigated', { timeout: 30000 }), button.click()]);
  await page.waitForLoadState('load');
}

// Runs `checks`, counts a thrown error as a failure, closes the browser and exits non-zero
// when any check failed.
export async function run({ context, userDataDir }, checks, done) {
  try {
    await checks();
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
  console.log(done);
}
