#!/usr/bin/env node
// Parses every Apex class (*.cls) and trigger (*.trigger) under the given directories (default:
// force-app and legacy-connected-app, relative to salesforce-metadata/) with
// @apexdevtools/apex-parser, the ANTLR grammar that aims to match the platform compiler.
// Lexer and parser errors are both collected; any error, an empty file set, or a file that does
// not parse to the end fails with exit status 1. Syntax only: types, fields and SOQL are not
// resolved against an org.
//
//   cd salesforce-metadata && npm ci && node scripts/parse-apex.mjs
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ApexErrorListener, ApexParserFactory } from "@apexdevtools/apex-parser";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dirs = process.argv.length > 2 ? process.argv.slice(2) : ["force-app", "legacy-connected-app"];

class Collect extends ApexErrorListener {
  errors = [];
  apexSyntaxError(line, column, msg) {
    this.errors.push(`${line}:${column + 1} ${msg}`);
  }
}

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== "node_modules") yield* walk(path);
    } else if (name.endsWith(".cls") || name.endsWith(".trigger")) {
      yield path;
    }
  }
}

const files = dirs.flatMap((d) => [...walk(resolve(root, d))]).sort();
if (files.length === 0) {
  console.error(`parse-apex: no .cls or .trigger files under ${dirs.join(", ")}`);
  process.exit(1);
}
let failed = 0;
for (const file of files) {
  const source = readFileSync(file, "utf8");
  const listener = new Collect();
  const { parser } = ApexParserFactory.createLexerAndParser(source, listener);
  const isTrigger = file.endsWith(".trigger");
  const tree = isTrigger ? parser.triggerUnit() : parser.compilationUnit();
  // The entry rules end with EOF; check anyway that nothing was left unread.
  if (parser.getCurrentToken().type !== -1) {
    listener.errors.push(`${parser.getCurrentToken().line}: input left after the ${isTrigger ? "trigger" : "class"}`);
  }
  const name = relative(root, file);
  if (listener.errors.length > 0 || tree.exception) {
    failed++;
    console.error(`FAIL ${name}`);
    for (const e of listener.errors) console.error(`  ${name}:${e}`);
  } else {
    console.log(`ok   ${name}`);
  }
}
console.log(`parse-apex: ${files.length - failed} of ${files.length} Apex files parse`);
process.exit(failed === 0 ? 0 : 1);
