/**
 * Error messages the user reads. Pure: no `vscode` import.
 */
import { ErrorCodes, LSPErrorCodes, ResponseError } from 'vscode-languageserver-protocol';

/** Thrown when a request is made while the server is not running. */
export class ServerNotRunningError extends Error {
    constructor(
        readonly reason?: string,
        /** The server is on its way up: the request can simply be made again once it runs. */
        readonly starting = false,
    ) {
        super(reason ?? 'The Code Context server is not running.');
        this.name = 'ServerNotRunningError';
    }
}

/** True for the errors a cancelled request ends with; these are never shown. */
export function isCancellation(error: unknown): boolean {
    if (error instanceof ResponseError) {
        return error.code === LSPErrorCodes.RequestCancelled || error.code === LSPErrorCodes.ServerCancelled;
    }
    return error instanceof Error && error.name === 'Canceled';
}

function messageOf(error: unknown): string {
    if (error instanceof Error) {
        return error.message;
    }
    return typeof error === 'string' ? error : JSON.stringify(error);
}

const SHOW_OUTPUT_HINT = 'Run “Code Context: Show Server Output” for details.';

/**
 * A sentence explaining why a request failed, or undefined when it was cancelled (nothing to show).
 * @param action what the user was doing, e.g. "Search".
 */
export function describeRequestError(error: unknown, action: string): string | undefined {
    if (isCancellation(error)) {
        return undefined;
    }
    if (error instanceof ServerNotRunningError) {
        if (error.starting) {
            return 'The Code Context server is starting; results will appear when it is ready.';
        }
        return error.reason ? `The Code Context server is not running: ${error.reason}` : `The Code Context server is not running. ${SHOW_OUTPUT_HINT}`;
    }
    if (error instanceof ResponseError) {
        switch (error.code) {
            case ErrorCodes.InvalidParams:
                return `${action} was rejected by the server: ${error.message}`;
            case ErrorCodes.MethodNotFound:
                return `${action} is not supported by this version of the Code Context server. Run “Code Context: Install Server” to update it.`;
            case ErrorCodes.ConnectionInactive:
            case ErrorCodes.PendingResponseRejected:
                return `The connection to the Code Context server was lost. ${SHOW_OUTPUT_HINT}`;
            default:
                return `${action} failed: ${error.message}. ${SHOW_OUTPUT_HINT}`;
        }
    }
    return `${action} failed: ${messageOf(error)}. ${SHOW_OUTPUT_HINT}`;
}

/** Why the server could not start, as found by checking the interpreter. */
export type StartProblem =
    | { kind: 'pythonNotFound'; python: string }
    | { kind: 'pythonTooOld'; python: string; version: string }
    | { kind: 'moduleMissing'; python: string }
    | { kind: 'failed'; python: string; detail: string }
    | { kind: 'tcp'; host: string; port: number; detail: string };

export const MIN_PYTHON = '3.11';

export function describeStartProblem(problem: StartProblem): string {
    const prefix = 'Code Context could not start its language server:';
    switch (problem.kind) {
        case 'pythonNotFound':
            return `${prefix} no Python interpreter at “${problem.python}”. Set codeContext.server.pythonPath to a Python ${MIN_PYTHON}+ that has the server (code-context-lsp), or clear it and run “Code Context: Install Server”.`;
        case 'pythonTooOld':
            return `${prefix} “${problem.python}” is Python ${problem.version}, and the server needs Python ${MIN_PYTHON} or newer. Set codeContext.server.pythonPath to a newer interpreter.`;
        case 'moduleMissing':
            return `${prefix} the server package is not installed for “${problem.python}”. Run “Code Context: Install Server” to install it into an environment of its own (after clearing codeContext.server.pythonPath, if it is set), or install the extension's bundled wheel into that Python with “${problem.python} -m pip install <wheel>”.`;
        case 'failed':
            return `${prefix} “${problem.python} -m lsp_server” failed (${problem.detail}). Run “Code Context: Show Server Output” for details.`;
        case 'tcp':
            return `${prefix} nothing answered on ${problem.host}:${problem.port} (${problem.detail}). Start the server with “python -m lsp_server --tcp --host ${problem.host} --port ${problem.port}”, or clear codeContext.server.tcpPort.`;
    }
}

/** Whether a start problem is fixed by choosing another interpreter (offer the “Open Setting” button). */
export function isInterpreterProblem(problem: StartProblem): boolean {
    return problem.kind !== 'tcp';
}
