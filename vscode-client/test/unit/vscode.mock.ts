/**
 * A stand-in for the `vscode` module in unit tests (aliased in vitest.config.ts).
 * Only what the extension uses; every API function is a vi.fn() that tests can program and inspect.
 */
import { vi } from 'vitest';

type Listener<T> = (e: T) => unknown;

export class Disposable {
    constructor(private readonly fn: () => void = () => undefined) {}
    static from(...items: { dispose(): unknown }[]): Disposable {
        return new Disposable(() => items.forEach((d) => d.dispose()));
    }
    dispose(): void {
        this.fn();
    }
}

export class EventEmitter<T> {
    private listeners = new Set<Listener<T>>();
    readonly event = (listener: Listener<T>): Disposable => {
        this.listeners.add(listener);
        return new Disposable(() => this.listeners.delete(listener));
    };
    fire(value: T): void {
        [...this.listeners].forEach((l) => l(value));
    }
    dispose(): void {
        this.listeners.clear();
    }
}

export class CancellationTokenSource {
    private readonly emitter = new EventEmitter<void>();
    readonly token = {
        isCancellationRequested: false,
        onCancellationRequested: this.emitter.event,
    };
    cancel(): void {
        if (!this.token.isCancellationRequested) {
            this.token.isCancellationRequested = true;
            this.emitter.fire();
        }
    }
    dispose(): void {
        this.emitter.dispose();
    }
}

export class CancellationError extends Error {
    constructor() {
        super('Canceled');
        this.name = 'Canceled';
    }
}

export class Uri {
    private constructor(
        readonly scheme: string,
        readonly path: string,
    ) {}
    static parse(value: string): Uri {
        const m = /^([a-z][\w+.-]*):\/\/(.*)$/i.exec(value);
        return m ? new Uri(m[1], decodeURIComponent(m[2])) : new Uri('file', value);
    }
    static file(path: string): Uri {
        return new Uri('file', path);
    }
    static joinPath(base: Uri, ...parts: string[]): Uri {
        return new Uri(base.scheme, [base.path.replace(/\/$/, ''), ...parts].join('/'));
    }
    get fsPath(): string {
        return this.path;
    }
    toString(): string {
        return `${this.scheme}://${encodeURI(this.path)}`;
    }
}

export class Position {
    constructor(
        readonly line: number,
        readonly character: number,
    ) {}
}

export class Range {
    readonly start: Position;
    readonly end: Position;
    constructor(startLine: number, startCharacter: number, endLine: number, endCharacter: number) {
        this.start = new Position(startLine, startCharacter);
        this.end = new Position(endLine, endCharacter);
    }
}

export class Selection extends Range {
    get isEmpty(): boolean {
        return this.start.line === this.end.line && this.start.character === this.end.character;
    }
    get isSingleLine(): boolean {
        return this.start.line === this.end.line;
    }
    get active(): Position {
        return this.end;
    }
}

export class ThemeColor {
    constructor(readonly id: string) {}
}

export enum StatusBarAlignment {
    Left = 1,
    Right = 2,
}

export enum ProgressLocation {
    SourceControl = 1,
    Window = 10,
    Notification = 15,
}

export enum TextEditorRevealType {
    Default = 0,
    InCenter = 1,
    InCenterIfOutsideViewport = 2,
    AtTop = 3,
}

/** Settings read by `workspace.getConfiguration`, by full dotted key (e.g. "codeContext.search.limit"). */
export const settings = new Map<string, unknown>();

export function configuration(section?: string) {
    const prefix = section ? `${section}.` : '';
    return {
        get: <T>(key: string, fallback?: T): T | undefined => {
            const full = prefix + key;
            if (settings.has(full)) {
                return settings.get(full) as T;
            }
            // A nested read, like VS Code's: collect every key below `full`.
            const nested: Record<string, unknown> = {};
            let found = false;
            for (const [k, v] of settings) {
                if (k.startsWith(full + '.')) {
                    found = true;
                    let node = nested;
                    const parts = k.slice(full.length + 1).split('.');
                    parts.slice(0, -1).forEach((p) => (node = (node[p] ??= {}) as Record<string, unknown>));
                    node[parts[parts.length - 1]] = v;
                }
            }
            return found ? (nested as T) : fallback;
        },
        has: (key: string) => settings.has(prefix + key),
        update: vi.fn(),
    };
}

