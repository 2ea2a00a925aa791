/**
 * Starts, stops and talks to the Code Context language server.
 */
import * as net from 'node:net';
import * as vscode from 'vscode';
import {
    CloseAction,
    ErrorAction,
    LanguageClient,
    RevealOutputChannelOn,
    State,
    type CloseHandlerResult,
    type ErrorHandler,
    type ErrorHandlerResult,
    type LanguageClientOptions,
    type ServerOptions,
    type StreamInfo,
} from 'vscode-languageclient/node';
import type { RequestType } from 'vscode-languageserver-protocol';
import { checkPython } from './diagnose';
import { describeStartProblem, isInterpreterProblem, ServerNotRunningError, type StartProblem } from './errors';
import { onDidChangePythonInterpreter, resolvePython, type ResolvedPython } from './python';
import {
    API_KEY_SECRET,
    apiKeyEnvName,
    isApiKeyMissing,
    nestedGetter,
    parsePort,
    serverEnvironment,
    SERVER_MODULE_ARGS,
    toServerSettings,
    type ConfigGetter,
} from './settings';

export const CLIENT_ID = 'codeContext';
export const CLIENT_NAME = 'Code Context';
export const TCP_HOST = '127.0.0.1';
const TCP_RETRY_MS = 15_000;

export type ServerState = 'stopped' | 'starting' | 'running' | 'failed';

export interface ServerStateEvent {
    state: ServerState;
    /** Why the server is not running, for the 'failed' state. */
    reason?: string;
}

const MAX_RESTARTS = 4;
const RESTART_WINDOW_MS = 3 * 60 * 1000;

function configGetter(): ConfigGetter {
    const config = vscode.workspace.getConfiguration(CLIENT_ID);
    return (key) => config.get(key);
}

/**
 * Connects to a server already listening on TCP (development: `python -m lsp_server --tcp --port N`).
 * Retries for a while: under the "Extension + Server" launch the server may still be starting.
 */
