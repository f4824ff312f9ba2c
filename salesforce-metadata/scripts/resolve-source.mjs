#!/usr/bin/env node
// Every file under the given package directories (default: force-app and legacy-connected-app)
// must belong to a metadata component, as the Salesforce CLI's own resolver
// (@salesforce/source-deploy-retrieve, the library behind `sf project convert/deploy`) sees it.
// The CLI throws on a *-meta.xml it cannot type, but a stray file without a metadata suffix is
// silently left out of the deploy; this lists both. Files matched by .forceignore are skipped,
// as the CLI skips them. Exit status 1 on any unresolved file or an empty directory.
import { readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ComponentSet, ForceIgnore } from "@salesforce/source-deploy-retrieve";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dirs = process.argv.length > 2 ? process.argv.slice(2) : ["force-app", "legacy-connected-app"];
const ignore = ForceIgnore.findAndCreate(root);

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else yield path;
  }
}

let failed = 0;
for (const dir of dirs) {
  const abs = resolve(root, dir);
  const claimed = new Set();
  const set = ComponentSet.fromSource(abs); // throws TypeInferenceError on an untyped *-meta.xml
  const add = (c) => {
    if (c.xml) claimed.add(c.xml);
    for (const f of c.walkContent()) claimed.add(f);
    for (const child of c.getChildren()) add(child);
  };
  let components = 0;
  for (const c of set.getSourceComponents()) {
    add(c);
    components++;
  }
  const files = [...walk(abs)].filter((f) => !ignore.denies(f));
  const stray = files.filter((f) => ![...claimed].some((c) => c === f || f.startsWith(c + "/")));
  for (const f of stray) console.error(`resolve-source: ${relative(root, f)} does not resolve to a metadata component`);
  console.log(`resolve-source: ${dir}: ${files.length} files, ${components} components, ${stray.length} unresolved`);
  if (files.length === 0 || stray.length > 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
