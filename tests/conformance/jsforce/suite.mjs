// jsforce, unmodified, against `ipguard sim --tls` (issue 13). Not written by the sim's
// authors' code: every Salesforce call below is jsforce's own public API; the only other
// requests are the sim's admin endpoints (/sim/...) that set the org up, as a person would in
// Setup. Environment (set by ../run.sh): SIM_URL, SIM_KEY_FILE, SIM_CLIENT_ID, SIM_USERNAME;
// NODE_EXTRA_CA_CERTS trusts the sim's generated CA (certificate verification stays on).
import jsforce from 'jsforce';
import { SIM_URL, VERSION, admin, assertion, packageXml, range, zip, NS } from './helpers.mjs';

const tokenCalls = async () => (await admin('GET', '/sim/calls')).filter((c) => c.operation === 'token').length;

function expect(condition, message) {
  if (!condition) throw new Error(message);
}
const asArray = (value) => (value === undefined || value === null ? [] : [].concat(value));

// --- the checks -------------------------------------------------------------------------

/** A connection that logs in (and logs in again when its session dies) with a JWT. */
function connect() {
  const conn = new jsforce.Connection({
    loginUrl: SIM_URL,
    version: VERSION,
    refreshFn: (c, callback) => {
      c.oauth2
        .requestToken({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: assertion() })
        .then((res) => callback(null, res.access_token, res), (err) => callback(err));
    },
  });
  conn.metadata.pollInterval = 200;
  conn.metadata.pollTimeout = 20000;
  return conn;
}

