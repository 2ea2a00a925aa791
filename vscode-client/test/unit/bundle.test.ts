/**
 * Smoke test of the shipped bundle: esbuild builds src/extension.ts as `npm run build` does, and the bundle
 * is loaded with `vscode` resolved to the mock, then activated. Catches bundling mistakes that the
 * per-module tests cannot see (a missing external, a top-level error, an unregistered contribution).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import Module from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as vscode from './vscode.mock';

const outdir = mkdtempSync(join(tmpdir(), 'cc-bundle-'));
const outfile = join(outdir, 'extension.js');
type Loader = (request: string, parent: unknown, isMain: boolean) => unknown;

/** Any API the mock lacks (the client library touches many at load time): an empty class, recursively. */
const anything: object = new Proxy(class {}, { get: (target, prop) => (prop in target ? Reflect.get(target, prop) : anything) });
const vscodeApi = new Proxy(vscode, { get: (target, prop) => (prop in target ? Reflect.get(target, prop) : anything) });
const moduleWithLoad = Module as unknown as { _load: Loader };
const originalLoad = moduleWithLoad._load;

beforeAll(async () => {
    await build({
        entryPoints: [new URL('../../src/extension.ts', import.meta.url).pathname],
        bundle: true,
        format: 'cjs',
        platform: 'node',
        target: 'node18',
        outfile,
        external: ['vscode'],
        logLevel: 'silent',
    });
    moduleWithLoad._load = function (request, parent, isMain) {
        return request === 'vscode' ? vscodeApi : originalLoad.call(this, request, parent, isMain);
    };
});

afterAll(() => {
    moduleWithLoad._load = originalLoad;
    rmSync(outdir, { recursive: true, force: true });
});

describe('the bundled extension', () => {
    it('loads and activates, registering the view and every contributed command', async () => {
        vscode.resetMock();
        const registered: string[] = [];
        vscode.commands.registerCommand.mockImplementation((id: string) => {
            registered.push(id);
            return new vscode.Disposable();
        });
        const extension = createRequire(import.meta.url)(outfile) as { activate(context: unknown): void; deactivate(): Promise<void> };
        const context = {
            subscriptions: [] as { dispose(): unknown }[],
            extensionUri: vscode.Uri.file('/ext'),
            globalStorageUri: vscode.Uri.file('/ext-storage'),
            secrets: { get: async () => undefined, store: async () => undefined, delete: async () => undefined },
        };
        extension.activate(context);

        const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
            main: string;
            contributes: { commands: { command: string }[]; views: Record<string, { id: string }[]> };
        };
        expect(manifest.main).toBe('./dist/extension.js');
        expect(registered.sort()).toEqual(manifest.contributes.commands.map((c) => c.command).sort());
        const viewIds = Object.values(manifest.contributes.views).flat().map((v) => v.id);
        expect(vscode.window.registerWebviewViewProvider).toHaveBeenCalledWith(viewIds[0], expect.anything());
        // No folder is open: nothing is started, and the status bar says so.
        const item = vscode.window.createStatusBarItem.mock.results[0].value as { text: string; command: string };
        await new Promise((r) => setTimeout(r, 10));
        expect(item.command).toBe('codeContext.showStatus');
        expect(item.text).toBe('$(circle-slash) Code Context');
        context.subscriptions.forEach((d) => d.dispose());
        await extension.deactivate();
    });
});
