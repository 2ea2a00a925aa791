/**
 * `make test` on a machine without Chromium: the browser test skips with one line saying how to enable it,
 * repeated by scripts/summary.mjs above the closing line; with CI=true it fails instead. Runs the real
 * browser project in a child vitest with CHROMIUM_PATH pointing to a file that does not exist.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isCI } from '../requirements';

const client = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'cc-skips-'));
const missing = join(dir, 'no-such-chromium');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The browser project in a child vitest, with the parent's vitest variables removed. */
function runBrowserTest(ci: string | undefined, report: string) {
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) {
        if (!key.startsWith('VITEST') && key !== 'CI' && key !== 'NODE_ENV') {
            env[key] = value;
        }
    }
    env.CHROMIUM_PATH = missing;
    env.NO_COLOR = '1';
    if (ci !== undefined) {
        env.CI = ci;
    }
    const args = ['node_modules/vitest/vitest.mjs', 'run', '--project', 'browser', '--reporter=default', '--reporter=json', `--outputFile=${join(dir, `${report}.json`)}`];
    const run = spawnSync(process.execPath, args, { cwd: client, env, encoding: 'utf8', timeout: 120_000 });
    return { status: run.status, output: run.stdout + run.stderr };
}

function summary(...reports: string[]): string[] {
    const run = spawnSync(process.execPath, ['scripts/summary.mjs', dir, ...reports], { cwd: client, encoding: 'utf8' });
    expect(run.status).toBe(0);
    return run.stdout.trim().split('\n');
}

describe('the browser test without Chromium', () => {
    it('skips outside CI with one line saying how to enable it, repeated above the closing line', () => {
        const { status, output } = runBrowserTest(undefined, 'browser');
        expect(status, output).toBe(0);
        const line = `Skipped the browser test (search view in Chromium): no Chromium at ${missing}. To run it: apt-get install chromium, or set CHROMIUM_PATH to a Chromium binary.`;
        expect(output.split('\n').filter((l) => l.includes('Skipped the browser test'))).toEqual([line]);

        const report = JSON.parse(readFileSync(join(dir, 'browser.json'), 'utf8')) as { numTotalTests: number; numPendingTests: number };
        expect(report.numTotalTests).toBeGreaterThan(0);
        expect(report.numPendingTests).toBe(report.numTotalTests);
        expect(summary('browser').slice(-2)).toEqual([`vscode-client: ${line}`, `vscode-client: 0 passed, 0 failed, ${report.numTotalTests} skipped`]);
    });

    it('skips when CI is set to something other than true', () => {
        const { status, output } = runBrowserTest('false', 'browser-ci-false');
        expect(status, output).toBe(0);
        expect(output).toContain('Skipped the browser test');
    });

    it('fails with CI=true, where .ci/run installs Chromium', () => {
        const { status, output } = runBrowserTest('true', 'browser-ci');
        expect(status).toBe(1);
        expect(output).toContain(`Cannot run the browser test (search view in Chromium): no Chromium at ${missing}. CI=true`);
        expect(output).not.toContain('Skipped the browser test');
    });
});

describe('isCI', () => {
    it('is true only for CI=true or 1', () => {
        expect([undefined, '', 'false', '0', 'no'].map((CI) => isCI({ CI }))).toEqual([false, false, false, false, false]);
        expect(['true', 'TRUE', '1', ' true '].map((CI) => isCI({ CI }))).toEqual([true, true, true, true]);
    });
});
