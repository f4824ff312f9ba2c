#!/usr/bin/env bash
# Checks the Salesforce DX project with Salesforce's own offline tools, every version pinned in
# package.json / package-lock.json (installed here with `npm ci`). No org and no network beyond
# the npm registry. Needs node (>= 20.19), java (>= 11, for PMD and apex-ls) and python3
# (>= 3.10, for the Flow Scanner engine); .ci/run installs the last two when they are missing.
#
#   1. parse-apex.mjs      every class and trigger parses (@apexdevtools/apex-parser)
#   2. resolve-source.mjs  every file under the package directories is a metadata component
#   3. sf project convert  from source and from manifest/package.xml: identical output
#   4. apex-ls             semantic check (types, methods, fields) against the platform library,
#                          after proving on a broken copy that it reports a compile error
#   5. code-analyzer.mjs   PMD Apex rules and the Flow Scanner: severity 1-2 fails, 3+ printed
#   6. placeholders.mjs    the README's placeholder table matches the files exactly
#
#   bash salesforce-metadata/scripts/ci-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The CLI must not phone home or try to update itself in CI.
export SF_DISABLE_TELEMETRY=true SFDX_DISABLE_TELEMETRY=true
export SF_AUTOUPDATE_DISABLE=true SFDX_AUTOUPDATE_DISABLE=true SF_DISABLE_AUTOUPDATE=true
export SF_SKIP_NEW_VERSION_CHECK=true SF_HIDE_RELEASE_NOTES=true SF_HIDE_RELEASE_NOTES_FOOTER=true
export SF_DISABLE_SOURCE_MEMBER_POLLING=true SF_USE_GENERIC_UNIX_KEYCHAIN=true
export NO_COLOR=1 FORCE_COLOR=0

start=$SECONDS
step() { printf '\n== salesforce-metadata: %s (%ss)\n' "$1" "$((SECONDS - start))"; }
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# `install`: only fetch the pinned tools (.ci/run does this while Rust compiles); `checks`:
# only check, with the tools already installed; no argument: both.
mode="${1:-all}"
case "$mode" in all | install | checks) ;; *) echo "usage: $0 [install|checks]" >&2; exit 2 ;; esac
if [ "$mode" != checks ]; then
  step "npm ci"
  npm ci --prefer-offline --no-audit --no-fund --loglevel=error
fi
[ "$mode" = install ] && exit 0
sf=(node node_modules/@salesforce/cli/bin/run.js)
"${sf[@]}" --version

step "1. Apex syntax (apex-parser)"
node scripts/parse-apex.mjs

step "2. every file resolves to a metadata type (source-deploy-retrieve)"
node scripts/resolve-source.mjs

step "3. sf project convert source: from the source tree and from the manifest"
"${sf[@]}" project convert source --root-dir force-app --output-dir "$scratch/from-source"
"${sf[@]}" project convert source --manifest manifest/package.xml --output-dir "$scratch/from-manifest"
"${sf[@]}" project convert source --source-dir legacy-connected-app --output-dir "$scratch/legacy"
(cd "$scratch/from-source" && find . -type f | sort) >"$scratch/source.files"
(cd "$scratch/from-manifest" && find . -type f | sort) >"$scratch/manifest.files"
if ! diff -u "$scratch/source.files" "$scratch/manifest.files"; then
  echo "FAIL: the manifest route packs different files than the source route (diff above: - source, + manifest)" >&2
  exit 1
fi
if ! diff -ru "$scratch/from-source" "$scratch/from-manifest"; then
  echo "FAIL: the manifest route packs different content or package.xml members than the source route" >&2
  exit 1
fi
echo "convert: both routes give the same $(wc -l <"$scratch/source.files") files and the same package.xml"
grep -q 'connectedApps/IPGuard_Legacy.connectedApp' <(cd "$scratch/legacy" && find . -type f) ||
  { echo "FAIL: legacy-connected-app did not convert to a ConnectedApp" >&2; exit 1; }

step "4. Apex semantics (apex-ls from Code Analyzer's PMD engine)"
apexls() {
  java -cp "node_modules/@salesforce/code-analyzer-pmd-engine/dist/java-lib/*" \
    io.github.apexdevtools.apexls.CheckForIssues --nocache --detail warnings --workspace "$1"
}
# Self-test first: a copy with a call to a method that does not exist must fail.
mkdir "$scratch/broken"
cp -r sfdx-project.json .forceignore force-app legacy-connected-app "$scratch/broken/"
broken="$scratch/broken/force-app/main/default/classes/IPGuardEventCallout.cls"
sed -i '$ d' "$broken" # drop the class's closing brace
printf '    static void ciSelfTest() { String s = %s; s.noSuchMethodForCiSelfTest(); }\n}\n' "'x'" >>"$broken"
set +e
selftest="$(apexls "$scratch/broken" 2>&1)"
selftest_rc=$?
set -e
if [ "$selftest_rc" -eq 0 ] || ! grep -q "noSuchMethodForCiSelfTest" <<<"$selftest"; then
  echo "FAIL: apex-ls self-test: a call to an undefined method was not reported (exit $selftest_rc):" >&2
  echo "$selftest" >&2
  exit 1
fi
echo "apex-ls self-test: the broken copy is refused (exit $selftest_rc): $(grep -m1 noSuchMethod <<<"$selftest")"
set +e
report="$(apexls .)"
rc=$?
set -e
[ -n "$report" ] && echo "$report"
if [ "$rc" -ne 0 ]; then
  echo "FAIL: apex-ls reports errors (exit $rc)" >&2
  exit 1
fi
echo "apex-ls: no errors or warnings in $(find force-app legacy-connected-app -name '*.cls' -o -name '*.trigger' | wc -l) Apex files"

step "5. Code Analyzer: PMD Apex rules and Flow Scanner"
node scripts/code-analyzer.mjs

step "6. README placeholders"
node scripts/placeholders.mjs

step "done"
