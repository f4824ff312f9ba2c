#!/usr/bin/env node
// The README's placeholder table (between <!-- placeholders:start --> and <!-- placeholders:end -->,
// first column a `backticked` value) must match the package exactly: every value it names occurs in
// the files it lists, and nothing in force-app/, legacy-connected-app/ or manifest/ looks like a
// placeholder (YOUR-…, …@example.com, PASTE … HERE, TODO, CHANGEME, …) unless the table names it.
// Apex test classes are skipped: their example values are test data, never filled in.
// The scanner proves itself on a sample first, so it cannot pass by matching nothing.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PATTERNS = [
  /\bYOUR[-_][A-Za-z0-9_.-]+/g,
  /[A-Za-z0-9._%+-]*@?\bexample\.(?:com|org|net)\b/g,
  /PASTE\b[^<\n]*?\bHERE\b/g,
  /\b(?:TODO|FIXME|CHANGEME|CHANGE[-_]ME|REPLACE[-_]?ME|XXX+)\b/g,
];
const scan = (text) => PATTERNS.flatMap((p) => [...text.matchAll(p)].map((m) => m[0]));

const sample = "<a>https://YOUR-APP.herokuapp.com</a><b>me@example.com</b><c>PASTE IT HERE</c><d>TODO</d>";
const found = scan(sample);
if (found.length !== 4) {
  console.error(`placeholders: self-test found ${JSON.stringify(found)} in the sample, expected 4`);
  process.exit(1);
}

const readme = readFileSync(join(root, "README.md"), "utf8");
const block = readme.split("<!-- placeholders:start -->")[1]?.split("<!-- placeholders:end -->")[0];
if (!block) {
  console.error("placeholders: README.md has no <!-- placeholders:start/end --> table");
  process.exit(1);
}
const rows = [...block.matchAll(/^\|\s*`([^`]+)`\s*\|([^|]*)\|/gm)].map((m) => ({
  value: m[1],
  files: [...m[2].matchAll(/`([^`]+)`/g)].map((f) => f[1]),
}));
if (rows.length === 0) {
  console.error("placeholders: the README table lists no placeholder");
  process.exit(1);
}

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else if (!/Test\.cls$/.test(name)) yield path;
  }
}
const files = ["force-app", "legacy-connected-app", "manifest"].flatMap((d) => [...walk(join(root, d))]);
const texts = new Map(files.map((f) => [relative(root, f), readFileSync(f, "utf8")]));

let failed = 0;
for (const { value, files: listed } of rows) {
  const holders = [...texts].filter(([, t]) => t.includes(value)).map(([f]) => f);
  for (const f of listed) {
    if (!holders.some((h) => h.endsWith(f))) {
      console.error(`placeholders: README says ${f} holds \`${value}\`, it does not`);
      failed++;
    }
  }
  for (const h of holders) {
    if (!listed.some((f) => h.endsWith(f))) {
      console.error(`placeholders: ${h} holds \`${value}\`, the README's table does not list it`);
      failed++;
    }
  }
  if (holders.length === 0) failed++;
  console.log(`placeholder \`${value}\`: ${holders.length} file(s)`);
}
for (const [file, text] of texts) {
  for (const hit of scan(text)) {
    if (!rows.some((r) => r.value.includes(hit) || hit.includes(r.value))) {
      console.error(`placeholders: ${file} has \`${hit}\`, which the README's table does not name`);
      failed++;
    }
  }
}
console.log(`placeholders: ${rows.length} named in the README, ${failed} problem(s)`);
process.exit(failed === 0 ? 0 : 1);
