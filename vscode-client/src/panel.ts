/**
 * The search view: a webview (media/panel.*) that sends queries here; results come back formatted.
 */
import * as vscode from 'vscode';
import { describeRequestError, ServerNotRunningError } from './errors';
import { renderHtml, makeNonce } from './html';
import { parsePanelMessage, type PanelAction, type PanelQuery, type ToPanel } from './messages';
import { SearchRequest, type SearchMode, type SearchResponse, SEARCH_MODES } from './protocol';
import { formatResults, type Folder } from './results';
import { DebouncedRequest, toSearchParams } from './search';
import type { ServerManager, ServerStateEvent } from './server';

export const VIEW_ID = 'codeContext.searchView';

const ACTION_COMMANDS: Record<PanelAction, string> = {
    reindex: 'codeContext.reindex',
    showOutput: 'codeContext.showOutput',
    openPythonSetting: 'codeContext.openPythonSetting',
    restartServer: 'codeContext.restartServer',
    showStatus: 'codeContext.showStatus',
};

export function workspaceFolders(): Folder[] {
    return (vscode.workspace.workspaceFolders ?? []).map((f) => ({ uri: f.uri.toString(), name: f.name }));
}

function searchSetting<T>(key: string): T | undefined {
    return vscode.workspace.getConfiguration('codeContext.search').get<T>(key);
}

export class SearchPanel implements vscode.WebviewViewProvider, vscode.Disposable {
    private view: vscode.WebviewView | undefined;
    /** True once the webview's script has said 'ready'; messages before that would be lost. */
    private ready = false;
    /** Results/error/focus messages produced while the webview was not ready, replayed on 'ready'. */
    private unseen: ToPanel | undefined;
    private unseenFocus: ToPanel | undefined;
    private indexing: ToPanel = { type: 'indexing' };
    private readonly search: DebouncedRequest<PanelQuery, SearchResponse, vscode.CancellationToken>;
    /** The running Find Similar request, cancelled by a new search. */
    private external: vscode.CancellationTokenSource | undefined;
    /** A query that failed because the server was starting; run again once it runs. */
    private waitingForServer: PanelQuery | undefined;
    private readonly disposables: vscode.Disposable[] = [];

    constructor(
        private readonly extensionUri: vscode.Uri,
        private readonly server: ServerManager,
    ) {
        this.search = new DebouncedRequest({
            send: (query, token) => this.server.sendRequest(SearchRequest, toSearchParams(query, searchSetting('limit')), token),
            newTokenSource: () => new vscode.CancellationTokenSource(),
            onStart: () => this.post({ type: 'searching' }),
            onOutcome: (outcome) => {
                const query = outcome.params;
                this.waitingForServer = outcome.kind === 'error' && outcome.error instanceof ServerNotRunningError && outcome.error.starting ? query : undefined;
                if (outcome.kind === 'result') {
                    this.showResults(outcome.value, { query: query.query, filtered: query.include.trim() !== '' || query.language.trim() !== '' });
                } else {
                    this.showError(outcome.error, 'Search');
                }
            },
        });
        this.disposables.push(
            this.search,
            server.onDidChangeState((e) => {
                this.postServerState(e);
                if (e.state === 'running' && this.waitingForServer) {
                    this.search.schedule(this.waitingForServer, true);
                    this.waitingForServer = undefined;
                }
            }),
        );
    }

    resolveWebviewView(view: vscode.WebviewView): void | Thenable<void> {
        this.view = view;
        this.ready = false;
        const media = vscode.Uri.joinPath(this.extensionUri, 'media');
        view.webview.options = { enableScripts: true, localResourceRoots: [media] };
        view.onDidDispose(() => {
            if (this.view === view) {
                this.view = undefined;
                this.ready = false;
            }
        }, undefined, this.disposables);
        view.webview.onDidReceiveMessage((raw) => this.onMessage(raw), undefined, this.disposables);
        return vscode.workspace.fs.readFile(vscode.Uri.joinPath(media, 'panel.html')).then((bytes) => {
            view.webview.html = renderHtml(new TextDecoder().decode(bytes), {
                cspSource: view.webview.cspSource,
                nonce: makeNonce(),
                scriptUri: view.webview.asWebviewUri(vscode.Uri.joinPath(media, 'panel.js')).toString(),
                styleUri: view.webview.asWebviewUri(vscode.Uri.joinPath(media, 'panel.css')).toString(),
            });
        });
    }

