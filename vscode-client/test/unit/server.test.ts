import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type * as Install from '../../src/install';
import * as vscode from './vscode.mock';

/** The LanguageClient instances the manager created. */
const clients: FakeClient[] = [];
let startError: Error | undefined;

class FakeClient {
    readonly sendRequest = vi.fn(async (..._args: unknown[]): Promise<unknown> => ({ results: [], partial: false }));
    readonly stop = vi.fn(async () => undefined);
    readonly dispose = vi.fn(async () => undefined);
    private stateListener: ((e: { newState: number }) => void) | undefined;
    constructor(
        readonly id: string,
        readonly name: string,
        readonly serverOptions: { command: string; args: string[]; options: { env: NodeJS.ProcessEnv } },
        readonly clientOptions: Record<string, unknown> & {
            initializationOptions: unknown;
            middleware: { workspace: { configuration: (params: unknown, token: unknown, next: (p: unknown, t: unknown) => unknown) => Promise<unknown[]> } };
            errorHandler: { closed(): { action: number; handled?: boolean } };
        },
    ) {
        clients.push(this);
    }
    onDidChangeState(listener: (e: { newState: number }) => void) {
        this.stateListener = listener;
        return { dispose: () => undefined };
    }
    async start(): Promise<void> {
        if (startError) {
            throw startError;
        }
        this.stateListener?.({ newState: 2 });
    }
}

vi.mock('vscode-languageclient/node', () => ({
    LanguageClient: FakeClient,
    State: { Stopped: 1, Running: 2, Starting: 3 },
    CloseAction: { DoNotRestart: 1, Restart: 2 },
    ErrorAction: { Continue: 1, Shutdown: 2 },
    RevealOutputChannelOn: { Debug: 0, Info: 1, Warn: 2, Error: 3, Never: 4 },
}));

const checkPython = vi.fn(async (..._args: unknown[]): Promise<unknown> => undefined);
vi.mock('../../src/diagnose', () => ({ checkPython: (...args: unknown[]) => checkPython(...args) }));

/** The installer's imperative part; the decision and command lines stay real. */
const installServer = vi.fn(async (..._args: unknown[]): Promise<string> => '');
vi.mock('../../src/install', async (importOriginal) => ({
    ...(await importOriginal<typeof Install>()),
    installServer: (...args: unknown[]) => installServer(...args),
}));

const { ServerManager } = await import('../../src/server');
const { venvPython } = await import('../../src/install');
const { API_KEY_SECRET } = await import('../../src/settings');
const { ServerNotRunningError } = await import('../../src/errors');
const { SearchRequest } = await import('../../src/protocol');

function secrets(values: Record<string, string> = {}) {
    return { get: vi.fn(async (key: string) => values[key]), store: vi.fn(), delete: vi.fn(), onDidChange: vi.fn() };
}

