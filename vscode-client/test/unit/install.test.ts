import { describe, expect, it } from 'vitest';
import {
    baseInterpreterCandidates,
    canCreateVenv,
    chooseServerPython,
    findWheel,
    pipInstallCommand,
    venvCommand,
    venvPython,
    wheelVersion,
} from '../../src/install';

describe('the managed environment: names and command lines', () => {
    it('finds the interpreter of a virtual environment', () => {
        expect(venvPython('/s/venv', 'linux')).toBe('/s/venv/bin/python');
        expect(venvPython('/s/venv', 'darwin')).toBe('/s/venv/bin/python');
        expect(venvPython('/s/venv', 'win32')).toMatch(/Scripts[\\/]python\.exe$/);
    });

    it('picks the newest server wheel and ignores other files', () => {
        expect(wheelVersion('code_context_lsp-0.1.10-py3-none-any.whl')).toEqual([0, 1, 10]);
        expect(wheelVersion('other-1.0-py3-none-any.whl')).toBeUndefined();
        expect(findWheel(['README', 'code_context_lsp-0.1.9-py3-none-any.whl', 'code_context_lsp-0.1.10-py3-none-any.whl'])).toBe(
            'code_context_lsp-0.1.10-py3-none-any.whl',
        );
        expect(findWheel(['code_context_lsp-0.1.0.tar.gz'])).toBeUndefined();
        expect(findWheel([])).toBeUndefined();
    });

    it('tries the preferred interpreter first, then the usual names, each once', () => {
        expect(baseInterpreterCandidates('/opt/py/bin/python3', 'linux')).toEqual(['/opt/py/bin/python3', 'python3', 'python3.13', 'python3.12', 'python3.11', 'python']);
        expect(baseInterpreterCandidates('python3', 'linux')).toEqual(['python3', 'python3.13', 'python3.12', 'python3.11', 'python']);
        expect(baseInterpreterCandidates(undefined, 'win32')).toEqual(['python', 'python3']);
    });

    it('builds the venv and pip command lines', () => {
        expect(venvCommand('python3', '/s/venv', false)).toEqual({ command: 'python3', args: ['-m', 'venv', '/s/venv'] });
        expect(venvCommand('python3', '/s/venv', true)).toEqual({ command: 'python3', args: ['-m', 'venv', '--clear', '/s/venv'] });
        expect(pipInstallCommand('/s/venv/bin/python', '/ext/bundled/w.whl')).toEqual({
            command: '/s/venv/bin/python',
            args: ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '/ext/bundled/w.whl'],
        });
        expect(pipInstallCommand('p', 'w.whl', { noDeps: true }).args).toContain('--no-deps');
    });

    it('creates the environment only with a Python 3.11+ that runs', () => {
        expect(canCreateVenv(undefined)).toBe(true);
        expect(canCreateVenv({ kind: 'moduleMissing', python: 'p' })).toBe(true);
        expect(canCreateVenv({ kind: 'pythonTooOld', python: 'p', version: '3.9' })).toBe(false);
        expect(canCreateVenv({ kind: 'pythonNotFound', python: 'p' })).toBe(false);
    });
});

describe('chooseServerPython', () => {
    const missing = (python: string) => ({ kind: 'moduleMissing' as const, python });
    const managedOk = { python: '/g/venv/bin/python', problem: undefined };

    it('keeps an explicit choice, working or not', () => {
        expect(chooseServerPython({ python: '/p', source: 'setting', problem: undefined }, managedOk, true)).toEqual({ kind: 'use', python: '/p', source: 'setting' });
        expect(chooseServerPython({ python: '/p', source: 'environment', problem: missing('/p') }, managedOk, true)).toEqual({ kind: 'fail', problem: missing('/p') });
    });

    it('prefers the managed environment to the Python extension and the default', () => {
        expect(chooseServerPython({ python: '/x', source: 'python extension', problem: undefined }, managedOk, true)).toEqual({
            kind: 'use',
            python: '/g/venv/bin/python',
            source: 'managed',
        });
    });

    it('uses the Python extension or default interpreter when it has the server', () => {
        expect(chooseServerPython({ python: 'python3', source: 'default', problem: undefined }, undefined, true)).toEqual({ kind: 'use', python: 'python3', source: 'default' });
        const broken = { python: '/g/venv/bin/python', problem: { kind: 'failed' as const, python: '/g/venv/bin/python', detail: 'x' } };
        expect(chooseServerPython({ python: '/x', source: 'python extension', problem: undefined }, broken, true)).toEqual({ kind: 'use', python: '/x', source: 'python extension' });
    });

    it('offers to install when no interpreter has the server and a wheel is bundled; else reports the problem', () => {
        expect(chooseServerPython({ python: 'python3', source: 'default', problem: missing('python3') }, undefined, true)).toEqual({
            kind: 'offerInstall',
            problem: missing('python3'),
        });
        expect(chooseServerPython({ python: 'python3', source: 'default', problem: missing('python3') }, undefined, false)).toEqual({
            kind: 'fail',
            problem: missing('python3'),
        });
    });
});
