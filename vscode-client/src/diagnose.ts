/**
 * Checks a Python interpreter before the server is started with it, so a failure is explained precisely.
 * Node only, no `vscode` import.
 */
import { execFile } from 'node:child_process';
import { MIN_PYTHON, type StartProblem } from './errors';

// Prints "<major>.<minor> <has lsp_server>" without importing the package (which may be slow).
const PROBE = 'import sys, importlib.util; print("%d.%d" % sys.version_info[:2], importlib.util.find_spec("lsp_server") is not None)';

function versionAtLeast(version: string, minimum: string): boolean {
    const [a, b] = version.split('.').map(Number);
    const [x, y] = minimum.split('.').map(Number);
    return a > x || (a === x && b >= y);
}

/** Undefined when `python` can run the server; otherwise what is wrong with it. */
export function checkPython(python: string, env: NodeJS.ProcessEnv, timeoutMs = 20_000): Promise<StartProblem | undefined> {
    return new Promise((resolve) => {
        execFile(python, ['-c', PROBE], { env, timeout: timeoutMs, windowsHide: true }, (error, stdout, stderr) => {
            if (error) {
                const code = (error as NodeJS.ErrnoException).code;
                if (code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR') {
                    resolve({ kind: 'pythonNotFound', python });
                    return;
                }
                const detail = stderr.trim().split('\n').pop() || error.message;
                resolve({ kind: 'failed', python, detail });
                return;
            }
            const [version, found] = stdout.trim().split(/\s+/);
            if (!/^\d+\.\d+$/.test(version ?? '')) {
                resolve({ kind: 'failed', python, detail: `unexpected output: ${stdout.trim().slice(0, 200)}` });
            } else if (!versionAtLeast(version, MIN_PYTHON)) {
                resolve({ kind: 'pythonTooOld', python, version });
            } else if (found !== 'True') {
                resolve({ kind: 'moduleMissing', python });
            } else {
                resolve(undefined);
            }
        });
    });
}
