/**
 * The `codeContext.*` commands.
 */
import * as vscode from 'vscode';
import { describeRequestError } from './errors';
import { ClearIndexRequest, ReindexRequest, SimilarRequest, StatusRequest } from './protocol';
import { formatLines, relativePath } from './results';
import type { ServerManager } from './server';
import { API_KEY_SECRET, apiKeyEnvName } from './settings';
import { describeStatus } from './status';
import { workspaceFolders, type SearchPanel } from './panel';
import type { StatusBar } from './statusBar';

export interface CommandContext {
    context: vscode.ExtensionContext;
    server: ServerManager;
    panel: SearchPanel;
    statusBar: StatusBar;
}

/** Longest selection used to prefill the query box. */
const MAX_PREFILL = 200;

function showRequestError(error: unknown, action: string): void {
    const message = describeRequestError(error, action);
    if (message !== undefined) {
        void vscode.window.showErrorMessage(message);
    }
}

function limitSetting(): number | undefined {
    return vscode.workspace.getConfiguration('codeContext.search').get<number>('limit');
}

export function registerCommands({ context, server, panel, statusBar }: CommandContext): void {
    const register = (id: string, run: (...args: unknown[]) => unknown) =>
        context.subscriptions.push(vscode.commands.registerCommand(id, run));

    register('codeContext.search', () => {
        const editor = vscode.window.activeTextEditor;
        const selected = editor && !editor.selection.isEmpty && editor.selection.isSingleLine ? editor.document.getText(editor.selection).trim() : '';
        return panel.reveal(selected.length <= MAX_PREFILL ? selected : undefined);
    });

    register('codeContext.findSimilar', async () => {
        const editor = vscode.window.activeTextEditor;
        if (!editor) {
            void vscode.window.showInformationMessage('Open a file and select the code to find similar code for.');
            return;
        }
        // No selection: the current line.
        const selection = editor.selection.isEmpty ? editor.document.lineAt(editor.selection.active.line).range : editor.selection;
        const range = {
            start: { line: selection.start.line, character: selection.start.character },
            end: { line: selection.end.line, character: selection.end.character },
        };
        const uri = editor.document.uri.toString();
        const title = `Similar to ${relativePath(uri, workspaceFolders())}:${formatLines(range)}`;
        await panel.showExternal(title, (token) => server.sendRequest(SimilarRequest, { uri, range, limit: limitSetting() }, token));
    });

    register('codeContext.reindex', async () => {
        try {
            const { started } = await server.sendRequest(ReindexRequest, { force: true });
            void vscode.window.showInformationMessage(started ? 'Code Context: reindexing the workspace.' : 'Code Context: indexing is already running.');
            statusBar.refresh();
        } catch (error) {
            showRequestError(error, 'Reindex');
        }
    });

    register('codeContext.clearIndex', async () => {
        const choice = await vscode.window.showWarningMessage(
            'Clear the Code Context index of this workspace?',
            { modal: true, detail: 'Search finds nothing until the workspace is indexed again with “Code Context: Reindex Workspace”.' },
            'Clear Index',
        );
        if (choice !== 'Clear Index') {
            return;
        }
        try {
            await server.sendRequest(ClearIndexRequest, {});
            void vscode.window.showInformationMessage('Code Context: the index was cleared.');
            statusBar.refresh();
        } catch (error) {
            showRequestError(error, 'Clear Index');
        }
    });

    register('codeContext.showStatus', async () => {
        if (server.state.state !== 'running') {
            const choice = await vscode.window.showWarningMessage(
                server.state.reason ?? 'The Code Context server is not running.',
                'Show Server Output',
                'Restart Server',
            );
            if (choice === 'Show Server Output') {
                server.showOutput();
            } else if (choice === 'Restart Server') {
                await server.restart();
            }
            return;
        }
        try {
            const status = await server.sendRequest(StatusRequest, {});
            const choice = await vscode.window.showInformationMessage(
                'Code Context index status',
                { modal: true, detail: describeStatus(status, workspaceFolders()) },
                'Reindex Workspace',
                'Show Server Output',
            );
            if (choice === 'Reindex Workspace') {
                await vscode.commands.executeCommand('codeContext.reindex');
            } else if (choice === 'Show Server Output') {
                server.showOutput();
            }
        } catch (error) {
            showRequestError(error, 'Show Index Status');
        }
    });

    register('codeContext.showOutput', () => server.showOutput());

    register('codeContext.restartServer', () => server.restart());

    register('codeContext.installServer', () => server.installServer());

    register('codeContext.openPythonSetting', () =>
        vscode.commands.executeCommand('workbench.action.openSettings', 'codeContext.server.pythonPath'),
    );

    register('codeContext.setApiKey', async () => {
        const keyEnv = apiKeyEnvName((key) => vscode.workspace.getConfiguration('codeContext').get(key));
        const stored = await context.secrets.get(API_KEY_SECRET);
        const value = await vscode.window.showInputBox({
            title: 'Code Context: Set API Key',
            prompt: `The embedding API key, kept in VS Code's secret storage and given to the server as ${keyEnv}. Leave empty to remove the stored key.`,
            placeHolder: stored ? 'A key is stored; enter a new one or leave empty to remove it' : 'sk-…',
            password: true,
            ignoreFocusOut: true,
        });
        if (value === undefined) {
            return;
        }
        if (value.trim() === '') {
            await context.secrets.delete(API_KEY_SECRET);
            void vscode.window.showInformationMessage('Code Context: the stored API key was removed.');
        } else {
            await context.secrets.store(API_KEY_SECRET, value.trim());
            void vscode.window.showInformationMessage('Code Context: the API key was stored; restarting the server to use it.');
        }
        await server.restart();
    });
}
