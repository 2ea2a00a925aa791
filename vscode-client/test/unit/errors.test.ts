import { describe, expect, it } from 'vitest';
import { ErrorCodes, LSPErrorCodes, ResponseError } from 'vscode-languageserver-protocol';
import { describeRequestError, describeStartProblem, isCancellation, isInterpreterProblem, ServerNotRunningError } from '../../src/errors';

describe('describeRequestError', () => {
    it('shows nothing for cancelled requests', () => {
        expect(describeRequestError(new ResponseError(LSPErrorCodes.RequestCancelled, 'cancelled'), 'Search')).toBeUndefined();
        expect(describeRequestError(new ResponseError(LSPErrorCodes.ServerCancelled, 'cancelled'), 'Search')).toBeUndefined();
        const canceled = new Error('Canceled');
        canceled.name = 'Canceled';
        expect(isCancellation(canceled)).toBe(true);
        expect(isCancellation(new Error('other'))).toBe(false);
    });

    it('passes on the server’s explanation of bad params', () => {
        const message = describeRequestError(new ResponseError(ErrorCodes.InvalidParams, 'limit: must be between 1 and 100'), 'Search');
        expect(message).toBe('Search was rejected by the server: limit: must be between 1 and 100');
    });

    it('explains a server that is too old, gone or broken', () => {
        expect(describeRequestError(new ResponseError(ErrorCodes.MethodNotFound, 'no'), 'Find Similar Code')).toMatch(/Find Similar Code is not supported.*Install Server/);
        expect(describeRequestError(new ResponseError(ErrorCodes.ConnectionInactive, 'inactive'), 'Search')).toMatch(/connection .* was lost/);
        expect(describeRequestError(new ResponseError(ErrorCodes.InternalError, 'store offline'), 'Search')).toMatch(/^Search failed: store offline\. .*Show Server Output/);
        expect(describeRequestError(new Error('socket hang up'), 'Reindex')).toMatch(/^Reindex failed: socket hang up/);
    });

    it('says why the server is not running', () => {
        expect(describeRequestError(new ServerNotRunningError('no Python'), 'Search')).toBe('The Code Context server is not running: no Python');
        expect(describeRequestError(new ServerNotRunningError(undefined, true), 'Search')).toBe('The Code Context server is starting; results will appear when it is ready.');
        expect(describeRequestError(new ServerNotRunningError(), 'Search')).toMatch(/not running\. Run “Code Context: Show Server Output”/);
    });
});

describe('describeStartProblem', () => {
    it('names the interpreter and the setting to change', () => {
        const notFound = describeStartProblem({ kind: 'pythonNotFound', python: '/nope/python' });
        expect(notFound).toContain('/nope/python');
        expect(notFound).toContain('codeContext.server.pythonPath');
        expect(describeStartProblem({ kind: 'moduleMissing', python: '/usr/bin/python3' })).toContain('Code Context: Install Server');
        expect(describeStartProblem({ kind: 'pythonTooOld', python: 'py', version: '3.8' })).toMatch(/Python 3\.8.*3\.11 or newer/);
        expect(describeStartProblem({ kind: 'failed', python: 'py', detail: 'exit code 1' })).toContain('exit code 1');
        expect(describeStartProblem({ kind: 'tcp', host: '127.0.0.1', port: 2087, detail: 'ECONNREFUSED' })).toMatch(/127\.0\.0\.1:2087 \(ECONNREFUSED\).*tcpPort/);
    });

    it('offers the Python setting only for interpreter problems', () => {
        expect(isInterpreterProblem({ kind: 'moduleMissing', python: 'p' })).toBe(true);
        expect(isInterpreterProblem({ kind: 'tcp', host: 'h', port: 1, detail: '' })).toBe(false);
    });
});
