// jsforce's `deploy(...).complete()`, unmodified, timed against the simulated org for
// `cargo bench --bench deploy` (issue 17): what a user would pick instead of ipguard to wait for
// a Metadata API deploy. For each duration the bench asks for, the sim is set to finish
// deploys that long after submission, one deploy goes through jsforce's default poll
// (pollInterval 1000 ms), and one JSON line reports the deploy id, when `complete()` resolved
// (epoch ms) and how many checkDeployStatus calls the sim received. The bench reads each
// deploy's completedDate from the sim and computes how late jsforce saw it.
//
// Environment (set by benches/deploy.rs): SIM_URL, SIM_KEY_FILE, SIM_CLIENT_ID, SIM_USERNAME,
// DURATIONS_MS (comma-separated), PENDING_MS (the Pending part of each duration).
import jsforce from 'jsforce';
import { SIM_URL, VERSION, admin, assertion, env, packageXml, range, zip, NS } from './helpers.mjs';

const DURATIONS = env('DURATIONS_MS').split(',').map(Number);
const PENDING = Number(env('PENDING_MS'));
// The package ipguard deploys: package.xml and one profile.
const archive = zip({
  'package.xml': packageXml('Standard'),
  'profiles/Standard.profile': `<?xml version="1.0" encoding="UTF-8"?><Profile xmlns="${NS}">${range('192.0.2.1', '192.0.2.9', 'jsforce timing')}</Profile>`,
});

const conn = new jsforce.Connection({ loginUrl: SIM_URL, version: VERSION });
await conn.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: assertion() });
// jsforce's default pollInterval (1000 ms) stays; its default pollTimeout (10 s) would fail a
// 10 s deploy, so it is raised as a user waiting for one would.
conn.metadata.pollTimeout = 120000;

for (const duration of DURATIONS) {
  const pending = Math.min(PENDING, duration);
  await admin('PUT', '/sim/settings', { deploy_pending_ms: pending, deploy_in_progress_ms: duration - pending });
  await admin('DELETE', '/sim/calls');
  const result = await conn.metadata.deploy(archive, { singlePackage: true, rollbackOnError: true }).complete();
  const observed = Date.now();
  if (result.status !== 'Succeeded') throw new Error(`deploy ${result.id}: ${JSON.stringify(result)}`);
  const calls = (await admin('GET', '/sim/calls')).filter((c) => c.operation === 'checkDeployStatus').length;
  console.log(`DEPLOY_JSON ${JSON.stringify({ id: result.id, duration_ms: duration, observed_ms: observed, calls })}`);
}
