/**
 * The managed server environment: a virtual environment in the extension's global storage, with the server
 * installed from the wheel that the .vsix carries (`bundled/code_context_lsp-<version>-py3-none-any.whl`, built
 * by `npm run package`). Its dependencies come from the user's own package index, through pip.
 *
 * Pure functions (which interpreter runs the server, the command lines, the wheel's name) and one imperative
 * function, installServer, which runs them. Node only, no `vscode` import.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { checkPython } from './diagnose';
import type { StartProblem } from './errors';
import { MIN_PYTHON } from './errors';

/** The folder of the .vsix that holds the server wheel, and the managed environment's folder in global storage. */
export const WHEEL_DIR = 'bundled';
export const MANAGED_VENV_DIR = 'venv';

/** Where an interpreter came from; `managed` is the environment this extension installed. */
export type PythonSource = 'setting' | 'environment' | 'python extension' | 'default' | 'managed';

export interface Command {
    command: string;
    args: string[];
}

/** The interpreter of a virtual environment. */
export function venvPython(venvDir: string, platform: NodeJS.Platform = process.platform): string {
    return platform === 'win32' ? join(venvDir, 'Scripts', 'python.exe') : join(venvDir, 'bin', 'python');
}

/** A wheel's version from its file name (`code_context_lsp-0.1.0-py3-none-any.whl` → [0, 1, 0]). */
export function wheelVersion(fileName: string): number[] | undefined {
    const m = /^code_context_lsp-(\d+(?:\.\d+)*)-[^-]+-[^-]+-[^-]+\.whl$/.exec(fileName);
    return m ? m[1].split('.').map(Number) : undefined;
}

function compareVersions(a: number[], b: number[]): number {
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
        const d = (a[i] ?? 0) - (b[i] ?? 0);
        if (d !== 0) {
            return d;
        }
    }
    return 0;
}

/** The server wheel among a folder's file names (the newest, should there be several); undefined when none. */
export function findWheel(fileNames: readonly string[]): string | undefined {
    const wheels = fileNames.filter((name) => wheelVersion(name) !== undefined);
    wheels.sort((a, b) => compareVersions(wheelVersion(b)!, wheelVersion(a)!));
    return wheels[0];
}

/**
 * The interpreters to try, in order, for creating the managed environment: the one the user would run the
 * server with (setting, Python extension, else the default), then the usual names of a Python 3.11+ on PATH.
 */
export function baseInterpreterCandidates(preferred: string | undefined, platform: NodeJS.Platform = process.platform): string[] {
    const usual = platform === 'win32' ? ['python', 'python3'] : ['python3', 'python3.13', 'python3.12', 'python3.11', 'python'];
    return [...new Set([...(preferred ? [preferred] : []), ...usual])];
}

/** Creates the environment (`--clear` only to repair one that exists but does not run). */
export function venvCommand(python: string, venvDir: string, repair: boolean): Command {
    return { command: python, args: ['-m', 'venv', ...(repair ? ['--clear'] : []), venvDir] };
}

/** Installs (or updates to) the bundled wheel into the environment; pip resolves the dependencies. */
export function pipInstallCommand(python: string, wheel: string, options: { noDeps?: boolean } = {}): Command {
    return {
        command: python,
        args: ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', ...(options.noDeps ? ['--no-deps'] : []), wheel],
    };
}

/** What the extension does about the server's interpreter at start. */
export type ServerChoice =
    | { kind: 'use'; python: string; source: PythonSource }
    | { kind: 'offerInstall'; problem: StartProblem }
    | { kind: 'fail'; problem: StartProblem };

/**
 * Which interpreter runs the server.
 * - One the user chose explicitly (setting, CODE_CONTEXT_PYTHON) is used as it is, or its problem reported.
 * - Else the managed environment, when it has the server.
 * - Else the Python extension's interpreter or the default one, when it has the server.
 * - Else, when the .vsix carries a wheel, offer to install the managed environment.
 * @param resolved the interpreter found by resolvePython, with the result of checking it.
 * @param managed the managed environment's interpreter and its check; undefined when it does not exist.
 */
export function chooseServerPython(
    resolved: { python: string; source: PythonSource; problem: StartProblem | undefined },
    managed: { python: string; problem: StartProblem | undefined } | undefined,
    haveWheel: boolean,
): ServerChoice {
    if (resolved.source === 'setting' || resolved.source === 'environment') {
        return resolved.problem ? { kind: 'fail', problem: resolved.problem } : { kind: 'use', python: resolved.python, source: resolved.source };
    }
    if (managed && !managed.problem) {
        return { kind: 'use', python: managed.python, source: 'managed' };
    }
    if (!resolved.problem) {
        return { kind: 'use', python: resolved.python, source: resolved.source };
    }
    return haveWheel ? { kind: 'offerInstall', problem: resolved.problem } : { kind: 'fail', problem: resolved.problem };
}

