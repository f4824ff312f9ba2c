#!/usr/bin/env node
// Runs Salesforce Code Analyzer's PMD engine (Apex rules) and Flow Scanner engine on this DX
// project, driven through @salesforce/code-analyzer-core (the library the `sf code-analyzer`
// plugin wraps), with the versions pinned in package.json. Prints every violation; exits 1 when
// any has severity 1 (Critical) or 2 (High), or when an engine reports an error or selects no
// rule. Severity 3 (Moderate) and below are printed only.
//
//   cd salesforce-metadata && npm ci && node scripts/code-analyzer.mjs [dir ...]
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CodeAnalyzer, CodeAnalyzerConfig, EventType, LogLevel } from "@salesforce/code-analyzer-core";
import * as pmd from "@salesforce/code-analyzer-pmd-engine";
import * as flow from "@salesforce/code-analyzer-flow-engine";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dirs = (process.argv.length > 2 ? process.argv.slice(2) : ["force-app", "legacy-connected-app"]).map((d) =>
  resolve(root, d),
);

const config = CodeAnalyzerConfig.fromObject({ log_level: 3 }, root);
const analyzer = new CodeAnalyzer(config);
const engineErrors = [];
analyzer.onEvent(EventType.LogEvent, (e) => {
  if (e.logLevel <= LogLevel.Error) engineErrors.push(`${e.source}: ${e.message}`);
  if (e.logLevel <= LogLevel.Warn) console.error(`[${e.source}] ${e.message}`);
});
await analyzer.addEnginePlugin(pmd.createEnginePlugin());
await analyzer.addEnginePlugin(withRemoveEventListener(flow.createEnginePlugin()));

// The newest Flow Scanner engine on the npm registry (0.22.0) was built against engine API 0.24.0,
// whose Engine base class has no removeEventListener; core 0.52.0 calls it after each engine
// call. Add it, backed by the same EventEmitter the base class already holds.
function withRemoveEventListener(plugin) {
  const createEngine = plugin.createEngine.bind(plugin);
  plugin.createEngine = async (...args) => {
    const engine = await createEngine(...args);
    if (typeof engine.removeEventListener !== "function") {
      engine.removeEventListener = (type, callback) => engine.eventEmitter.off(type, callback);
    }
    return engine;
  };
  return plugin;
}

const workspace = await analyzer.createWorkspace(dirs);
// pmd: every Apex rule PMD's engine offers (the engine's Apex tag); flow: all Flow Scanner rules.
const selection = await analyzer.selectRules(["pmd:Apex", "flow"], { workspace });
const counts = Object.fromEntries(["pmd", "flow"].map((e) => [e, selection.getRulesFor(e).length]));
console.log(`code-analyzer: ${counts.pmd} PMD Apex rules, ${counts.flow} Flow Scanner rules`);
if (counts.pmd === 0 || counts.flow === 0) {
  console.error("code-analyzer: an engine selected no rule");
  process.exit(1);
}
const results = await analyzer.run(selection, { workspace });

let blocking = 0;
for (const engine of ["pmd", "flow"]) {
  const r = results.getEngineRunResults(engine);
  for (const v of r.getViolations()) {
    const rule = v.getRule();
    const loc = v.getPrimaryLocation();
    const file = loc.getFile() ? relative(root, loc.getFile()) : "?";
    const sev = rule.getSeverityLevel();
    if (sev <= 2) blocking++;
    console.log(
      `${sev <= 2 ? "FAIL" : "note"} sev ${sev} ${engine}:${rule.getName()} ${file}:${loc.getStartLine() ?? "?"} ${v.getMessage().trim()}`,
    );
  }
  if (r.getViolationCount() === 0) console.log(`${engine}: no violations`);
}
if (engineErrors.length > 0) {
  for (const e of engineErrors) console.error(`code-analyzer: engine error: ${e}`);
  process.exit(1);
}
console.log(`code-analyzer: ${results.getViolationCount()} violation(s), ${blocking} of severity 1-2`);
process.exit(blocking === 0 ? 0 : 1);
