import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ErrorCodes, ResponseError } from 'vscode-languageserver-protocol';
import * as vscode from './vscode.mock';
import { SearchPanel, VIEW_ID } from '../../src/panel';
import { SearchRequest, type SearchResponse } from '../../src/protocol';
import { ServerNotRunningError } from '../../src/errors';

const fixture = JSON.parse(readFileSync(new URL('../fixtures/handmade-response.json', import.meta.url), 'utf8')) as SearchResponse;
const template = readFileSync(new URL('../../media/panel.html', import.meta.url), 'utf8');

function fakeServer() {
    const states = new vscode.EventEmitter<{ state: string; reason?: string }>();
    return {
        state: { state: 'running' } as { state: string; reason?: string },
        onDidChangeState: states.event,
        states,
        sendRequest: vi.fn(async (..._args: unknown[]): Promise<unknown> => fixture),
    };
}

function fakeView() {
    let receive: (message: unknown) => void = () => undefined;
    const posted: Record<string, unknown>[] = [];
    const view = {
        webview: {
            options: {},
            html: '',
            cspSource: 'https://webview.test',
            asWebviewUri: (uri: vscode.Uri) => uri,
            postMessage: vi.fn(async (m: Record<string, unknown>) => posted.push(m)),
            onDidReceiveMessage: (listener: (m: unknown) => void) => {
                receive = listener;
                return new vscode.Disposable();
            },
        },
        onDidDispose: () => new vscode.Disposable(),
    };
    return { view, posted, send: (m: unknown) => receive(m) };
}

async function setup() {
    const server = fakeServer();
    const panel = new SearchPanel(vscode.Uri.file('/ext') as never, server as never);
    const { view, posted, send } = fakeView();
    await panel.resolveWebviewView(view as never);
    send({ type: 'ready' });
    return { server, panel, view, posted, send, ofType: (type: string) => posted.filter((m) => m.type === type) };
}

beforeEach(() => {
    vscode.resetMock();
    vscode.workspace.workspaceFolders = [{ uri: vscode.Uri.file('/workspace/shop'), name: 'shop', index: 0 }];
    vscode.workspace.fs.readFile.mockImplementation(async () => new TextEncoder().encode(template));
    vscode.settings.set('codeContext.search.limit', 15);
    vscode.settings.set('codeContext.search.mode', 'semantic');
    vi.useFakeTimers();
});
afterEach(() => vi.useRealTimers());