/** True when an interpreter can serve as the base of the managed environment (3.11+, with or without the server). */
export function canCreateVenv(problem: StartProblem | undefined): boolean {
    return problem === undefined || problem.kind === 'moduleMissing';
}

export class InstallError extends Error {
    constructor(message: string) {
        super(message);
        this.name = 'InstallError';
    }
}

export interface InstallOptions {
    /** The server wheel to install. */
    wheel: string;
    /** The managed environment's folder (created if missing). */
    venvDir: string;
    /** Interpreters to create it with, tried in order; the first Python 3.11+ wins. */
    candidates: readonly string[];
    env: NodeJS.ProcessEnv;
    /** Install the wheel without its dependencies (tests: the dependency download is too heavy). */
    noDeps?: boolean;
    /** One message per step, for the progress notification. */
    onProgress?: (message: string) => void;
    /** Every line the commands print, for the output channel. */
    onOutput?: (line: string) => void;
    /** Stops the running command. */
    signal?: AbortSignal;
}

/** Runs a command, passing its output on line by line; rejects with the last lines when it fails. */
function run({ command, args }: Command, options: InstallOptions): Promise<void> {
    return new Promise((resolve, reject) => {
        options.onOutput?.(`$ ${[command, ...args].join(' ')}`);
        const child = spawn(command, args, { env: options.env, windowsHide: true, signal: options.signal });
        const tail: string[] = [];
        const collect = (data: Buffer) => {
            for (const line of data.toString().split(/\r?\n/)) {
                if (line.trim()) {
                    options.onOutput?.(line);
                    tail.push(line.trim());
                    tail.splice(0, tail.length - 5);
                }
            }
        };
        child.stdout.on('data', collect);
        child.stderr.on('data', collect);
        child.on('error', (error) =>
            reject(error.name === 'AbortError' ? new InstallError('The installation was cancelled.') : new InstallError(`${command} could not run: ${error.message}`)),
        );
        child.on('close', (code, signal) => {
            if (code === 0) {
                resolve();
            } else if (options.signal?.aborted) {
                reject(new InstallError('The installation was cancelled.'));
            } else {
                const last = tail.filter((l) => /error/i.test(l)).pop() ?? tail.pop() ?? '';
                reject(new InstallError(`“${[command, ...args.slice(0, 3)].join(' ')} …” failed (${code ?? signal})${last ? `: ${last}` : ''}`));
            }
        });
    });
}

/**
 * Creates (or reuses) the managed environment with the first Python 3.11+ among the candidates, installs the
 * wheel into it with pip, and checks that it can run the server. Returns the environment's interpreter.
 */
export async function installServer(options: InstallOptions): Promise<string> {
    const python = venvPython(options.venvDir);
    const existing = existsSync(python) ? await checkPython(python, options.env) : undefined;
    const reuse = existsSync(python) && canCreateVenv(existing);
    if (!reuse) {
        options.onProgress?.(`Looking for Python ${MIN_PYTHON}+…`);
        const tried: string[] = [];
        let base: string | undefined;
        for (const candidate of options.candidates) {
            const problem = await checkPython(candidate, options.env);
            if (canCreateVenv(problem)) {
                base = candidate;
                break;
            }
            tried.push(problem?.kind === 'pythonTooOld' ? `${candidate} (${problem.version})` : candidate);
        }
        if (!base) {
            throw new InstallError(
                `No Python ${MIN_PYTHON} or newer was found (tried ${tried.join(', ')}). Install one, or set codeContext.server.pythonPath to a Python that has the server.`,
            );
        }
        options.onProgress?.(`Creating the environment with ${base}…`);
        await run(venvCommand(base, options.venvDir, existsSync(options.venvDir)), options);
    }
    options.onProgress?.(options.noDeps ? 'Installing the server…' : 'Installing the server and its dependencies (this can take several minutes)…');
    await run(pipInstallCommand(python, options.wheel, { noDeps: options.noDeps }), options);
    const problem = await checkPython(python, options.env);
    if (problem) {
        throw new InstallError(`The environment was installed, but ${python} cannot run the server (${problem.kind}).`);
    }
    return python;
}
