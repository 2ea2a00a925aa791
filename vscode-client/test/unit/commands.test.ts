import { readFileSync } from 'node:fs';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import * as vscode from './vscode.mock';
import { registerCommands } from '../../src/commands';
import { ClearIndexRequest, ReindexRequest, SimilarRequest } from '../../src/protocol';
import { API_KEY_SECRET } from '../../src/settings';

function setup(state = 'running') {
    const handlers = new Map<string, (...args: unknown[]) => unknown>();
    vscode.commands.registerCommand.mockImplementation((id: string, run: (...args: unknown[]) => unknown) => {
        handlers.set(id, run);
        return new vscode.Disposable();
    });
    const secrets = { get: vi.fn(async (): Promise<string | undefined> => undefined), store: vi.fn(async () => undefined), delete: vi.fn(async () => undefined) };
    const server = {
        state: { state },
        sendRequest: vi.fn(async (..._args: unknown[]): Promise<unknown> => ({ started: true })),
        restart: vi.fn(async () => undefined),
        showOutput: vi.fn(),
    };
    const panel = {
        reveal: vi.fn(async () => undefined),
        showExternal: vi.fn(async (_title: string, request: (token: unknown) => Promise<unknown>) => request('token')),
    };
    const statusBar = { refresh: vi.fn() };
    registerCommands({ context: { subscriptions: [], secrets } as never, server: server as never, panel: panel as never, statusBar: statusBar as never });
    const run = (id: string) => {
        const handler = handlers.get(id);
        if (!handler) {
            throw new Error(`command ${id} is not registered`);
        }
        return handler();
    };
    return { run, handlers, server, panel, statusBar, secrets };
}

function editor(text: string, selection: vscode.Selection) {
    return {
        selection,
        document: {
            uri: vscode.Uri.file('/workspace/shop/src/cart.py'),
            getText: () => text,
            lineAt: (line: number) => ({ range: new vscode.Range(line, 0, line, 20) }),
        },
    };
}

beforeEach(() => {
    vscode.resetMock();
    vscode.workspace.workspaceFolders = [{ uri: vscode.Uri.file('/workspace/shop'), name: 'shop', index: 0 }];
});

describe('commands', () => {
    it('registers every contributed command', () => {
        const { handlers } = setup();
        const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
            contributes: { commands: { command: string }[] };
        };
        const contributed = manifest.contributes.commands.map((c) => c.command);
        expect([...handlers.keys()].sort()).toEqual([...contributed].sort());
    });

    it('Search focuses the view, prefilled with a short single-line selection', async () => {
        const { run, panel } = setup();
        vscode.window.activeTextEditor = editor('cart_total', new vscode.Selection(3, 4, 3, 14));
        await run('codeContext.search');
        expect(panel.reveal).toHaveBeenCalledWith('cart_total');
    });

    it('Find Similar sends the selection and titles the results', async () => {
        const { run, server, panel } = setup();
        vscode.settings.set('codeContext.search.limit', 7);
        vscode.window.activeTextEditor = editor('', new vscode.Selection(11, 0, 19, 0));
        await run('codeContext.findSimilar');
        expect(panel.showExternal.mock.calls[0][0]).toBe('Similar to src/cart.py:12–19');
        expect(server.sendRequest).toHaveBeenCalledWith(
            SimilarRequest,
            { uri: 'file:///workspace/shop/src/cart.py', range: { start: { line: 11, character: 0 }, end: { line: 19, character: 0 } }, limit: 7 },
            'token',
        );
    });

    it('Find Similar uses the current line without a selection, and explains when no editor is open', async () => {
        const { run, server } = setup();
        await run('codeContext.findSimilar');
        expect(vscode.window.showInformationMessage).toHaveBeenCalledWith(expect.stringContaining('Open a file'));
        expect(server.sendRequest).not.toHaveBeenCalled();
        vscode.window.activeTextEditor = editor('', new vscode.Selection(5, 3, 5, 3));
        await run('codeContext.findSimilar');
        expect((server.sendRequest.mock.calls[0][1] as { range: unknown }).range).toEqual({ start: { line: 5, character: 0 }, end: { line: 5, character: 20 } });
    });

    it('Clear Index asks first and does nothing when not confirmed', async () => {
        const { run, server } = setup();
        await run('codeContext.clearIndex');
        expect(vscode.window.showWarningMessage).toHaveBeenCalledWith(expect.stringContaining('Clear'), expect.objectContaining({ modal: true }), 'Clear Index');
        expect(server.sendRequest).not.toHaveBeenCalled();
        vscode.window.showWarningMessage.mockResolvedValueOnce('Clear Index');
        await run('codeContext.clearIndex');
        expect(server.sendRequest).toHaveBeenCalledWith(ClearIndexRequest, {});
    });

    it('Reindex forces a rebuild, refreshes the status bar and reports a failure in words', async () => {
        const { run, server, statusBar } = setup();
        await run('codeContext.reindex');
        expect(server.sendRequest).toHaveBeenCalledWith(ReindexRequest, { force: true });
        expect(statusBar.refresh).toHaveBeenCalled();
        server.sendRequest.mockRejectedValueOnce(new Error('store is read-only'));
        await run('codeContext.reindex');
        expect(vscode.window.showErrorMessage).toHaveBeenCalledWith(expect.stringMatching(/^Reindex failed: store is read-only/));
    });

    it('Set API Key stores the key in secret storage, never in settings, and restarts the server', async () => {
        const { run, secrets, server } = setup();
        vscode.window.showInputBox.mockResolvedValueOnce(' sk-test ');
        await run('codeContext.setApiKey');
        expect(vscode.window.showInputBox).toHaveBeenCalledWith(expect.objectContaining({ password: true }));
        expect(secrets.store).toHaveBeenCalledWith(API_KEY_SECRET, 'sk-test');
        expect(server.restart).toHaveBeenCalledTimes(1);
        expect(vscode.workspace.getConfiguration('codeContext').update).not.toHaveBeenCalled();
        vscode.window.showInputBox.mockResolvedValueOnce('');
        await run('codeContext.setApiKey');
        expect(secrets.delete).toHaveBeenCalledWith(API_KEY_SECRET);
        vscode.window.showInputBox.mockResolvedValueOnce(undefined);
        await run('codeContext.setApiKey');
        expect(server.restart).toHaveBeenCalledTimes(2);
    });

    it('Show Index Status explains a server that is not running', async () => {
        const { run, server } = setup('failed');
        vscode.window.showWarningMessage.mockResolvedValueOnce('Show Server Output');
        await run('codeContext.showStatus');
        expect(server.sendRequest).not.toHaveBeenCalled();
        expect(server.showOutput).toHaveBeenCalled();
    });
});