describe('SearchPanel', () => {
    it('loads media/panel.html with scripts enabled only from media/', async () => {
        const { view } = await setup();
        expect(view.webview.options).toMatchObject({ enableScripts: true });
        expect(view.webview.html).toMatch(/<script nonce="[A-Za-z0-9]+" src="file:\/\/\/ext\/media\/panel.js">/);
    });

    it('tells a new view the default mode and the server state', async () => {
        const { ofType } = await setup();
        expect(ofType('config')).toEqual([{ type: 'config', mode: 'semantic' }]);
        expect(ofType('server')[0]).toMatchObject({ state: 'running' });
    });

    it('debounces typing into one search with the configured limit and formats the results', async () => {
        const { server, send, ofType } = await setup();
        for (const query of ['c', 'ca', 'cart total']) {
            send({ type: 'search', query, mode: 'hybrid', include: 'src/**', language: '' });
            await vi.advanceTimersByTimeAsync(50);
        }
        await vi.advanceTimersByTimeAsync(250);
        expect(server.sendRequest).toHaveBeenCalledTimes(1);
        const [type, params, token] = server.sendRequest.mock.calls[0];
        expect(type).toBe(SearchRequest);
        expect(params).toEqual({ query: 'cart total', mode: 'hybrid', limit: 15, include: ['src/**'] });
        expect(token).toHaveProperty('isCancellationRequested', false);
        const [results] = ofType('results');
        expect(results).toMatchObject({ query: 'cart total', partial: false, filtered: true });
        expect((results.items as { path: string; lines: string }[]).map((i) => `${i.path}:${i.lines}`)).toEqual(['src/cart.py:12–19', 'web/checkout.js:4–10']);
        expect(ofType('searching')).toHaveLength(1);
    });

    it('cancels the running search when the query changes', async () => {
        const { server, send } = await setup();
        server.sendRequest.mockImplementation(() => new Promise(() => undefined));
        send({ type: 'search', query: 'first', mode: 'hybrid', include: '', language: '' });
        await vi.advanceTimersByTimeAsync(250);
        const firstToken = server.sendRequest.mock.calls[0][2] as { isCancellationRequested: boolean };
        send({ type: 'search', query: 'second', mode: 'hybrid', include: '', language: '' });
        expect(firstToken.isCancellationRequested).toBe(true);
    });

    it('clears the view for an empty query without asking the server', async () => {
        const { server, send, ofType } = await setup();
        send({ type: 'search', query: '   ', mode: 'hybrid', include: '', language: '' });
        await vi.advanceTimersByTimeAsync(500);
        expect(server.sendRequest).not.toHaveBeenCalled();
        expect(ofType('cleared')).toHaveLength(1);
    });

    it('explains errors in words', async () => {
        const { server, send, ofType } = await setup();
        server.sendRequest.mockRejectedValueOnce(new ResponseError(ErrorCodes.InvalidParams, 'languages: expected a list of strings'));
        send({ type: 'search', query: 'q', mode: 'hybrid', include: '', language: '' });
        await vi.advanceTimersByTimeAsync(250);
        expect(ofType('error')).toEqual([
            { type: 'error', message: 'Search was rejected by the server: languages: expected a list of strings', actions: ['showOutput'] },
        ]);
        server.sendRequest.mockRejectedValueOnce(new ServerNotRunningError('no Python at /x'));
        send({ type: 'search', query: 'q2', mode: 'hybrid', include: '', language: '' });
        await vi.advanceTimersByTimeAsync(250);
        expect(ofType('error')[1]).toMatchObject({ message: 'The Code Context server is not running: no Python at /x', actions: ['showOutput', 'restartServer'] });
    });

    it('runs a search made while the server was starting once it runs', async () => {
        const { server, send, ofType } = await setup();
        server.sendRequest.mockRejectedValueOnce(new ServerNotRunningError(undefined, true));
        send({ type: 'search', query: 'cart', mode: 'hybrid', include: '', language: '' });
        await vi.advanceTimersByTimeAsync(250);
        expect(ofType('error')[0]).toMatchObject({ message: expect.stringContaining('starting') });
        server.states.fire({ state: 'running' });
        await vi.advanceTimersByTimeAsync(0);
        expect(server.sendRequest).toHaveBeenCalledTimes(2);
        expect(ofType('results')).toHaveLength(1);
    });

    it('drops Find Similar results when the user searches meanwhile', async () => {
        const { panel, send, ofType } = await setup();
        let finish: (r: SearchResponse) => void = () => undefined;
        const similar = panel.showExternal('Similar to x', () => new Promise((r) => (finish = r)));
        await vi.advanceTimersByTimeAsync(0);
        send({ type: 'search', query: '', mode: 'hybrid', include: '', language: '' });
        finish(fixture);
        await similar;
        expect(ofType('results')).toHaveLength(0);
        expect(ofType('cleared')).toHaveLength(1);
    });

    it('opens a clicked result with its range selected and revealed', async () => {
        const { send } = await setup();
        const editor = { revealRange: vi.fn() };
        vscode.window.showTextDocument.mockResolvedValueOnce(editor);
        const range = { start: { line: 11, character: 0 }, end: { line: 19, character: 0 } };
        send({ type: 'open', uri: 'file:///workspace/shop/src/cart.py', range });
        await vi.advanceTimersByTimeAsync(0);
        const [uri, options] = vscode.window.showTextDocument.mock.calls[0] as [vscode.Uri, { selection: vscode.Range }];
        expect(uri.toString()).toBe('file:///workspace/shop/src/cart.py');
        expect(options.selection).toEqual(new vscode.Range(11, 0, 19, 0));
        expect(editor.revealRange).toHaveBeenCalledWith(options.selection, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
    });

    it('runs the command behind an action button', async () => {
        const { send } = await setup();
        send({ type: 'action', action: 'reindex' });
        send({ type: 'action', action: 'workbench.action.quit' });
        expect(vscode.commands.executeCommand.mock.calls).toEqual([['codeContext.reindex']]);
    });

    it('shows Find Similar results in the view, replaying them if the view was not ready', async () => {
        const server = fakeServer();
        const panel = new SearchPanel(vscode.Uri.file('/ext') as never, server as never);
        await panel.showExternal('Similar to src/cart.py:12–19', async () => fixture);
        expect(vscode.commands.executeCommand).toHaveBeenCalledWith(`${VIEW_ID}.focus`);
        const { view, posted, send } = fakeView();
        await panel.resolveWebviewView(view as never);
        send({ type: 'ready' });
        expect(posted.find((m) => m.type === 'results')).toMatchObject({ title: 'Similar to src/cart.py:12–19', partial: false });
    });

    it('forwards the indexing banner and server failures', async () => {
        const { panel, server, ofType } = await setup();
        panel.setIndexingBanner('indexing 3/10 files: results may be incomplete');
        expect(ofType('indexing').pop()).toEqual({ type: 'indexing', banner: 'indexing 3/10 files: results may be incomplete' });
        server.states.fire({ state: 'failed', reason: 'no Python' });
        expect(ofType('server').pop()).toEqual({ type: 'server', state: 'failed', message: 'no Python', actions: ['openPythonSetting', 'showOutput', 'restartServer'] });
    });
});