export const configurationChange = new EventEmitter<{ affectsConfiguration(section: string): boolean }>();

export const workspace = {
    workspaceFolders: undefined as { uri: Uri; name: string; index: number }[] | undefined,
    getConfiguration: vi.fn((section?: string) => configuration(section)),
    getWorkspaceFolder: vi.fn((uri: Uri) => workspace.workspaceFolders?.find((f) => uri.path.startsWith(f.uri.path))),
    onDidChangeConfiguration: configurationChange.event,
    onDidChangeWorkspaceFolders: new EventEmitter<unknown>().event,
    fs: { readFile: vi.fn(async (_uri: Uri) => new Uint8Array()) },
};

export function createStatusBarItem() {
    return { text: '', tooltip: '', name: '', command: '', backgroundColor: undefined as unknown, show: vi.fn(), hide: vi.fn(), dispose: vi.fn() };
}

export function createOutputChannel(name: string) {
    return {
        name,
        lines: [] as string[],
        appendLine: vi.fn(),
        append: vi.fn(),
        info: vi.fn(),
        warn: vi.fn(),
        error: vi.fn(),
        debug: vi.fn(),
        trace: vi.fn(),
        show: vi.fn(),
        clear: vi.fn(),
        dispose: vi.fn(),
    };
}

export const window = {
    activeTextEditor: undefined as unknown,
    showErrorMessage: vi.fn(async (..._args: unknown[]): Promise<string | undefined> => undefined),
    showWarningMessage: vi.fn(async (..._args: unknown[]): Promise<string | undefined> => undefined),
    showInformationMessage: vi.fn(async (..._args: unknown[]): Promise<string | undefined> => undefined),
    showInputBox: vi.fn(async (..._args: unknown[]): Promise<string | undefined> => undefined),
    showTextDocument: vi.fn(async (..._args: unknown[]) => ({ revealRange: vi.fn() })),
    createStatusBarItem: vi.fn(createStatusBarItem),
    createOutputChannel: vi.fn(createOutputChannel),
    registerWebviewViewProvider: vi.fn(() => new Disposable()),
    /** Runs the task at once with a progress that records its messages in `progressMessages`. */
    withProgress: vi.fn(async <T>(_options: unknown, task: (progress: { report(v: { message?: string }): void }, token: unknown) => Promise<T>) =>
        task({ report: (v) => progressMessages.push(v.message ?? '') }, new CancellationTokenSource().token),
    ),
};

/** The messages reported through `window.withProgress`. */
export const progressMessages: string[] = [];

export const commands = {
    executeCommand: vi.fn(async (..._args: unknown[]): Promise<unknown> => undefined),
    registerCommand: vi.fn((_id: string, _run: (...args: unknown[]) => unknown) => new Disposable()),
};

export const extensions = {
    getExtension: vi.fn((_id: string): unknown => undefined),
};

/** Restores every mock and setting; call in beforeEach. */
export function resetMock(): void {
    vi.clearAllMocks();
    settings.clear();
    progressMessages.length = 0;
    workspace.workspaceFolders = undefined;
    window.activeTextEditor = undefined;
    extensions.getExtension.mockImplementation(() => undefined);
    window.showErrorMessage.mockImplementation(async () => undefined);
    window.showWarningMessage.mockImplementation(async () => undefined);
    window.showInformationMessage.mockImplementation(async () => undefined);
    window.showInputBox.mockImplementation(async () => undefined);
    commands.executeCommand.mockImplementation(async () => undefined);
}
