/**
 * Starts, stops and talks to the Code Context language server.
 */
import { readdirSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
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
import { describeStartProblem, isInterpreterProblem, MIN_PYTHON, ServerNotRunningError, type StartProblem } from './errors';
import {
    baseInterpreterCandidates,
    chooseServerPython,
    findWheel,
    installServer,
    MANAGED_VENV_DIR,
    venvPython,
    WHEEL_DIR,
    type ServerChoice,
} from './install';
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

/** Where the extension is installed (it carries the server wheel) and its global storage (the managed environment). */
export interface ServerPaths {
    extensionPath: string;
    globalStoragePath: string;
}

const INSTALL = 'Install';
const USE_OWN_PYTHON = 'Use My Own Python';

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
    private installOffered = false;

    /** Fires on every state change of the server. */
    readonly onDidChangeState = this.stateEmitter.event;

    constructor(
        private readonly secrets: vscode.SecretStorage,
        readonly output: vscode.LogOutputChannel,
        private readonly paths: ServerPaths,
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

    /**
     * Installs the server from the bundled wheel into the managed environment (or updates it there), with
     * progress, then starts it. Errors are shown to the user, never thrown.
     */
    installServer(): Promise<void> {
        return this.serialize(() => this.doInstall());
    }

    /** The managed environment's folder, in the extension's global storage. */
    get managedVenvDir(): string {
        return join(this.paths.globalStoragePath, MANAGED_VENV_DIR);
    }

    /** The server wheel the .vsix carries; undefined in a build without one (development). */
    bundledWheel(): string | undefined {
        const dir = join(this.paths.extensionPath, WHEEL_DIR);
        let names: string[] = [];
        try {
            names = readdirSync(dir);
        } catch {
            // No bundled folder.
        }
        const wheel = findWheel(names);
        return wheel ? join(dir, wheel) : undefined;
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
            const choice = await this.chooseServer(resource, env);
            if (choice.kind === 'fail') {
                this.fail(choice.problem);
                return;
            }
            if (choice.kind === 'offerInstall') {
                this.offerInstall(choice.problem);
                return;
            }
            const { python, source } = choice;
            this.python = { python, source };
            this.output.info(`Starting the server: ${python} ${SERVER_MODULE_ARGS.join(' ')} (interpreter from ${source})`);
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

    /** Probes the interpreters and decides which one runs the server (see chooseServerPython). */
    private async chooseServer(resource: vscode.Uri, env: NodeJS.ProcessEnv): Promise<ServerChoice> {
        const resolved = await resolvePython(resource);
        this.python = resolved;
        const explicit = resolved.source === 'setting' || resolved.source === 'environment';
        const managedPython = venvPython(this.managedVenvDir);
        const managedProblem = explicit ? undefined : await checkPython(managedPython, env);
        // A managed environment that does not exist reports pythonNotFound: then there is none.
        const managed = explicit || managedProblem?.kind === 'pythonNotFound' ? undefined : { python: managedPython, problem: managedProblem };
        if (managed && !managed.problem) {
            return chooseServerPython({ ...resolved, problem: undefined }, managed, true);
        }
        const problem = await checkPython(resolved.python, env);
        return chooseServerPython({ ...resolved, problem }, managed, this.bundledWheel() !== undefined);
    }

    /** No interpreter has the server: say so, and offer (once per session) to install it. */
    private offerInstall(problem: StartProblem): void {
        this.output.warn(describeStartProblem(problem));
        this.setState('failed', 'the server is not installed. Run “Code Context: Install Server”, or set codeContext.server.pythonPath to a Python that has it.');
        if (this.installOffered) {
            return;
        }
        this.installOffered = true;
        void vscode.window
            .showInformationMessage(
                `Code Context needs its language server, which runs on Python ${MIN_PYTHON}+. Install it into an environment of its own? ` +
                    'pip downloads its dependencies (PyTorch among them, about 1 GB) from your package index.',
                INSTALL,
                USE_OWN_PYTHON,
            )
            .then((choice) => {
                if (choice === INSTALL) {
                    void this.installServer();
                } else if (choice === USE_OWN_PYTHON) {
                    void vscode.commands.executeCommand('workbench.action.openSettings', 'codeContext.server.pythonPath');
                }
            });
    }

    private async doInstall(): Promise<void> {
        const wheel = this.bundledWheel();
        if (!wheel) {
            const message =
                'Code Context: this copy of the extension carries no server wheel (a development build). Build the .vsix with “npm run package”, or set codeContext.server.pythonPath to a Python that has the server.';
            this.output.error(message);
            void vscode.window.showErrorMessage(message);
            return;
        }
        await this.doStop();
        const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
        const preferred = await resolvePython(resource);
        const venvDir = this.managedVenvDir;
        this.output.info(`Installing ${wheel} into ${venvDir}`);
        this.setState('starting');
        try {
            await vscode.window.withProgress(
                { location: vscode.ProgressLocation.Notification, title: 'Code Context: installing the language server', cancellable: true },
                (progress, token) => {
                    const abort = new AbortController();
                    token.onCancellationRequested(() => abort.abort());
                    return installServer({
                        wheel,
                        venvDir,
                        candidates: baseInterpreterCandidates(preferred.python),
                        env: process.env,
                        onProgress: (message) => progress.report({ message }),
                        onOutput: (line) => this.output.info(line),
                        signal: abort.signal,
                    });
                },
            );
        } catch (error) {
            const message = `Code Context could not install its language server: ${error instanceof Error ? error.message : String(error)}`;
            this.output.error(message);
            this.setState('failed', message);
            void vscode.window.showErrorMessage(message, 'Show Output', USE_OWN_PYTHON).then((choice) => {
                if (choice === 'Show Output') {
                    this.showOutput();
                } else if (choice === USE_OWN_PYTHON) {
                    void vscode.commands.executeCommand('workbench.action.openSettings', 'codeContext.server.pythonPath');
                }
            });
            return;
        }
        this.output.info(`The server is installed in ${venvDir}.`);
        if (preferred.source === 'setting' || preferred.source === 'environment') {
            void vscode.window.showInformationMessage(
                `Code Context: the server is installed in ${venvDir}, but it still runs with ${preferred.python} (from ${preferred.source === 'setting' ? 'codeContext.server.pythonPath' : 'CODE_CONTEXT_PYTHON'}). Clear that to use the installed one.`,
            );
        }
        this.setState('stopped');
        await this.doStart();
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
