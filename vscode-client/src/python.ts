/**
 * Which Python runs the server: `codeContext.server.pythonPath`, else the `CODE_CONTEXT_PYTHON` environment
 * variable (used by the F5 launch configuration), else the interpreter selected in the Python extension,
 * else `python3`.
 */
import * as os from 'node:os';
import * as vscode from 'vscode';
import type { PythonSource } from './install';
import { expandPath } from './settings';

export type { PythonSource };

export const PYTHON_EXTENSION_ID = 'ms-python.python';
export const DEFAULT_PYTHON = process.platform === 'win32' ? 'python' : 'python3';

/** The part of the Python extension's API we use (see @vscode/python-extension). */
interface PythonExtensionApi {
    environments: {
        getActiveEnvironmentPath(resource?: vscode.Uri): { id: string; path: string };
        resolveEnvironment(env: { id: string; path: string } | string): Promise<{ executable: { uri?: vscode.Uri } } | undefined>;
        onDidChangeActiveEnvironmentPath: vscode.Event<unknown>;
    };
}


export interface ResolvedPython {
    python: string;
    source: PythonSource;
}

async function pythonExtensionApi(): Promise<PythonExtensionApi | undefined> {
    const extension = vscode.extensions.getExtension<PythonExtensionApi>(PYTHON_EXTENSION_ID);
    if (!extension) {
        return undefined;
    }
    try {
        if (!extension.isActive) {
            await extension.activate();
        }
        return extension.exports?.environments ? extension.exports : undefined;
    } catch {
        return undefined; // A broken Python extension must not keep the server from starting.
    }
}

export async function resolvePython(resource: vscode.Uri | undefined): Promise<ResolvedPython> {
    const setting = vscode.workspace.getConfiguration('codeContext.server', resource).get<string>('pythonPath')?.trim();
    if (setting) {
        const workspaceFolder = resource ? vscode.workspace.getWorkspaceFolder(resource)?.uri.fsPath : undefined;
        return { python: expandPath(setting, { workspaceFolder, userHome: os.homedir(), env: process.env }), source: 'setting' };
    }
    const fromEnv = process.env.CODE_CONTEXT_PYTHON?.trim();
    if (fromEnv) {
        return { python: fromEnv, source: 'environment' };
    }
    const api = await pythonExtensionApi();
    if (api) {
        try {
            const env = await api.environments.resolveEnvironment(api.environments.getActiveEnvironmentPath(resource));
            const executable = env?.executable.uri?.fsPath;
            if (executable) {
                return { python: executable, source: 'python extension' };
            }
        } catch {
            // Fall through to the default interpreter.
        }
    }
    return { python: DEFAULT_PYTHON, source: 'default' };
}

/** Fires when the interpreter selected in the Python extension changes (nothing when it is absent). */
export async function onDidChangePythonInterpreter(listener: () => void): Promise<vscode.Disposable> {
    const api = await pythonExtensionApi();
    return api ? api.environments.onDidChangeActiveEnvironmentPath(() => listener()) : new vscode.Disposable(() => undefined);
}
