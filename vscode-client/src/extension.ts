/**
 * Code Context for VS Code: starts the Code Context language server and adds the search view.
 */
import * as vscode from 'vscode';
import { registerCommands } from './commands';
import { SearchPanel, VIEW_ID } from './panel';
import { CLIENT_NAME, ServerManager } from './server';
import { StatusBar } from './statusBar';

let server: ServerManager | undefined;

export function activate(context: vscode.ExtensionContext): void {
    const output = vscode.window.createOutputChannel(CLIENT_NAME, { log: true });
    server = new ServerManager(context.secrets, output, {
        extensionPath: context.extensionUri.fsPath,
        globalStoragePath: context.globalStorageUri.fsPath,
    });
    const panel = new SearchPanel(context.extensionUri, server);
    const statusBar = new StatusBar(server, (banner) => panel.setIndexingBanner(banner));
    context.subscriptions.push(
        output,
        server,
        panel,
        statusBar,
        vscode.window.registerWebviewViewProvider(VIEW_ID, panel),
        vscode.workspace.onDidChangeWorkspaceFolders(() => {
            // The client follows folder changes itself once running; start it when the first folder arrives.
            if (server?.state.state === 'stopped') {
                void server.start();
            }
        }),
    );
    registerCommands({ context, server, panel, statusBar });
    // Not awaited: activation must not wait for Python; failures are shown by the server manager.
    void server.start();
}

export async function deactivate(): Promise<void> {
    await server?.stop();
    server = undefined;
}