export function tcpServer(host: string, port: number, retryMs = TCP_RETRY_MS): () => Promise<StreamInfo> {
    return async () => {
        const deadline = Date.now() + retryMs;
        for (;;) {
            try {
                return await new Promise<StreamInfo>((resolve, reject) => {
                    const socket = net.connect({ host, port }, () => {
                        socket.off('error', reject);
                        resolve({ reader: socket, writer: socket });
                    });
                    socket.once('error', reject);
                });
            } catch (error) {
                if ((error as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || Date.now() > deadline) {
                    throw error;
                }
                await new Promise((r) => setTimeout(r, 250));
            }
        }
    };
}

export class ServerManager implements vscode.Disposable {
    private client: LanguageClient | undefined;
    private stateValue: ServerStateEvent = { state: 'stopped' };
    private readonly stateEmitter = new vscode.EventEmitter<ServerStateEvent>();
    private readonly disposables: vscode.Disposable[] = [];
    private pending: Promise<void> = Promise.resolve();
    private python: ResolvedPython | undefined;

    /** Fires on every state change of the server. */
    readonly onDidChangeState = this.stateEmitter.event;

    constructor(
        private readonly secrets: vscode.SecretStorage,
        readonly output: vscode.LogOutputChannel,
    ) {
        this.disposables.push(
            this.stateEmitter,
            vscode.workspace.onDidChangeConfiguration((e) => {
                if (e.affectsConfiguration('codeContext.server') || e.affectsConfiguration('codeContext.embedding.apiKeyEnv')) {
                    void this.restart();
                }
            }),
        );
        void onDidChangePythonInterpreter(() => {
            if (this.python?.source === 'python extension') {
                void this.restart();
            }
        }).then((d) => this.disposables.push(d));
    }

    get state(): ServerStateEvent {
        return this.stateValue;
    }

    /** Starts the server (no-op while it runs). Errors are shown to the user, never thrown. */
    start(): Promise<void> {
        return this.serialize(() => this.doStart());
    }

    stop(): Promise<void> {
        return this.serialize(() => this.doStop());
    }

    restart(): Promise<void> {
        return this.serialize(async () => {
            await this.doStop();
            await this.doStart();
        });
    }

    /** Sends a custom request; rejects with ServerNotRunningError when there is no running server. */
    async sendRequest<P, R>(type: RequestType<P, R, void>, params: P, token?: vscode.CancellationToken): Promise<R> {
        const client = this.client;
        if (!client || this.stateValue.state !== 'running') {
            throw new ServerNotRunningError(this.stateValue.reason, this.stateValue.state === 'starting');
        }
        return client.sendRequest(type, params, token);
    }

    /** Reveals the server's log. */
    showOutput(): void {
        this.output.show(true);
    }

    dispose(): void {
        void this.doStop();
        this.disposables.forEach((d) => d.dispose());
    }

    private serialize(step: () => Promise<void>): Promise<void> {
        this.pending = this.pending.then(step, step);
        return this.pending;
    }

    private setState(state: ServerState, reason?: string): void {
        this.stateValue = { state, reason };
        this.stateEmitter.fire(this.stateValue);
    }

    private async doStart(): Promise<void> {
        if (this.client) {
            return;
        }
        if (!vscode.workspace.workspaceFolders?.length) {
            this.setState('stopped', 'open a folder to index and search it.');
            return;
        }
        this.setState('starting');
        const get = configGetter();
        const secret = await this.secrets.get(API_KEY_SECRET);
        const env = serverEnvironment(process.env, apiKeyEnvName(get), secret);
        if (isApiKeyMissing(get, env, secret)) {
            void this.warnMissingApiKey(apiKeyEnvName(get));
        }

        const port = parsePort(get('server.tcpPort')) ?? parsePort(process.env.CODE_CONTEXT_SERVER_PORT);
        let serverOptions: ServerOptions;
        if (port !== undefined) {
            this.output.info(`Connecting to the server on ${TCP_HOST}:${port}`);
            this.python = undefined;
            serverOptions = tcpServer(TCP_HOST, port);
        } else {
            const resource = vscode.workspace.workspaceFolders[0].uri;
            this.python = await resolvePython(resource);
            const { python, source } = this.python;
            this.output.info(`Starting the server: ${python} ${SERVER_MODULE_ARGS.join(' ')} (interpreter from ${source})`);
            const problem = await checkPython(python, env);
            if (problem) {
                this.fail(problem);
                return;
            }
            serverOptions = { command: python, args: SERVER_MODULE_ARGS, options: { env, cwd: resource.fsPath } };
        }

        const client = new LanguageClient(CLIENT_ID, CLIENT_NAME, serverOptions, this.clientOptions(get));
        this.client = client;
        client.onDidChangeState((e) => {
            if (this.client !== client) {
                return;
            }
            if (e.newState === State.Running) {
                this.setState('running');
            } else if (e.newState === State.Starting) {
                this.setState('starting');
            }
        });
        try {
            await client.start();
        } catch (error) {
            this.client = undefined;
            const detail = error instanceof Error ? error.message : String(error);
            this.fail(port !== undefined ? { kind: 'tcp', host: TCP_HOST, port, detail } : { kind: 'failed', python: this.python?.python ?? '', detail });
        }
    }

    private async doStop(): Promise<void> {
        const client = this.client;
        this.client = undefined;
        if (client) {
            try {
                await client.stop(5000);
            } catch (error) {
                this.output.warn(`Stopping the server failed: ${String(error)}`);
            }
            await client.dispose().catch(() => undefined);
        }
        if (this.stateValue.state !== 'failed') {
            this.setState('stopped');
        }
    }

    private clientOptions(get: ConfigGetter): LanguageClientOptions {
        return {
            documentSelector: [{ scheme: 'file' }],
            outputChannel: this.output,
            traceOutputChannel: this.output,
            revealOutputChannelOn: RevealOutputChannelOn.Never,
            initializationOptions: toServerSettings(get),
            synchronize: { configurationSection: CLIENT_ID },
            errorHandler: this.errorHandler(),
            initializationFailedHandler: (error) => {
                this.output.error(`Initialization failed: ${String(error)}`);
                return false;
            },
            middleware: {
                // Language extensions already fill the Outline; a second, coarser set of symbols there only
                // confuses. Workspace symbols (Ctrl+T) are what this server adds.
                provideDocumentSymbols: async () => undefined,
                workspace: {
                    // The default middleware reads `codeContext` from VS Code; keep only what the server understands.
                    configuration: async (params, token, next) => {
                        const values = await next(params, token);
                        if (!Array.isArray(values)) {
                            return values;
                        }
                        return values.map((value, i) =>
                            params.items[i]?.section === CLIENT_ID ? toServerSettings(nestedGetter(value)) : value,
                        );
                    },
                },
            },
        };
    }

    /** Restarts a crashed server a few times, then gives up with an explanation. */
    private errorHandler(): ErrorHandler {
        const restarts: number[] = [];
        return {
            error: (_error, _message, count): ErrorHandlerResult => ({
                action: count !== undefined && count <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown,
            }),
            closed: (): CloseHandlerResult => {
                const now = Date.now();
                restarts.push(now);
                while (restarts.length && now - restarts[0] > RESTART_WINDOW_MS) {
                    restarts.shift();
                }
                if (restarts.length <= MAX_RESTARTS) {
                    this.output.warn('The server stopped unexpectedly; restarting it.');
                    return { action: CloseAction.Restart };
                }
                this.client = undefined;
                this.fail({ kind: 'failed', python: this.python?.python ?? 'the server', detail: `it stopped ${restarts.length} times in 3 minutes` });
                return { action: CloseAction.DoNotRestart, handled: true };
            },
        };
    }

    private fail(problem: StartProblem): void {
        const message = describeStartProblem(problem);
        this.output.error(message);
        this.setState('failed', message);
        const actions = isInterpreterProblem(problem) ? ['Open Setting', 'Show Output'] : ['Show Output'];
        void vscode.window.showErrorMessage(message, ...actions).then((choice) => {
            if (choice === 'Open Setting') {
                void vscode.commands.executeCommand('workbench.action.openSettings', 'codeContext.server.pythonPath');
            } else if (choice === 'Show Output') {
                this.showOutput();
            }
        });
    }

    private async warnMissingApiKey(keyEnv: string): Promise<void> {
        const choice = await vscode.window.showWarningMessage(
            `The OpenAI embedding provider needs an API key: set the ${keyEnv} environment variable or store one with “Code Context: Set API Key”.`,
            'Set API Key',
        );
        if (choice === 'Set API Key') {
            await vscode.commands.executeCommand('codeContext.setApiKey');
        }
    }
}
