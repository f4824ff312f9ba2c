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
import { createSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';
import jsforce from 'jsforce';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const SIM_URL = env('SIM_URL');
const KEY = readFileSync(env('SIM_KEY_FILE'), 'utf8');
const CLIENT_ID = env('SIM_CLIENT_ID');
const USERNAME = env('SIM_USERNAME');
const DURATIONS = env('DURATIONS_MS').split(',').map(Number);
const PENDING = Number(env('PENDING_MS'));
const VERSION = '66.0';
const NS = 'http://soap.sforce.com/2006/04/metadata';

const b64url = (data) => Buffer.from(data).toString('base64url');
function assertion() {
  const header = b64url(JSON.stringify({ alg: 'RS256' }));
  const claims = b64url(JSON.stringify({
    iss: CLIENT_ID, sub: USERNAME, aud: 'https://login.salesforce.com',
    exp: Math.floor(Date.now() / 1000) + 180,
  }));
  const signer = createSign('RSA-SHA256');
  signer.update(`${header}.${claims}`);
  return `${header}.${claims}.${b64url(signer.sign(KEY))}`;
}

// A two-entry deflated zip: package.xml and one profile (the same package ipguard deploys).
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (buf) => {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};
function zip(entries) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const [name, text] of Object.entries(entries)) {
    const nameBuf = Buffer.from(name, 'utf8');
    const raw = Buffer.from(text, 'utf8');
    const data = deflateRawSync(raw);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(crc32(raw), 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(nameBuf.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc32(raw), 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(raw.length, 24);
    central.writeUInt16LE(nameBuf.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBuf, data);
    centrals.push(central, nameBuf);
    offset += local.length + nameBuf.length + data.length;
  }
  const centralBuf = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(entries).length, 8);
  end.writeUInt16LE(Object.keys(entries).length, 10);
  end.writeUInt32LE(centralBuf.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, centralBuf, end]);
}
const archive = zip({
  'package.xml': `<?xml version="1.0" encoding="UTF-8"?><Package xmlns="${NS}"><types><members>Standard</members><name>Profile</name></types><version>${VERSION}</version></Package>`,
  'profiles/Standard.profile': `<?xml version="1.0" encoding="UTF-8"?><Profile xmlns="${NS}"><loginIpRanges><description>jsforce timing</description><endAddress>192.0.2.9</endAddress><startAddress>192.0.2.1</startAddress></loginIpRanges></Profile>`,
});

async function admin(method, path, body) {
  const response = await fetch(`${SIM_URL}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${await response.text()}`);
  return response.status === 204 ? null : response.json();
}

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
