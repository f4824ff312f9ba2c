// What the jsforce scripts share and jsforce does not do: the environment ../run.sh (or
// benches/deploy.rs) sets, the JWT bearer assertion, a zip of uncompressed entries, the
// profile package a deploy carries, and the sim's admin API (/sim/...).
import { createSign } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
export const SIM_URL = env('SIM_URL');
const KEY = readFileSync(env('SIM_KEY_FILE'), 'utf8');
export const CLIENT_ID = env('SIM_CLIENT_ID');
export const USERNAME = env('SIM_USERNAME');
export const VERSION = '66.0';

const b64url = (data) => Buffer.from(data).toString('base64url');

/** An RS256 JWT bearer assertion, as Salesforce's JWT bearer flow documents it. */
export function assertion() {
  const header = b64url(JSON.stringify({ alg: 'RS256' }));
  const claims = b64url(JSON.stringify({
    iss: CLIENT_ID,
    sub: USERNAME,
    aud: 'https://login.salesforce.com',
    exp: Math.floor(Date.now() / 1000) + 180,
  }));
  const signer = createSign('RSA-SHA256');
  signer.update(`${header}.${claims}`);
  return `${header}.${claims}.${b64url(signer.sign(KEY))}`;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A zip of uncompressed entries (the format's "stored" method). */
export function zip(entries) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const [name, text] of Object.entries(entries)) {
    const nameBuf = Buffer.from(name, 'utf8');
    const data = Buffer.from(text, 'utf8');
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBuf.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
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

export const NS = 'http://soap.sforce.com/2006/04/metadata';
export const packageXml = (member) => `<?xml version="1.0" encoding="UTF-8"?>
<Package xmlns="${NS}"><types><members>${member}</members><name>Profile</name></types><version>${VERSION}</version></Package>`;
export const range = (start, end, description) => `<loginIpRanges>${description ? `<description>${description}</description>` : ''}<endAddress>${end}</endAddress><startAddress>${start}</startAddress></loginIpRanges>`;

export async function admin(method, path, body) {
  const response = await fetch(`${SIM_URL}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${await response.text()}`);
  return response.status === 204 ? null : response.json();
}
