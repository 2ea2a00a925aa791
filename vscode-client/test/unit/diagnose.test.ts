import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkPython } from '../../src/diagnose';

const dir = mkdtempSync(join(tmpdir(), 'cc-diagnose-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fake interpreter: a shell script that prints what the probe would. */
function fakePython(name: string, script: string): string {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${script}\n`);
    chmodSync(path, 0o755);
    return path;
}

describe.skipIf(process.platform === 'win32')('checkPython', () => {
    it('reports a missing interpreter', async () => {
        expect(await checkPython(join(dir, 'missing-python'), process.env)).toEqual({ kind: 'pythonNotFound', python: join(dir, 'missing-python') });
    });

    it('accepts an interpreter that has the server package', async () => {
        expect(await checkPython(fakePython('good', 'echo "3.12 True"'), process.env)).toBeUndefined();
    });

    it('reports a missing server package', async () => {
        const python = fakePython('bare', 'echo "3.11 False"');
        expect(await checkPython(python, process.env)).toEqual({ kind: 'moduleMissing', python });
    });

    it('reports a Python that is too old', async () => {
        const python = fakePython('old', 'echo "3.9 True"');
        expect(await checkPython(python, process.env)).toEqual({ kind: 'pythonTooOld', python, version: '3.9' });
    });

    it('reports the last line of stderr when the interpreter fails', async () => {
        const python = fakePython('broken', 'echo "Traceback" >&2; echo "ImportError: libpython missing" >&2; exit 1');
        expect(await checkPython(python, process.env)).toEqual({ kind: 'failed', python, detail: 'ImportError: libpython missing' });
    });

    it('probes a real interpreter', async () => {
        // The system python3 may or may not have the package; either way the answer must be one of these.
        const problem = await checkPython('python3', process.env);
        expect(problem === undefined || problem.kind === 'moduleMissing' || problem.kind === 'pythonTooOld').toBe(true);
    });
});
