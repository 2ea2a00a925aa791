// The closing lines of scripts/test.sh, from the vitest JSON reports in a directory:
//   one line per distinct reason a test was skipped (the tests' meta.skipReason: how to make it run),
//   then `vscode-client: N passed, N failed, N skipped`, always last.
// Usage: node scripts/summary.mjs <results dir> <report name>...   (reads <dir>/<name>.json)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, ...names] = process.argv.slice(2);
if (!dir || names.length === 0) {
    console.error('usage: node scripts/summary.mjs <results dir> <report name>...');
    process.exit(2);
}
let passed = 0;
let failed = 0;
let skipped = 0;
const reasons = new Set();
for (const name of names) {
    const report = JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8'));
    passed += report.numPassedTests;
    failed += report.numFailedTests;
    skipped += report.numPendingTests + report.numTodoTests;
    for (const file of report.testResults) {
        for (const test of file.assertionResults) {
            if (test.status !== 'passed' && test.status !== 'failed' && test.meta?.skipReason) {
                reasons.add(test.meta.skipReason);
            }
        }
    }
}
console.log('');
for (const reason of reasons) {
    console.log(`vscode-client: ${reason}`);
}
console.log(`vscode-client: ${passed} passed, ${failed} failed, ${skipped} skipped`);