    /** Reveals the view and focuses its query box, optionally with a query. */
    async reveal(query?: string): Promise<void> {
        await vscode.commands.executeCommand(`${VIEW_ID}.focus`);
        this.post({ type: 'focus', query });
    }

    /** Shows the results of a request made outside the query box (Find Similar). */
    async showExternal(title: string, request: (token: vscode.CancellationToken) => Promise<SearchResponse>): Promise<void> {
        this.search.cancel();
        this.external?.cancel();
        const source = (this.external = new vscode.CancellationTokenSource());
        await vscode.commands.executeCommand(`${VIEW_ID}.focus`);
        this.post({ type: 'searching', title });
        try {
            const response = await request(source.token);
            if (!source.token.isCancellationRequested) {
                this.showResults(response, { query: '', title, filtered: false });
            }
        } catch (error) {
            if (!source.token.isCancellationRequested) {
                this.showError(error, 'Find Similar Code', title);
            }
        } finally {
            source.dispose();
            if (this.external === source) {
                this.external = undefined;
            }
        }
    }

    /** Updates the "indexing N/M files" banner. */
    setIndexingBanner(banner: string | undefined): void {
        this.indexing = { type: 'indexing', banner };
        this.post(this.indexing);
    }

    dispose(): void {
        this.disposables.forEach((d) => d.dispose());
    }

    private showResults(response: SearchResponse, view: { query: string; title?: string; filtered: boolean }): void {
        const items = formatResults(response?.results ?? [], workspaceFolders());
        this.post({ type: 'results', ...view, items, partial: !!response?.partial });
    }

    private showError(error: unknown, action: string, title?: string): void {
        const message = describeRequestError(error, action);
        if (message === undefined) {
            return;
        }
        const actions: PanelAction[] =
            error instanceof ServerNotRunningError ? (error.starting ? [] : ['showOutput', 'restartServer']) : ['showOutput'];
        this.post({ type: 'error', message, actions });
        if (title) {
            void vscode.window.showErrorMessage(message);
        }
    }

    private post(message: ToPanel): void {
        if (this.view && this.ready) {
            void this.view.webview.postMessage(message);
        } else if (message.type === 'results' || message.type === 'error' || message.type === 'cleared') {
            this.unseen = message;
        } else if (message.type === 'focus') {
            this.unseenFocus = message;
        }
    }

    private postServerState({ state, reason }: ServerStateEvent): void {
        const messages: Record<ServerStateEvent['state'], string> = {
            starting: 'Starting the Code Context server…',
            running: '',
            stopped: reason ? `The Code Context server is not running: ${reason}` : 'The Code Context server is not running.',
            failed: reason ?? 'The Code Context server failed to start.',
        };
        const actions: PanelAction[] =
            state === 'failed' ? ['openPythonSetting', 'showOutput', 'restartServer'] : state === 'stopped' && vscode.workspace.workspaceFolders?.length ? ['restartServer'] : [];
        this.post({ type: 'server', state, message: messages[state], actions });
    }

    private onMessage(raw: unknown): void {
        const message = parsePanelMessage(raw);
        switch (message?.type) {
            case 'ready': {
                this.ready = true;
                const mode = searchSetting<SearchMode>('mode');
                this.post({ type: 'config', mode: mode && SEARCH_MODES.includes(mode) ? mode : 'hybrid' });
                this.postServerState(this.server.state);
                this.post(this.indexing);
                for (const pending of [this.unseen, this.unseenFocus]) {
                    if (pending) {
                        this.post(pending);
                    }
                }
                this.unseen = this.unseenFocus = undefined;
                break;
            }
            case 'search':
                this.external?.cancel();
                this.waitingForServer = undefined;
                if (message.query.trim() === '') {
                    this.search.cancel();
                    this.post({ type: 'cleared' });
                } else {
                    this.search.schedule(message);
                }
                break;
            case 'open':
                void this.open(message.uri, message.range);
                break;
            case 'action':
                void vscode.commands.executeCommand(ACTION_COMMANDS[message.action]);
                break;
        }
    }

    private async open(uri: string, range: { start: { line: number; character: number }; end: { line: number; character: number } }): Promise<void> {
        const selection = new vscode.Range(range.start.line, range.start.character, range.end.line, range.end.character);
        try {
            const editor = await vscode.window.showTextDocument(vscode.Uri.parse(uri), { selection, preview: true });
            editor.revealRange(selection, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
        } catch (error) {
            void vscode.window.showErrorMessage(`Could not open ${uri}: ${error instanceof Error ? error.message : String(error)}`);
        }
    }
}
