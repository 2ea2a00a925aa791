/**
 * The managed server environment, installed for real: the wheel built from this repository by
 * scripts/bundle-wheel.mjs (what `npm run package` puts in the .vsix), a real `python -m venv`, a real
 * `pip install`. `--no-deps` only because the dependency download (PyTorch…) is too heavy for a test; the
 * extension itself installs the dependencies.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkPython } from '../../src/diagnose';
import { findWheel, installServer, InstallError, venvPython } from '../../src/install';
import { skipUnless } from '../requirements';

const client = fileURLToPath(new URL('../../', import.meta.url));
const repo = resolve(client, '..');
const repoPython = join(repo, '.venv', 'bin', 'python');
/** A Python 3.11+ without the server, like a user's: the system one, else the repository's (which has it). */
const basePython = ['/usr/bin/python3', repoPython].find((p) => existsSync(p) && spawnSync(p, ['-c', 'import sys, venv; assert sys.version_info >= (3, 11)']).status === 0);

const skipReason = skipUnless(
    basePython !== undefined && process.platform !== 'win32',
    'the server installation test',
    'no Python 3.11+ with venv at /usr/bin/python3 or in <repo>/.venv',
    'install python3 (3.11+) and python3-venv, or run `make install`',
);

const dir = mkdtempSync(join(tmpdir(), 'cc-install-'));
const venvDir = join(dir, 'globalStorage', 'venv');
let wheel = '';
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('installServer against a real interpreter', { skip: skipReason !== undefined, meta: { skipReason } }, () => {
    beforeAll(() => {
        const build = spawnSync(process.execPath, ['scripts/bundle-wheel.mjs', '--out', join(dir, 'bundled')], { cwd: client, encoding: 'utf8' });
        expect(build.status, build.stderr).toBe(0);
        const name = findWheel(readdirSync(join(dir, 'bundled')));
        expect(name).toMatch(/^code_context_lsp-\d+\.\d+\.\d+-py3-none-any\.whl$/);
        wheel = join(dir, 'bundled', name!);
    });

    it('creates the environment with the first Python 3.11+ and installs the bundled wheel into it', async () => {
        const progress: string[] = [];
        const output: string[] = [];
        const missing = join(dir, 'no-such-python');
        const python = await installServer({
            wheel,
            venvDir,
            candidates: [missing, basePython!],
            env: process.env,
            noDeps: true,
            onProgress: (m) => progress.push(m),
            onOutput: (l) => output.push(l),
        });
        expect(python).toBe(venvPython(venvDir));
        expect(progress).toEqual(['Looking for Python 3.11+…', `Creating the environment with ${basePython}…`, 'Installing the server…']);
        expect(output).toContain(`$ ${basePython} -m venv ${venvDir}`);
        expect(output.some((l) => /Successfully installed code-context-lsp-/.test(l))).toBe(true);

        // The environment's own Python imports the server from the environment, not from the repository.
        const probe = spawnSync(python, ['-c', 'import lsp_server, importlib.metadata as m; print(m.version("code-context-lsp")); print(lsp_server.__file__)'], {
            cwd: dir,
            encoding: 'utf8',
        });
        expect(probe.status, probe.stderr).toBe(0);
        const [version, file] = probe.stdout.trim().split('\n');
        expect(wheel).toContain(`code_context_lsp-${version}-`);
        expect(file.startsWith(venvDir)).toBe(true);
        expect(await checkPython(python, process.env)).toBeUndefined();
    });

    it('reuses the environment on a second install, without creating it again', async () => {
        const progress: string[] = [];
        const python = await installServer({ wheel, venvDir, candidates: [], env: process.env, noDeps: true, onProgress: (m) => progress.push(m) });
        expect(python).toBe(venvPython(venvDir));
        expect(progress).toEqual(['Installing the server…']);
    });

    it('fails with the interpreters it tried when none is Python 3.11+', async () => {
        const missing = join(dir, 'no-such-python');
        await expect(installServer({ wheel, venvDir: join(dir, 'other-venv'), candidates: [missing], env: process.env, noDeps: true })).rejects.toThrow(
            new InstallError(`No Python 3.11 or newer was found (tried ${missing}). Install one, or set codeContext.server.pythonPath to a Python that has the server.`),
        );
        expect(existsSync(join(dir, 'other-venv'))).toBe(false);
    });

    it('reports pip failing, with its error', async () => {
        const bogus = join(dir, 'code_context_lsp-9.9.9-py3-none-any.whl');
        await expect(installServer({ wheel: bogus, venvDir, candidates: [], env: process.env, noDeps: true })).rejects.toThrow(/pip install .*failed \(1\): .*(ERROR|error)/);
    });
});
