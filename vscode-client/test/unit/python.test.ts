import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import * as vscode from './vscode.mock';
import { DEFAULT_PYTHON, PYTHON_EXTENSION_ID, resolvePython } from '../../src/python';

const folder = vscode.Uri.file('/ws/project');

function pythonExtension(executable: string | undefined, options: { active?: boolean; throws?: boolean } = {}) {
    const environments = {
        getActiveEnvironmentPath: vi.fn(() => ({ id: 'env', path: executable ?? '' })),
        resolveEnvironment: vi.fn(async () => {
            if (options.throws) {
                throw new Error('resolve failed');
            }
            return { executable: { uri: executable ? vscode.Uri.file(executable) : undefined } };
        }),
        onDidChangeActiveEnvironmentPath: vi.fn(),
    };
    const extension = { isActive: options.active ?? true, activate: vi.fn(async () => undefined), exports: { environments } };
    vscode.extensions.getExtension.mockImplementation((id: string) => (id === PYTHON_EXTENSION_ID ? extension : undefined));
    return { extension, environments };
}

beforeEach(() => {
    vscode.resetMock();
    vscode.workspace.workspaceFolders = [{ uri: folder, name: 'project', index: 0 }];
    delete process.env.CODE_CONTEXT_PYTHON;
});
afterEach(() => {
    delete process.env.CODE_CONTEXT_PYTHON;
});

describe('resolvePython', () => {
    it('prefers the setting, expanding ${workspaceFolder}', async () => {
        vscode.settings.set('codeContext.server.pythonPath', '${workspaceFolder}/.venv/bin/python');
        pythonExtension('/from/extension/python');
        expect(await resolvePython(folder as never)).toEqual({ python: '/ws/project/.venv/bin/python', source: 'setting' });
    });

    it('uses CODE_CONTEXT_PYTHON next (the F5 launch configuration sets it)', async () => {
        process.env.CODE_CONTEXT_PYTHON = '/dev/venv/bin/python';
        pythonExtension('/from/extension/python');
        expect(await resolvePython(folder as never)).toEqual({ python: '/dev/venv/bin/python', source: 'environment' });
    });

    it('uses the interpreter selected in the Python extension, activating it if needed', async () => {
        const { extension, environments } = pythonExtension('/home/me/.venvs/app/bin/python', { active: false });
        expect(await resolvePython(folder as never)).toEqual({ python: '/home/me/.venvs/app/bin/python', source: 'python extension' });
        expect(extension.activate).toHaveBeenCalled();
        expect(environments.getActiveEnvironmentPath).toHaveBeenCalledWith(folder);
    });

    it('falls back to python3 without the Python extension, or when it fails', async () => {
        expect(await resolvePython(folder as never)).toEqual({ python: DEFAULT_PYTHON, source: 'default' });
        pythonExtension('/x', { throws: true });
        expect(await resolvePython(folder as never)).toEqual({ python: DEFAULT_PYTHON, source: 'default' });
        pythonExtension(undefined);
        expect(await resolvePython(folder as never)).toEqual({ python: DEFAULT_PYTHON, source: 'default' });
    });
});