const managers: { dispose(): void }[] = [];
const scratch = mkdtempSync(join(tmpdir(), 'cc-server-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let paths: { extensionPath: string; globalStoragePath: string };

/** An extension folder, with a bundled server wheel unless told otherwise, and an empty global storage. */
function extensionPaths(withWheel = true) {
    const root = mkdtempSync(join(scratch, 'ext-'));
    const extensionPath = join(root, 'extension');
    mkdirSync(join(extensionPath, 'bundled'), { recursive: true });
    if (withWheel) {
        writeFileSync(join(extensionPath, 'bundled', 'code_context_lsp-0.1.0-py3-none-any.whl'), '');
    }
    return { extensionPath, globalStoragePath: join(root, 'storage') };
}

function manager(stored: Record<string, string> = {}) {
    const output = vscode.createOutputChannel('Code Context');
    const server = new ServerManager(secrets(stored) as never, output as never, paths);
    managers.push(server);
    return { server, output };
}

afterEach(() => managers.splice(0).forEach((m) => m.dispose()));

beforeEach(() => {
    vscode.resetMock();
    clients.length = 0;
    startError = undefined;
    checkPython.mockReset();
    checkPython.mockImplementation(async () => undefined);
    installServer.mockReset();
    paths = extensionPaths();
    vscode.workspace.workspaceFolders = [{ uri: vscode.Uri.file('/ws/shop'), name: 'shop', index: 0 }];
    vscode.settings.set('codeContext.server.pythonPath', '/venv/bin/python');
    delete process.env.CODE_CONTEXT_SERVER_PORT;
});

describe('ServerManager.start', () => {
    it('starts `<python> -m lsp_server` with the settings as initializationOptions', async () => {
        vscode.settings.set('codeContext.embedding.provider', 'local');
        vscode.settings.set('codeContext.embedding.model', null);
        vscode.settings.set('codeContext.search.limit', 20);
        const { server } = manager();
        await server.start();
        expect(clients).toHaveLength(1);
        const [client] = clients;
        expect(client.serverOptions.command).toBe('/venv/bin/python');
        expect(client.serverOptions.args).toEqual(['-m', 'lsp_server']);
        expect(client.clientOptions.initializationOptions).toEqual({ embedding: { provider: 'local' }, search: { limit: 20 } });
        expect(client.clientOptions.synchronize).toEqual({ configurationSection: 'codeContext' });
        expect(server.state.state).toBe('running');
    });

    it('gives the server the stored API key under the configured variable name', async () => {
        vscode.settings.set('codeContext.embedding.apiKeyEnv', 'EMBED_KEY');
        const { server } = manager({ [API_KEY_SECRET]: 'sk-stored' });
        await server.start();
        expect(clients[0].serverOptions.options.env.EMBED_KEY).toBe('sk-stored');
    });

    it('warns when the OpenAI provider has no key', async () => {
        vscode.settings.set('codeContext.embedding.provider', 'openai');
        vscode.settings.set('codeContext.embedding.apiKeyEnv', 'CC_TEST_UNSET_KEY');
        const { server } = manager();
        await server.start();
        expect(vscode.window.showWarningMessage).toHaveBeenCalledWith(expect.stringContaining('CC_TEST_UNSET_KEY'), 'Set API Key');
    });

    it('explains a missing server package and offers to open the Python setting', async () => {
        checkPython.mockImplementation(async () => ({ kind: 'moduleMissing', python: '/venv/bin/python' }));
        vscode.window.showErrorMessage.mockImplementation(async () => 'Open Setting');
        const { server, output } = manager();
        await server.start();
        expect(clients).toHaveLength(0);
        expect(server.state.state).toBe('failed');
        expect(server.state.reason).toContain('Code Context: Install Server');
        expect(vscode.window.showErrorMessage).toHaveBeenCalledWith(expect.stringContaining('not installed'), 'Open Setting', 'Show Output');
        expect(output.error).toHaveBeenCalled();
        await vi.waitFor(() =>
            expect(vscode.commands.executeCommand).toHaveBeenCalledWith('workbench.action.openSettings', 'codeContext.server.pythonPath'),
        );
    });

    it('reports a client that fails to start, instead of failing silently', async () => {
        startError = new Error('Pending response rejected since connection got disposed');
        const { server } = manager();
        await server.start();
        expect(server.state.state).toBe('failed');
        expect(vscode.window.showErrorMessage).toHaveBeenCalledWith(expect.stringContaining('connection got disposed'), 'Open Setting', 'Show Output');
    });

    it('connects over TCP when a port is configured, without checking Python', async () => {
        vscode.settings.set('codeContext.server.tcpPort', 2087);
        const { server } = manager();
        await server.start();
        expect(checkPython).not.toHaveBeenCalled();
        expect(typeof clients[0].serverOptions).toBe('function');
    });

    it('does not start without a workspace folder', async () => {
        vscode.workspace.workspaceFolders = undefined;
        const { server } = manager();
        await server.start();
        expect(clients).toHaveLength(0);
        expect(server.state).toEqual({ state: 'stopped', reason: 'open a folder to index and search it.' });
    });
});

describe('ServerManager without an interpreter that has the server', () => {
    /** No setting: the default python3 lacks the server; the managed environment has it once it exists. */
    function noServerAnywhere() {
        vscode.settings.delete('codeContext.server.pythonPath');
        delete process.env.CODE_CONTEXT_PYTHON;
        const managed = venvPython(join(paths.globalStoragePath, 'venv'));
        checkPython.mockImplementation(async (python: unknown) => {
            if (python === managed) {
                return installServer.mock.calls.length > 0 ? undefined : { kind: 'pythonNotFound', python };
            }
            return { kind: 'moduleMissing', python };
        });
        return managed;
    }

    it('offers to install it, installs the bundled wheel into global storage with progress, then starts from there', async () => {
        const managed = noServerAnywhere();
        installServer.mockImplementation(async (...args: unknown[]) => {
            const options = args[0] as { onProgress(m: string): void };
            options.onProgress('Creating the environment with python3…');
            return managed;
        });
        vscode.window.showInformationMessage.mockImplementation(async () => 'Install');
        const { server } = manager();
        await server.start();
        expect(server.state.state).toBe('failed');
        expect(server.state.reason).toContain('Install Server');
        expect(vscode.window.showInformationMessage).toHaveBeenCalledWith(expect.stringContaining('Install it into an environment of its own?'), 'Install', 'Use My Own Python');
        await vi.waitFor(() => expect(clients).toHaveLength(1));

        expect(installServer).toHaveBeenCalledTimes(1);
        const options = installServer.mock.calls[0][0] as { wheel: string; venvDir: string; candidates: string[]; noDeps?: boolean };
        expect(options.wheel).toBe(join(paths.extensionPath, 'bundled', 'code_context_lsp-0.1.0-py3-none-any.whl'));
        expect(options.venvDir).toBe(join(paths.globalStoragePath, 'venv'));
        expect(options.candidates[0]).toBe('python3');
        expect(options.noDeps).toBeUndefined();
        expect(vscode.window.withProgress).toHaveBeenCalledWith(expect.objectContaining({ location: vscode.ProgressLocation.Notification, cancellable: true }), expect.any(Function));
        expect(vscode.progressMessages).toEqual(['Creating the environment with python3…']);
        expect(clients[0].serverOptions.command).toBe(managed);
        expect(server.state.state).toBe('running');
    });

    it('starts from the managed environment when it exists, without asking', async () => {
        const managed = noServerAnywhere();
        installServer.mockImplementation(async () => managed);
        await installServer(); // As if installed in an earlier session.
        const { server } = manager();
        await server.start();
        expect(vscode.window.showInformationMessage).not.toHaveBeenCalled();
        expect(clients[0].serverOptions.command).toBe(managed);
    });

    it('lets the user choose their own Python instead', async () => {
        noServerAnywhere();
        vscode.window.showInformationMessage.mockImplementation(async () => 'Use My Own Python');
        const { server } = manager();
        await server.start();
        await vi.waitFor(() =>
            expect(vscode.commands.executeCommand).toHaveBeenCalledWith('workbench.action.openSettings', 'codeContext.server.pythonPath'),
        );
        expect(installServer).not.toHaveBeenCalled();
        expect(clients).toHaveLength(0);
    });

    it('explains a failed installation and leaves the server stopped', async () => {
        noServerAnywhere();
        installServer.mockImplementation(async () => {
            throw new Error('No Python 3.11 or newer was found (tried python3 (3.9))');
        });
        const { server } = manager();
        await server.installServer();
        expect(server.state.state).toBe('failed');
        expect(vscode.window.showErrorMessage).toHaveBeenCalledWith(
            'Code Context could not install its language server: No Python 3.11 or newer was found (tried python3 (3.9))',
            'Show Output',
            'Use My Own Python',
        );
        expect(clients).toHaveLength(0);
    });

    it('does not offer an installation without a bundled wheel, and says what is missing', async () => {
        paths = extensionPaths(false);
        noServerAnywhere();
        const { server } = manager();
        await server.start();
        expect(vscode.window.showInformationMessage).not.toHaveBeenCalled();
        expect(vscode.window.showErrorMessage).toHaveBeenCalledWith(expect.stringContaining('not installed for “python3”'), 'Open Setting', 'Show Output');
    });

    it('keeps an explicit pythonPath: its problem is reported, nothing is installed', async () => {
        checkPython.mockImplementation(async (python: unknown) => ({ kind: 'moduleMissing', python }));
        const { server } = manager();
        await server.start();
        expect(vscode.window.showInformationMessage).not.toHaveBeenCalled();
        expect(server.state.state).toBe('failed');
        expect(checkPython).toHaveBeenCalledTimes(1);
    });
});

describe('ServerManager requests', () => {
    it('rejects requests while the server is not running, with the reason', async () => {
        checkPython.mockImplementation(async () => ({ kind: 'pythonNotFound', python: '/venv/bin/python' }));
        const { server } = manager();
        await server.start();
        await expect(server.sendRequest(SearchRequest, { query: 'x' })).rejects.toBeInstanceOf(ServerNotRunningError);
    });

    it('forwards requests and cancellation tokens to the client', async () => {
        const { server } = manager();
        await server.start();
        const token = new vscode.CancellationTokenSource().token;
        await server.sendRequest(SearchRequest, { query: 'parse' }, token as never);
        expect(clients[0].sendRequest).toHaveBeenCalledWith(SearchRequest, { query: 'parse' }, token);
    });

    it('answers workspace/configuration with only what the server understands', async () => {
        const { server } = manager();
        await server.start();
        const { configuration } = clients[0].clientOptions.middleware.workspace;
        const raw = { server: { pythonPath: '/p' }, embedding: { provider: 'local', model: null }, search: { limit: 5 } };
        const answer = await configuration({ items: [{ section: 'codeContext' }, { section: 'other' }] }, {}, () => [raw, { keep: true }]);
        expect(answer).toEqual([{ embedding: { provider: 'local' }, search: { limit: 5 } }, { keep: true }]);
    });

    it('gives up after repeated crashes and says so', async () => {
        const { server } = manager();
        await server.start();
        const { errorHandler } = clients[0].clientOptions;
        const actions = Array.from({ length: 5 }, () => errorHandler.closed());
        expect(actions.slice(0, 4).every((a) => a.action === 2)).toBe(true);
        expect(actions[4]).toEqual({ action: 1, handled: true });
        expect(server.state.state).toBe('failed');
        expect(vscode.window.showErrorMessage).toHaveBeenCalledWith(expect.stringContaining('stopped 5 times'), 'Open Setting', 'Show Output');
    });

    it('restarts the server when its settings change', async () => {
        const { server } = manager();
        await server.start();
        vscode.configurationChange.fire({ affectsConfiguration: (s: string) => s === 'codeContext.server' });
        await vi.waitFor(() => expect(clients).toHaveLength(2));
        expect(clients[0].stop).toHaveBeenCalled();
        vscode.configurationChange.fire({ affectsConfiguration: (s: string) => s === 'codeContext.search' });
        await new Promise((r) => setTimeout(r, 10));
        expect(clients).toHaveLength(2);
    });
});

describe('tcpServer', () => {
    it('waits for a server that starts listening a little later', async () => {
        const net = await import('node:net');
        const { tcpServer } = await import('../../src/server');
        // Find a free port, then listen on it only after the client has started trying.
        const probe = net.createServer();
        await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
        const port = (probe.address() as { port: number }).port;
        await new Promise((r) => probe.close(r));
        const server = net.createServer((socket) => socket.end('hello'));
        const connecting = tcpServer('127.0.0.1', port, 5000)();
        await new Promise((r) => setTimeout(r, 400));
        await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
        const { reader } = (await connecting) as { reader: NodeJS.ReadableStream };
        const data = await new Promise<string>((r) => reader.once('data', (d: Buffer) => r(d.toString())));
        expect(data).toBe('hello');
        await new Promise((r) => server.close(r));
    });

    it('gives up when nothing listens', async () => {
        const { tcpServer } = await import('../../src/server');
        await expect(tcpServer('127.0.0.1', 1, 300)()).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    });
});
