/**
 * The status-bar item and the `codeContext/status` poll behind it and the view's indexing banner.
 */
import * as vscode from 'vscode';
import { StatusRequest, type StatusResponse } from './protocol';
import type { ServerManager, ServerStateEvent } from './server';
import { summarizeStatus } from './status';

export const POLL_INDEXING_MS = 2_000;
export const POLL_IDLE_MS = 15_000;

export class StatusBar implements vscode.Disposable {
    private readonly item = vscode.window.createStatusBarItem('codeContext.status', vscode.StatusBarAlignment.Left, 10);
    private timer: ReturnType<typeof setTimeout> | undefined;
    private readonly disposables: vscode.Disposable[] = [];
    private disposed = false;

    constructor(
        private readonly server: ServerManager,
        private readonly onBanner: (banner: string | undefined) => void,
    ) {
        this.item.name = 'Code Context';
        this.item.command = 'codeContext.showStatus';
        this.disposables.push(this.item, server.onDidChangeState((e) => this.onServerState(e)));
        this.onServerState(server.state);
        this.item.show();
    }

    /** Polls now (e.g. after Reindex), then on the usual schedule. */
    refresh(): void {
        this.schedule(0);
    }

    dispose(): void {
        this.disposed = true;
        clearTimeout(this.timer);
        this.disposables.forEach((d) => d.dispose());
    }

    private onServerState({ state, reason }: ServerStateEvent): void {
        if (state === 'running') {
            this.refresh();
            return;
        }
        clearTimeout(this.timer);
        this.onBanner(undefined);
        const texts = { starting: '$(loading~spin) Code Context', stopped: '$(circle-slash) Code Context', failed: '$(error) Code Context' };
        this.item.text = texts[state];
        this.item.tooltip = state === 'starting' ? 'Code Context: starting the server…' : `Code Context: ${reason ?? 'the server is not running.'}`;
        this.item.backgroundColor = state === 'failed' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    }

    private schedule(delayMs: number): void {
        clearTimeout(this.timer);
        if (!this.disposed) {
            this.timer = setTimeout(() => void this.poll(), delayMs);
        }
    }

    private async poll(): Promise<void> {
        if (this.server.state.state !== 'running') {
            return;
        }
        let status: StatusResponse;
        try {
            status = await this.server.sendRequest(StatusRequest, {});
        } catch (error) {
            this.server.output.debug(`codeContext/status failed: ${String(error)}`);
            this.schedule(POLL_IDLE_MS);
            return;
        }
        const summary = summarizeStatus(status);
        this.item.text = summary.text;
        this.item.tooltip = summary.tooltip;
        this.item.backgroundColor = summary.state === 'error' ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
        this.onBanner(summary.banner);
        this.schedule(summary.state === 'indexing' ? POLL_INDEXING_MS : POLL_IDLE_MS);
    }
}