const conn = connect();
const checks = [
  ['JWT bearer login', async () => {
    const info = await conn.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: assertion() });
    expect(conn.instanceUrl === SIM_URL, `instanceUrl ${conn.instanceUrl}`);
    expect(/^00D/.test(info.organizationId), `organizationId ${info.organizationId}`);
  }],
  ['describeMetadata', async () => {
    const result = await conn.metadata.describe(VERSION);
    const profile = asArray(result.metadataObjects).find((o) => o.xmlName === 'Profile');
    expect(profile && profile.directoryName === 'profiles', JSON.stringify(result));
  }],
  ['listMetadata Profile', async () => {
    const list = asArray(await conn.metadata.list([{ type: 'Profile' }], VERSION));
    const names = list.map((p) => p.fullName);
    expect(names.includes('Admin') && names.includes('Custom%3A Support'), `listed ${names}`);
    expect(list.every((p) => p.type === 'Profile' && p.fileName.startsWith('profiles/')), JSON.stringify(list[0]));
  }],
  ['readMetadata Profile', async () => {
    const profiles = asArray(await conn.metadata.read('Profile', ['Custom%3A Support', 'Admin']));
    const support = profiles.find((p) => p.fullName === 'Custom%3A Support');
    const ranges = asArray(support && support.loginIpRanges);
    expect(ranges.length === 1 && ranges[0].startAddress === '198.51.100.0', JSON.stringify(profiles));
  }],
  ['deploy + completion', async () => {
    const archive = zip({
      'package.xml': packageXml('Standard'),
      'profiles/Standard.profile': `<?xml version="1.0" encoding="UTF-8"?><Profile xmlns="${NS}">${range('192.0.2.1', '192.0.2.9', 'jsforce')}</Profile>`,
    });
    const result = await conn.metadata.deploy(archive, { singlePackage: true, rollbackOnError: true }).complete(true);
    expect(result.status === 'Succeeded' && String(result.success) === 'true', JSON.stringify(result));
    const [standard] = asArray(await conn.metadata.read('Profile', ['Standard']));
    const ranges = asArray(standard.loginIpRanges);
    expect(ranges.length === 1 && ranges[0].endAddress === '192.0.2.9', JSON.stringify(standard));
  }],
  ['REST deploy (deployRest) + completion and REST status', async () => {
    const archive = zip({
      'package.xml': packageXml('Standard'),
      'profiles/Standard.profile': `<?xml version="1.0" encoding="UTF-8"?><Profile xmlns="${NS}">${range('192.0.2.20', '192.0.2.29', 'jsforce rest')}</Profile>`,
    });
    const locator = conn.metadata.deployRest(archive, { singlePackage: true, rollbackOnError: true });
    const result = await locator.complete(true);
    expect(result.status === 'Succeeded' && String(result.success) === 'true', JSON.stringify(result));
    const rest = await conn.metadata.checkDeployStatus(result.id, true, true);
    expect(rest.status === 'Succeeded' && rest.done === true && rest.id === result.id, JSON.stringify(rest));
    const successes = asArray(rest.details && rest.details.componentSuccesses);
    expect(successes.some((c) => c.fullName === 'Standard'), JSON.stringify(rest.details));
    const [standard] = asArray(await conn.metadata.read('Profile', ['Standard']));
    const ranges = asArray(standard.loginIpRanges);
    expect(ranges.length === 1 && ranges[0].endAddress === '192.0.2.29', JSON.stringify(standard));
  }],
  ['a failed deploy', async () => {
    // custom belongs before loginIpRanges in Profile's XSD sequence: Salesforce refuses it.
    const archive = zip({
      'package.xml': packageXml('Admin'),
      'profiles/Admin.profile': `<?xml version="1.0" encoding="UTF-8"?><Profile xmlns="${NS}">${range('192.0.2.1', '192.0.2.1')}<custom>false</custom></Profile>`,
    });
    const result = await conn.metadata.deploy(archive, { singlePackage: true, rollbackOnError: true }).complete(true);
    expect(result.status === 'Failed' && String(result.success) === 'false', JSON.stringify(result));
    const failures = asArray(result.details && result.details.componentFailures);
    expect(failures.length === 1 && /invalid at this location/.test(failures[0].problem), JSON.stringify(failures));
  }],
  ['SOQL query with paging (nextRecordsUrl)', async () => {
    for (const n of [1, 2, 3, 4, 5]) {
      await admin('PUT', '/sim/profiles/Admin/login-ip-ranges', [{ start: `198.18.0.${n}`, end: `198.18.0.${n}` }]);
    }
    await admin('PUT', '/sim/settings', { query_page_size: 2 });
    const soql = 'SELECT Id, Action, Section, Display, CreatedDate, CreatedBy.Username FROM SetupAuditTrail ORDER BY CreatedDate';
    const first = await conn.query(soql);
    expect(first.done === false && first.nextRecordsUrl && first.records.length === 2, JSON.stringify(first));
    const second = await conn.queryMore(first.nextRecordsUrl);
    expect(second.records.length === 2, JSON.stringify(second));
    const { records: all } = await conn.query(soql).run({ autoFetch: true, maxFetch: 1000 });
    expect(all.length === first.totalSize && first.totalSize >= 6, `fetched ${all.length} of ${first.totalSize}`);
    expect(all.every((r) => r.CreatedBy && r.CreatedBy.Username), JSON.stringify(all[0]));
  }],
  ['session expiry and refresh (SOAP and REST)', async () => {
    const before = await tokenCalls();
    await admin('PUT', '/sim/faults', { next_failures: ['invalid_session'] });
    const list = asArray(await conn.metadata.list([{ type: 'Profile' }], VERSION));
    expect(list.length > 0, 'listMetadata after refresh');
    await admin('PUT', '/sim/faults', { next_failures: ['invalid_session'] });
    const count = await conn.query('SELECT Id FROM SetupAuditTrail LIMIT 1');
    expect(count.records.length === 1, JSON.stringify(count));
    const after = await tokenCalls();
    expect(after === before + 2, `token calls ${before} -> ${after}: jsforce refreshed twice`);
  }],
];

console.log(`jsforce ${jsforce.VERSION} against ${SIM_URL}`);
let passed = 0;
let failed = 0;
for (const [name, run] of checks) {
  const started = Date.now();
  try {
    await run();
    passed += 1;
    console.log(`ok    ${name} (${Date.now() - started} ms)`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL  ${name}: ${err && err.stack ? err.stack : err}`);
  }
}
console.log(`jsforce: ${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
